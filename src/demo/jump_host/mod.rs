//! The demo's jump host: a tiny SSH server (russh, server side) that runs inside the
//! jumpgate process, so that `jumpgate demo` works with no setup. The fault-injection
//! tests (`tests/faults.rs`) run it too, made slow, refusing or silent through
//! [`Hooks`]; the library itself only ever runs it [`Plain`].
//!
//! It does what an OpenSSH `sshd` does for `ssh -D` clients and nothing more: public-key
//! logins (only the keys in [`JumpHostConfig::authorized`], any user name) and
//! `direct-tcpip` channels. A channel to [`DEMO_HOST`] is answered in-process with a small
//! HTTP page, so the demo needs no network; a channel to any other `host:port` is resolved
//! and connected like sshd does, and refused with sshd's reason and text when that fails.
//! Sessions, shells, exec, ptys and port forwarding requests are refused.
//!
//! It binds loopback addresses only: it is an open relay for whoever holds an authorized
//! key, which is fine for a demo on 127.0.0.1 and nowhere else. Everything it spawns
//! belongs to the [`JumpHost`] and stops when it is dropped. Production traffic goes
//! through a real sshd; nothing in jumpgate's daemon path uses this module.
//!
//! This file is the public surface and the accept loop. The parts, by role:
//! `settings` (russh server settings), `handler` (the russh handler: logins, channel
//! dispatch, refusals), `hello` (the HTTP page), `dialer` (connecting targets the way
//! sshd does), `relay` (bytes between a channel and a target), `channel_io` (reading and
//! closing a channel), `severable` (how sessions are ended), `hooks` (the extension
//! point).

mod channel_io;
mod dialer;
mod handler;
mod hello;
mod hooks;
mod relay;
mod settings;
mod severable;
#[cfg(test)]
mod tests;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use russh::keys::{PrivateKey, PublicKey};
use russh::server;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, Semaphore};
use tokio::task::JoinSet;
use tokio::time::{sleep, sleep_until, timeout_at, Instant};
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;
use tracing::{debug, debug_span, warn, Instrument};

use handler::{ConnHandler, Shared};
pub use hooks::{Hooks, Plain};
use severable::Severable;

/// The host name the jump host answers itself, with an HTTP page (any port, any case).
/// `.jumpgate` is no real top-level domain, so the name can only work through the tunnel.
pub const DEMO_HOST: &str = "hello.jumpgate";

/// Connections served at once; the permit is taken before `accept()`, so a flood waits
/// in the kernel's backlog instead of growing our memory.
const MAX_CONNECTIONS: usize = 64;
/// From TCP accept to a successful login (OpenSSH's `LoginGraceTime`, shortened).
const LOGIN_GRACE: Duration = Duration::from_secs(30);
/// Pause after a failed `accept()` (EMFILE and friends) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// What to start: where to listen and who may log in.
pub struct JumpHostConfig {
    /// A loopback address; port 0 picks a free port (see [`JumpHost::addr`]).
    pub bind: SocketAddr,
    /// The host key clients see; put its public half in their known_hosts.
    pub host_key: PrivateKey,
    /// Client keys allowed to log in, under any user name. Compared by key data, so
    /// comments do not matter. Empty means nobody gets in.
    pub authorized: Vec<PublicKey>,
}

/// Why the jump host could not start.
#[derive(Debug, thiserror::Error)]
pub enum JumpHostError {
    #[error("demo jump host: {addr} is not a loopback address; it only binds loopback")]
    NotLoopback { addr: SocketAddr },
    #[error("demo jump host: cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("demo jump host: cannot generate a key: {0}")]
    KeyGen(#[from] russh::keys::ssh_key::Error),
    #[error("demo jump host: cannot encode its host key: {0}")]
    EncodeHostKey(russh::keys::ssh_key::Error),
}

/// A running jump host. Dropping it stops everything it started: the listener at once,
/// and every live SSH session (with its channels) at the session's next poll.
pub struct JumpHost {
    /// Where it listens, with the real port when the config asked for port 0.
    addr: SocketAddr,
    /// The known_hosts line for `addr` and the host key, made once at start.
    known_hosts_line: String,
    /// Severs every session's TCP stream on drop. russh runs each session in a task of its
    /// own that we cannot abort, so we end it by failing its socket instead.
    cut: CancellationToken,
    /// The accept loop; it owns the connection tasks, which die with it.
    _accept: AbortOnDropHandle<()>,
}

impl JumpHost {
    /// Binds `cfg.bind` and starts serving as a well-behaved jump host. Returns once the
    /// listener is bound, so the address can be handed to a client right away.
    pub async fn start(cfg: JumpHostConfig) -> Result<JumpHost, JumpHostError> {
        Self::start_with_hooks(cfg, Plain).await
    }

