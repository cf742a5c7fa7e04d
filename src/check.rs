//! `jumpgate check`: with a config that loaded, checks `[relay] spill_dir`
//! as the daemon does at start, reads every upstream's keys (with
//! certificates) and logs in once to each of its hosts, one line per
//! host on stdout; the exit code says whether all worked, with the codes
//! of `up` and `run` (78 for a key, a refused login or a host key; 1 for a
//! host that could not be reached). Serves nothing. Talks to `ssh`.

use std::path::Path;

use crate::config::Config;
use crate::exit::{EXIT_CONFIG, EXIT_OK};
use crate::ssh::identity;
use crate::ssh::session::{JumpSession, SessionSettings};

/// Checks `config` (read from `path`); returns the exit code.
pub async fn run(path: &Path, config: &Config) -> u8 {
    crate::say_out!("{}: config ok", path.display());
    let mut code = spill_dir(config);
    for u in &config.upstreams {
        let ids = match identity::load_upstream(u) {
            Ok(ids) => ids,
            Err(e) => {
                crate::say_out!("upstream {}: FAILED: {e}", u.name);
                code = EXIT_CONFIG;
                continue;
            }
        };
        let settings = SessionSettings::new(u.clone(), ids);
        for target in 0..u.hosts.len() {
            let shown = settings.describe(target);
            match JumpSession::connect(&settings, target).await {
                Ok(s) => {
                    crate::say_out!(
                        "upstream {} {}: ok (logged in as {})",
                        u.name,
                        shown,
                        u.user
                    );
                    s.disconnect("jumpgate check done").await;
                }
                Err(e) => {
                    crate::say_out!("upstream {} {}: FAILED: {e}", u.name, shown);
                    // 78 wins over 1: a config to fix says more than a
                    // host that may come back.
                    code = code.max(e.exit_code());
                }
            }
        }
    }
    code
}

/// `[relay] spill_dir`, checked as the daemon checks it at start (same
/// error, exit 78): a directory `run` would refuse should not pass `check`.
fn spill_dir(config: &Config) -> u8 {
    let limits = crate::tunnel_buffer::Limits::from(&config.relay);
    match crate::tunnel_buffer::Budget::check_spill_dir(&limits) {
        Ok(()) => EXIT_OK,
        Err(e) => {
            crate::say_out!("FAILED: {e}");
            EXIT_CONFIG
        }
    }
}
