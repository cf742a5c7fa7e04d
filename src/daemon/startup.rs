//! The one startup path of the commands that serve: `jumpgate run`, `jumpgate
//! up` and `jumpgate demo` differ only in the [`Startup`] they pass. In a
//! fixed order: every upstream's keys (always with their certificates),
//! the first login if asked for (so that a bad key or host key fails the
//! command at once, as ssh does; the pool then serves with that session,
//! so there is one login, as with ssh), every socket bound (retried as the
//! command says), serving with signal handlers, the readiness signal, and
//! the two-phase shutdown; each failure becomes one message on stderr and
//! the exit code. Talks to `daemon` (bind, serve), `ssh` (the first login).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tracing::{error, info, warn};

use super::{load_keys, ready, Daemon, DaemonError, Shutdown};
use crate::config::{self, Config};
use crate::exit::{EXIT_OK, EXIT_RUNTIME};
use crate::ssh::pool::Pool;
use crate::ssh::session::{JumpSession, SessionSettings};

/// How long open tunnels may finish after SIGTERM/SIGINT (`run`, `up`).
pub const DEFAULT_GRACE: Duration = Duration::from_secs(10);

/// What differs between the commands that serve.
pub struct Startup {
    /// How messages on stderr begin: `jumpgate`, `jumpgate up`, ...
    pub who: &'static str,
    /// Log in to every upstream once before binding (`up`), so that a wrong
    /// key or host key exits at once (78) instead of the pool retrying.
    pub first_login: bool,
    /// How long open tunnels may finish after the first signal.
    pub grace: Duration,
    /// `up`'s readiness signal; None: the "listening" log lines only.
    pub readiness: Option<Readiness>,
}

/// Once every listener is bound and every upstream has a live session: one
/// line on stderr (`WHO: ready: socks5 ADDR, ... via USER@HOST`) and, if
/// set, `file` with one `KIND ADDR` line per listener, removed on exit.
pub struct Readiness {
    pub file: Option<PathBuf>,
}

/// What a retried bind may change: where to listen.
pub struct Binds<'a> {
    pub listeners: &'a mut [config::Listener],
    pub admin: &'a mut Option<SocketAddr>,
}

impl Startup {
    /// Binds and serves `config` until a signal; returns the exit code.
    pub async fn run(&self, config: Config) -> u8 {
        match self.bind(config, |_, _| false).await {
            Ok(daemon) => self.serve(daemon).await,
            Err(code) => code,
        }
    }

    /// Keys, the first login if asked for, every socket bound. When a bind
    /// fails, `retry` may move the sockets and return true to bind again
    /// (it must give up eventually: `demo` tries a bounded list of ports).
    /// Failures are reported here; the error is the exit code.
    pub async fn bind(
        &self,
        mut config: Config,
        mut retry: impl FnMut(Binds<'_>, &DaemonError) -> bool,
    ) -> Result<Daemon, u8> {
        if let Some(path) = self.readiness.as_ref().and_then(|r| r.file.as_ref()) {
            ready::prepare(path).map_err(|source| {
                self.fail(&DaemonError::ReadyFile {
                    path: path.clone(),
                    source,
                })
            })?;
        }
        let settings = load_keys(&config).map_err(|e| self.fail(&e))?;
        // The pools first: `Pool::new` puts the remote forwards' queue into
        // the settings, and the first login must be made with those, or
        // its handler refuses the `forwarded-tcpip` channels of `-R` once
        // the pool serves with it.
        let pools: Vec<Arc<Pool>> = settings.into_iter().map(Pool::new).collect();
        if self.first_login {
            for pool in &pools {
                let session = self.login_once(&pool.settings).await?;
                // The checked session serves: ssh logs in once, and so do we.
                pool.adopt(session);
            }
        }
        note_capacity(&pools);
        loop {
            match Daemon::bind(pools.clone(), &config).await {
                Ok(daemon) => return Ok(daemon),
                Err(e) => {
                    let binds = Binds {
                        listeners: &mut config.listeners,
                        admin: &mut config.admin,
                    };
                    if !retry(binds, &e) {
                        return Err(self.fail(&e));
                    }
                }
            }
        }
    }

    /// Serves until a signal (or a fatal remote forward), with the
    /// readiness signal if asked for; returns the exit code.
    pub async fn serve(&self, daemon: Daemon) -> u8 {
        let shutdown = Shutdown::new(self.grace);
        if let Err(e) = shutdown.on_signals() {
            error!(error = %e, "cannot install signal handlers");
            return EXIT_RUNTIME;
        }
        let file = self.readiness.as_ref().and_then(|r| r.file.clone());
        let watcher = self.readiness.as_ref().map(|_| {
            tokio::spawn(ready::announce(
                self.who,
                daemon.listeners(),
                daemon.upstreams().to_vec(),
                file.clone(),
                shutdown.drain.clone(),
            ))
        });
        let result = daemon.serve(shutdown).await;
        if let Some(w) = watcher {
            w.abort();
        }
        if let Some(path) = file {
            let _ = std::fs::remove_file(path);
        }
        match result {
            Ok(()) => EXIT_OK,
            Err(e) => self.fail(&e),
        }
    }

    /// One login to the upstream's first host; the pool keeps the session.
    async fn login_once(&self, settings: &SessionSettings) -> Result<Arc<JumpSession>, u8> {
        match JumpSession::connect(settings, 0).await {
            Ok(s) => Ok(s),
            Err(e) => {
                crate::say_err!("{}: {e}", self.who);
                Err(e.exit_code())
            }
        }
    }

    fn fail(&self, e: &DaemonError) -> u8 {
        crate::say_err!("{}: {e}", self.who);
        e.exit_code()
    }
}

/// Raises the open-files limit to its hard value, records the tunnel
/// capacity (`crate::capacity`) and logs it, once per process: the sum of
/// the pools' channel slots against what the fd limit allows.
fn note_capacity(pools: &[Arc<Pool>]) {
    let nofile = crate::capacity::raise_nofile();
    let slots = pools
        .iter()
        .map(|p| {
            let u = &p.settings.upstream;
            u.max_channels_per_session.saturating_mul(u.sessions.max)
        })
        .fold(0usize, usize::saturating_add);
    let c = crate::capacity::Capacity::new(slots, nofile.soft);
    crate::capacity::set(c);
    info!(
        tunnels = c.tunnels,
        channel_slots = c.channel_slots,
        fd_tunnels = c.fd_tunnels,
        nofile_soft = nofile.soft,
        nofile_hard = nofile.hard,
        raised = nofile.raised,
        "tunnel capacity: max_channels_per_session x sessions.max over upstreams, and the open-files limit"
    );
    if c.fd_tunnels < c.channel_slots {
        warn!(
            fd_tunnels = c.fd_tunnels,
            channel_slots = c.channel_slots,
            "the open-files limit (RLIMIT_NOFILE {}) allows fewer tunnels than the pools' channel slots; \
             raise the hard limit (systemd: LimitNOFILE=)",
            nofile.soft
        );
    }
}
