//! The shutdown signals every serving task watches: `drain` (stop
//! accepting, let tunnels finish, `/readyz` 503) and `force` (end the
//! tunnels still open), with the grace period between them; and the signal
//! handlers (SIGINT, SIGTERM) that cancel them. `daemon::serve` runs the
//! two phases; the tokens are handed to `proxy` and `admin`.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::info;

/// The shutdown signals: `drain` stops accepting and lets tunnels finish,
/// `force` ends the tunnels still open after `grace`.
#[derive(Clone)]
pub struct Shutdown {
    pub drain: CancellationToken,
    pub force: CancellationToken,
    pub grace: Duration,
}

impl Shutdown {
    pub fn new(grace: Duration) -> Shutdown {
        Shutdown {
            drain: CancellationToken::new(),
            force: CancellationToken::new(),
            grace,
        }
    }

    /// Cancels `drain` on SIGINT or SIGTERM; a second signal forces.
    pub fn on_signals(&self) -> std::io::Result<()> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut int = signal(SignalKind::interrupt())?;
        let mut term = signal(SignalKind::terminate())?;
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
