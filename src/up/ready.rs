//! Running `up`'s configuration with a readiness signal: a first login
//! (so that a bad key or host key fails the command at once, as ssh does),
//! then the daemon; once every listener is bound and the upstream has a
//! live session, one line on stderr and the `--ready-file` (listener
//! addresses, one per line), removed again on exit.

use std::path::PathBuf;
use std::time::Duration;

use tracing::error;

use crate::cli::{EXIT_CONFIG, EXIT_RUNTIME};
use crate::config::Config;
use crate::daemon::{Daemon, Shutdown};
use crate::ssh::identity;
use crate::ssh::session::{ConnectError, JumpSession, SessionSettings};

/// How long open tunnels may finish after SIGTERM/SIGINT.
const GRACE: Duration = Duration::from_secs(10);

pub async fn serve(config: Config, ready_file: Option<PathBuf>) -> u8 {
    let Some(u) = config.upstreams.first().cloned() else {
        return EXIT_CONFIG;
    };
    let ids = match identity::load_keys(&u) {
        Ok(ids) => ids,
        Err(e) => {
            crate::say_err!("jumpgate up: {e}");
            return EXIT_CONFIG;
        }
    };
    let settings = SessionSettings::new(u.clone(), ids);
    match JumpSession::connect(&settings, 0).await {
        Ok(s) => s.disconnect("jumpgate up: first login checked").await,
        Err(e) => {
            crate::say_err!("jumpgate up: {e}");
            return match e {
                ConnectError::HostKey(_) | ConnectError::Denied { .. } => EXIT_CONFIG,
                _ => EXIT_RUNTIME,
            };
        }
    }
    let daemon = match Daemon::bind(config).await {
        Ok(d) => d,
        Err(e) => {
            crate::say_err!("jumpgate up: {e}");
            return e.exit_code();
        }
    };
    let shutdown = Shutdown::new(GRACE);
    if let Err(e) = shutdown.on_signals() {
        error!(error = %e, "cannot install signal handlers");
        return EXIT_RUNTIME;
    }
    let addrs = daemon.local_addrs();
    let pools = daemon.upstreams().to_vec();
    let via = settings.describe(0);
    let user = u.user.clone();
    let drain = shutdown.drain.clone();
    let file = ready_file.clone();
    let watcher = tokio::spawn(async move {
        loop {
            if pools.iter().all(|p| p.is_ready()) {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(25)) => {}
                _ = drain.cancelled() => return,
            }
        }
        // Listener names start with their kind (see `up::to_config`).
        let kind = |name: &str| {
            if name.starts_with("socks") {
                "socks5"
            } else {
                "forward"
            }
        };
        let shown: Vec<String> = addrs
            .iter()
            .map(|(n, a)| format!("{} {a}", kind(n)))
            .collect();
        crate::say_err!(
            "jumpgate up: ready: {} via {user}@{via}",
            if shown.is_empty() {
                "remote forwards only".to_owned()
            } else {
                shown.join(", ")
            }
        );
        if let Some(path) = file {
            let text: String = shown.iter().map(|l| format!("{l}\n")).collect();
            if let Err(e) = write_atomic(&path, &text) {
                error!(path = %path.display(), error = %e, "cannot write the ready file");
            }
        }
    });
    let result = daemon.serve(shutdown).await;
    watcher.abort();
    if let Some(path) = ready_file {
        let _ = std::fs::remove_file(path);
    }
    match result {
        Ok(()) => 0,
        Err(e) => {
            crate::say_err!("jumpgate up: {e}");
            e.exit_code()
        }
    }
}

/// Written to a temporary name and renamed, so a reader never sees half.
fn write_atomic(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}
