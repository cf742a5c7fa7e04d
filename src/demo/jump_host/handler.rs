//! The in-process SSH server's protocol side: the russh server handler for one
//! connection. It accepts public-key logins for the authorized keys (any user name),
//! serves `direct-tcpip` channels, each in a task of its own (the hello page for
//! [`DEMO_HOST`](super::DEMO_HOST), otherwise dial and relay), and refuses everything
//! else: session channels, ptys, shells, exec, subsystems, env, remote forwarding.
//! Consults the owner's [`Hooks`] before acting on a channel. Created per connection by
//! `mod.rs`; uses `hello.rs`, `dialer.rs` and `relay.rs`.

use std::sync::Arc;

use russh::keys::PublicKey;
use russh::server::{
    self, Auth, ChannelOpenHandle, Msg, PublicKeyOffer, Session, VerifiedPublicKey,
};
use russh::{Channel, ChannelId, ChannelOpenFailure};
use tokio::sync::oneshot;
use tokio::task::JoinSet;
use tracing::{debug, debug_span, warn, Instrument, Span};

use super::dialer::connect_target;
use super::hello::{is_demo_host, serve_hello_page};
use super::hooks::Hooks;
use super::relay::relay;

/// What every connection's handler needs; read-only after start.
pub(super) struct Shared<H> {
    /// Client keys allowed to log in, compared by key data.
    pub(super) authorized: Vec<PublicKey>,
    pub(super) hooks: H,
}

impl<H> Shared<H> {
    fn is_authorized(&self, key: &PublicKey) -> bool {
        self.authorized
            .iter()
            .any(|k| k.key_data() == key.key_data())
    }
}

/// One SSH connection. russh owns it (inside its session task) and drops it when the
/// session ends, which aborts the channel tasks in `channels`.
pub(super) struct ConnHandler<H> {
    shared: Arc<Shared<H>>,
    /// One task per open `direct-tcpip` channel, so a slow connect or a slow reader never
    /// holds up the session loop that calls us.
    channels: JoinSet<()>,
    /// Tells `serve_conn` that the login grace timer can stop.
    authed: Option<oneshot::Sender<()>>,
    /// The connection's span: russh calls us from its own task, outside it.
    span: Span,
}

impl<H> ConnHandler<H> {
    /// A handler for one connection; `authed` fires on the first successful login. Runs
    /// its logging in the current span (the connection's).
    pub(super) fn new(shared: Arc<Shared<H>>, authed: oneshot::Sender<()>) -> Self {
        ConnHandler {
            shared,
            channels: JoinSet::new(),
            authed: Some(authed),
            span: Span::current(),
        }
    }
}

impl<H: Hooks> server::Handler for ConnHandler<H> {
    type Error = russh::Error;

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        // Spares the client a signature for a key we would refuse anyway.
        let known = self.shared.is_authorized(offer.public_key);
        self.span
            .in_scope(|| debug!(user, known, algorithm = %offer.algorithm, "key offered"));
        Ok(if known { Auth::Accept } else { Auth::reject() })
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        let ok = self.shared.is_authorized(key.public_key);
        self.span.in_scope(|| debug!(user, ok, "public key login"));
        Ok(if ok { Auth::Accept } else { Auth::reject() })
    }

    async fn auth_succeeded(&mut self, _session: &mut Session) -> Result<(), Self::Error> {
        if let Some(tx) = self.authed.take() {
            // The receiver is gone only if serve_conn stopped waiting; nothing to do then.
            let _ = tx.send(());
        }
        Ok(())
    }

    async fn channel_open_session(
        &mut self,
        _channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.span
            .in_scope(|| debug!("session channel refused: direct-tcpip only"));
        reply
            .reject(ChannelOpenFailure::AdministrativelyProhibited)
            .await;
        Ok(())
    }

    async fn channel_open_direct_tcpip(
        &mut self,
        channel: Channel<Msg>,
        host_to_connect: &str,
        port_to_connect: u32,
        originator_address: &str,
        originator_port: u32,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        while let Some(done) = self.channels.try_join_next() {
            if let Err(e) = done {
                if e.is_panic() {
                    self.span
                        .in_scope(|| warn!(error = %e, "demo jump host channel task panicked"));
                }
            }
        }
        let span = debug_span!(
            parent: &self.span,
            "direct_tcpip",
            host = host_to_connect,
            port = port_to_connect,
            channel = %channel.id(),
        );
        span.in_scope(|| debug!(originator_address, originator_port, "channel requested"));
        let shared = self.shared.clone();
        let host = host_to_connect.to_owned();
        self.channels.spawn(
            open_direct_tcpip(channel, host, port_to_connect, reply, shared).instrument(span),
        );
        Ok(())
    }

    // Only `direct-tcpip` is served. Requests on channels get an explicit failure, so a
    // client that wants a reply is not left waiting; russh's defaults send nothing.

    async fn pty_request(
        &mut self,
        channel: ChannelId,
        _term: &str,
        _col_width: u32,
        _row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        _data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        _name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        _variable_name: &str,
        _variable_value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)
    }

    async fn tcpip_forward(
        &mut self,
        address: &str,
        port: &mut u32,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        self.span
            .in_scope(|| debug!(address, port = *port, "remote forwarding refused"));
        Ok(false)
    }

    async fn streamlocal_forward(
        &mut self,
        socket_path: &str,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        self.span
            .in_scope(|| debug!(socket_path, "remote socket forwarding refused"));
        Ok(false)
    }
}

/// Answers one `direct-tcpip` request and, when accepted, serves the channel to its end.
async fn open_direct_tcpip<H: Hooks>(
    channel: Channel<Msg>,
    host: String,
    port: u32,
    reply: ChannelOpenHandle,
    shared: Arc<Shared<H>>,
) {
    if let Err(reason) = shared.hooks.direct_tcpip(&host, port).await {
        debug!(?reason, "refused by the hooks");
        reply.reject(reason).await;
        return;
    }
    if is_demo_host(&host) {
        reply.accept().await;
        serve_hello_page(channel).await;
        return;
    }
    let tcp = match connect_target(&host, port).await {
        Ok(tcp) => tcp,
        Err(e) => {
            debug!(reason = %e, "refused: connect failed");
            reply.reject(e.refusal()).await;
            return;
        }
    };
    reply.accept().await;
    relay(channel, tcp).await;
}
