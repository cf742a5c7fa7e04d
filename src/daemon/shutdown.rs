//! The shutdown signals every serving task watches: `drain` (stop
//! accepting, let tunnels finish, `/readyz` 503) and `force` (end the
//! tunnels still open), with the grace period between them; and the signal
//! handlers (SIGINT, SIGTERM) that cancel them. `daemon::serve` runs the
//! two phases; the tokens are handed to `proxy` and `admin`. SIGHUP is
//! logged and ignored until reload exists, and SIGUSR1 asks for `/status`
//! in the log (`dump`): neither may kill the process with their default
//! action (no drain, the ready file left behind).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// The shutdown signals: `drain` stops accepting and lets tunnels finish,
/// `force` ends the tunnels still open after `grace`.
#[derive(Clone)]
pub struct Shutdown {
    pub drain: CancellationToken,
    pub force: CancellationToken,
    pub grace: Duration,
    /// Notified on SIGUSR1: `daemon::serve` logs `/status`.
    pub dump: Arc<Notify>,
}

impl Shutdown {
    pub fn new(grace: Duration) -> Shutdown {
        Shutdown {
            drain: CancellationToken::new(),
            force: CancellationToken::new(),
            grace,
            dump: Arc::new(Notify::new()),
        }
    }

    /// Cancels `drain` on SIGINT or SIGTERM; a second signal forces. Also
    /// handles SIGHUP (logged) and SIGUSR1 (`dump`) until the drain.
    pub fn on_signals(&self) -> std::io::Result<()> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut int = signal(SignalKind::interrupt())?;
        let mut term = signal(SignalKind::terminate())?;
        let mut hup = signal(SignalKind::hangup())?;
        let mut usr1 = signal(SignalKind::user_defined1())?;
        let (drain, dump) = (self.drain.clone(), self.dump.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = hup.recv() => {
                        warn!("SIGHUP received: reload is not supported yet; nothing changed");
                    }
                    _ = usr1.recv() => dump.notify_one(),
                    _ = drain.cancelled() => break,
                }
            }
        });
        let me = self.clone();
        tokio::spawn(async move {
            for n in 0..2 {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
                if n == 0 {
                    info!("signal received: draining (again to force)");
                    me.drain.cancel();
                } else {
                    me.force.cancel();
                }
            }
        });
        Ok(())
    }
}