    /// [`JumpHost::start`], consulting `hooks` on every connection and channel.
    pub async fn start_with_hooks(
        cfg: JumpHostConfig,
        hooks: impl Hooks,
    ) -> Result<JumpHost, JumpHostError> {
        let JumpHostConfig {
            bind,
            host_key,
            authorized,
        } = cfg;
        if !bind.ip().is_loopback() {
            return Err(JumpHostError::NotLoopback { addr: bind });
        }
        let host_public = host_key
            .public_key()
            .to_openssh()
            .map_err(JumpHostError::EncodeHostKey)?;
        let listener = TcpListener::bind(bind)
            .await
            .map_err(|source| JumpHostError::Bind { addr: bind, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| JumpHostError::Bind { addr: bind, source })?;
        let shared = Arc::new(Shared { authorized, hooks });
        let cut = CancellationToken::new();
        let accept = tokio::spawn(
            accept_loop(
                listener,
                Arc::new(settings::server_config(host_key)),
                shared,
                cut.clone(),
            )
            .instrument(debug_span!("jump_host", %addr)),
        );
        debug!(%addr, "demo jump host listening");
        Ok(JumpHost {
            addr,
            known_hosts_line: known_hosts_line(addr, &host_public),
            cut,
            _accept: AbortOnDropHandle::new(accept),
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A known_hosts line (with its newline) that makes an SSH client trust this host at
    /// [`JumpHost::addr`], in the `[ip]:port` form OpenSSH looks up.
    pub fn known_hosts_line(&self) -> &str {
        &self.known_hosts_line
    }
}

/// `[ip]:port key`, or `ip key` for port 22 (OpenSSH brackets only other ports).
fn known_hosts_line(addr: SocketAddr, host_public: &str) -> String {
    let key = host_public.trim();
    match addr.port() {
        22 => format!("{} {key}\n", addr.ip()),
        port => format!("[{}]:{port} {key}\n", addr.ip()),
    }
}

impl Drop for JumpHost {
    fn drop(&mut self) {
        self.cut.cancel();
    }
}

/// A fresh Ed25519 key, for the demo's host key and its client key (they live only as
/// long as the process).
pub fn generate_key() -> Result<PrivateKey, JumpHostError> {
    Ok(PrivateKey::random(
        &mut russh::keys::key::safe_rng(),
        russh::keys::Algorithm::Ed25519,
    )?)
}

async fn accept_loop<H: Hooks>(
    listener: TcpListener,
    config: Arc<server::Config>,
    shared: Arc<Shared<H>>,
    cut: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    // Dropped (so aborted, with every connection task) when this task is aborted.
    let mut conns = JoinSet::new();
    loop {
        while let Some(done) = conns.try_join_next() {
            if let Err(e) = done {
                if e.is_panic() {
                    warn!(error = %e, "demo jump host connection task panicked");
                }
            }
        }
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return; // the semaphore is never closed
        };
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                debug!(error = %e, "accept failed");
                sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let conn = serve_conn(tcp, config.clone(), shared.clone(), cut.child_token());
        conns.spawn(
            async move {
                conn.await;
                drop(permit);
            }
            .instrument(debug_span!("conn", %peer)),
        );
    }
}

async fn serve_conn<H: Hooks>(
    tcp: TcpStream,
    config: Arc<server::Config>,
    shared: Arc<Shared<H>>,
    cut: CancellationToken,
) {
    debug!("connection accepted");
    let Some(tcp) = shared.hooks.accepted(tcp).await else {
        debug!("connection taken over by the hooks");
        return;
    };
    let (authed_tx, authed_rx) = oneshot::channel();
    let handler = ConnHandler::new(shared, authed_tx);
    let deadline = Instant::now() + LOGIN_GRACE;
    let stream = Severable::new(tcp, cut.clone());
    let mut session = match timeout_at(deadline, server::run_stream(config, stream, handler)).await
    {
        Ok(Ok(session)) => session,
        Ok(Err(e)) => {
            debug!(error = %e, "SSH handshake failed");
            return;
        }
        Err(_) => {
            debug!("no SSH banner from the client within the login grace time");
            return;
        }
    };
    tokio::select! {
        ended = &mut session => {
            log_session_end(ended);
            return;
        }
        // Err means the handler is gone, so the session is ending: wait for it below.
        _ = authed_rx => {}
        () = sleep_until(deadline) => {
            debug!(grace = ?LOGIN_GRACE, "no login within the grace time, disconnecting");
            cut.cancel();
        }
    }
    log_session_end(session.await);
}

fn log_session_end(ended: Result<(), russh::Error>) {
    match ended {
        Ok(()) => debug!("session closed"),
        Err(e) => debug!(error = %e, "session ended"),
    }
}
