//! The demo jump host's one extension point: [`Hooks`], called at the two moments where
//! a test wants a jump host to misbehave (right after a TCP accept, and before a
//! `direct-tcpip` request is acted on). `jumpgate demo` uses [`Plain`], which changes
//! nothing; the fault-injection tests implement their slow, refusing and silent hosts
//! on it under `tests/`, so no fault knob is part of the library. Called by the accept
//! loop in `mod.rs` and the channel dispatch in `handler.rs`.

use std::future::Future;

use russh::ChannelOpenFailure;
use tokio::net::TcpStream;

/// What the jump host asks its owner. Every method has a default that behaves like a
/// healthy sshd, so an implementation overrides only what it changes.
pub trait Hooks: Send + Sync + 'static {
    /// A TCP connection was accepted. Return it to have the server speak SSH on it, or
    /// keep it and return `None` to serve it some other way (hold it, say nothing).
    ///
    /// Runs in the connection's own task, which holds one of the host's connection
    /// slots and is aborted when the [`JumpHost`](super::JumpHost) is dropped.
    fn accepted(&self, tcp: TcpStream) -> impl Future<Output = Option<TcpStream>> + Send {
        std::future::ready(Some(tcp))
    }

    /// A client asked for a `direct-tcpip` channel to `host:port`. `Ok(())` lets the
    /// server go on (serve the hello page or dial the target); `Err(reason)` refuses the
    /// channel with that reason and russh's stock text for it.
    ///
    /// Runs in the channel's own task: a slow answer holds up this channel only, never
    /// the session or its other channels.
    fn direct_tcpip(
        &self,
        host: &str,
        port: u32,
    ) -> impl Future<Output = Result<(), ChannelOpenFailure>> + Send {
        let _ = (host, port);
        std::future::ready(Ok(()))
    }
}

/// No hooks: a well-behaved jump host, as `jumpgate demo` runs it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Plain;

impl Hooks for Plain {}
