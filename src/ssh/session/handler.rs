//! The russh client handler of one SSH connection (a session, or one
//! ProxyJump hop under it). russh owns it inside the session task and calls
//! it for server events: the host key (checked with `ssh::known_hosts`), why
//! the connection ended, the text of a refused channel open, and channels
//! the jump host opens to us (remote-forward connections, handed to the pool
//! through a bounded queue). Every callback runs inside russh's session task,
//! so none may wait on anything slow: doing so stalls every channel of the
//! session.

use std::sync::{Arc, Mutex, OnceLock, Weak};

use russh::client;
use russh::keys::{PublicKey, PublicKeyOrCertificate};
use russh::{Channel, ChannelOpenFailure};
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::{debug, warn};

use super::failure_texts::FailureTexts;
use super::settings::SessionSettings;
use super::JumpSession;
use crate::config::Endpoint;
use crate::ssh::known_hosts::{self, HostKeyError, Verdict};

use super::forwarded_channel::ForwardedChannel;

/// What the dialer keeps of a handler it hands to russh: state shared with
/// the handler, which russh owns from then on.
pub(super) struct HandlerLink {
    /// Cancelled when russh drops the handler (the session task ended).
    pub dead: CancellationToken,
    pub failures: Arc<FailureTexts>,
    /// The host-key error, so that the dialer can report it instead of
    /// russh's generic "unknown key".
    pub key_error: Arc<Mutex<Option<HostKeyError>>>,
    /// Why the connection ended, as russh reported it.
    pub ended: Arc<Mutex<Option<String>>>,
    /// The tunnels' inboxes; fed only by the last hop's handler.
    pub inboxes: Arc<crate::tunnel_buffer::Inboxes>,
}

/// Where the handler of the last hop finds its session, once built.
pub(super) type SessionSlot = Arc<OnceLock<Weak<JumpSession>>>;

pub(super) struct JumpHandler {
    host: String,
    port: u16,
    known_hosts: std::path::PathBuf,
    /// Read-only known_hosts files (see `Upstream::global_known_hosts`).
    global_known_hosts: Vec<std::path::PathBuf>,
    policy: crate::config::HostKeyCheck,
    /// How the user spells settings, for hints and warnings.
    interface: crate::config::Interface,
    /// Cancels `JumpSession::dead` when russh drops the handler, which it
    /// does when the session task ends for any reason.
    _dead: DropGuard,
    failures: Arc<FailureTexts>,
    /// For `jumpgate_keepalive_timeouts_total`.
    upstream: String,
    /// See `HandlerLink`.
    key_error: Arc<Mutex<Option<HostKeyError>>>,
    ended: Arc<Mutex<Option<String>>>,
    /// Remote-forward connections go here; only on the last hop (the
    /// upstream itself), never on ProxyJump hops.
    forwarded: Option<mpsc::Sender<ForwardedChannel>>,
    /// The session this handler belongs to, set once it is built (after
    /// the handshake); forwarded channels are counted on it.
    session: SessionSlot,
    /// Where tunnel channels' data goes (`tunnel_buffer::Inboxes`); only on the
    /// last hop: a ProxyJump hop's channel is read as a stream.
    inboxes: Option<crate::tunnel_buffer::Feed>,
}

impl JumpHandler {
    /// A handler for the hop to `endpoint`. `session` is Some on the last
    /// hop only: where the handler finds the session its forwarded
    /// channels belong to, once it exists.
    pub(super) fn new(
        settings: &SessionSettings,
        endpoint: &Endpoint,
        session: Option<SessionSlot>,
    ) -> (JumpHandler, HandlerLink) {
        let u = &settings.upstream;
        let link = HandlerLink {
            dead: CancellationToken::new(),
            failures: Arc::new(FailureTexts::default()),
            key_error: Arc::new(Mutex::new(None)),
            ended: Arc::new(Mutex::new(None)),
            // The process's budget (`[relay]`, installed at start) and the
            // upstream's series; the account is this session's.
            inboxes: crate::tunnel_buffer::Inboxes::new(
                &u.name,
                crate::tunnel_buffer::Account::new(
                    crate::tunnel_buffer::Budget::global(),
                    settings.relay.clone(),
                ),
            ),
        };
        let handler = JumpHandler {
            host: endpoint.host.clone(),
            port: endpoint.port,
            known_hosts: u.known_hosts.clone(),
            global_known_hosts: u.global_known_hosts.clone(),
            policy: u.host_key_check,
            interface: u.interface,
            _dead: link.dead.clone().drop_guard(),
            failures: link.failures.clone(),
            upstream: u.name.clone(),
            key_error: link.key_error.clone(),
            ended: link.ended.clone(),
            forwarded: session.as_ref().and(settings.forwarded.clone()),
            inboxes: session
                .is_some()
                .then(|| crate::tunnel_buffer::Feed(link.inboxes.clone())),
            session: session.unwrap_or_default(),
        };
        (handler, link)
    }

    /// The setting that turned host key checking off, as the user wrote it.
    fn off_setting(&self) -> String {
        self.interface
            .host_key_check(crate::config::HostKeyCheck::Off)
    }

    fn files(&self) -> known_hosts::Files<'_> {
        known_hosts::Files {
            primary: &self.known_hosts,
            extra: &self.global_known_hosts,
        }
    }
}

impl client::Handler for JumpHandler {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        // A host certificate is checked against the CAs known_hosts trusts
        // for this host; with none, its key goes through known_hosts like a
        // plain key.
        let owned;
        let key: &PublicKey = match key {
            PublicKeyOrCertificate::PublicKey { key, .. } => key,
            PublicKeyOrCertificate::Certificate(c) => {
                let now = crate::ssh::identity::unix_now();
                let (kh, host, port) = (self.files(), &self.host, self.port);
                match known_hosts::verify_certificate(self.policy, kh, host, port, c, now) {
                    Ok(Some(Verdict::Known)) => {
                        debug!(host = %self.host, port = self.port, key_id = c.key_id(),
                            "host certificate signed by a trusted CA");
                        return Ok(true);
                    }
                    Ok(Some(_)) => {
                        warn!(host = %self.host, port = self.port, key_id = c.key_id(),
                            "host certificate NOT checked ({})", self.off_setting());
                        return Ok(true);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        if let Ok(mut slot) = self.key_error.lock() {
                            *slot = Some(e);
                        }
                        return Ok(false);
                    }
                }
                owned = PublicKey::new(c.public_key().clone(), "");
                &owned
            }
        };
        match known_hosts::verify(
            self.policy,
            self.interface,
            self.files(),
            &self.host,
            self.port,
            key,
        ) {
            Ok(Verdict::Known) => Ok(true),
            Ok(Verdict::Learned) => {
                warn!(
                    host = %self.host, port = self.port,
                    fingerprint = %known_hosts::fingerprint(key),
                    file = %self.known_hosts.display(),
                    "permanently added host key (accept-new)"
                );
                Ok(true)
            }
            Ok(Verdict::Unchecked) => {
                warn!(
                    host = %self.host, port = self.port,
                    fingerprint = %known_hosts::fingerprint(key),
                    "host key NOT checked ({})",
                    self.off_setting()
                );
                Ok(true)
            }
            Err(e) => {
                if let Ok(mut slot) = self.key_error.lock() {
                    *slot = Some(e);
                }
                Ok(false)
            }
        }
    }

    async fn disconnected(
        &mut self,
        reason: client::DisconnectReason<Self::Error>,
    ) -> Result<(), Self::Error> {
        let why = match &reason {
            client::DisconnectReason::ReceivedDisconnect(info) => {
                format!("the jump host disconnected: {}", info.message)
            }
            client::DisconnectReason::Error(russh::Error::KeepaliveTimeout) => {
                "keepalive timeout: the jump host stopped answering".to_owned()
            }
            client::DisconnectReason::Error(e) => e.to_string(),
        };
        if let Ok(mut slot) = self.ended.lock() {
            slot.get_or_insert(why);
        }
        match reason {
            client::DisconnectReason::ReceivedDisconnect(_) => Ok(()),
            client::DisconnectReason::Error(e) => {
                if matches!(e, russh::Error::KeepaliveTimeout) {
                    warn!(host = %self.host, port = self.port, "keepalive timeout: jump host stopped answering");
                    crate::metrics::get()
                        .keepalive_timeouts
                        .with_label_values(&[self.upstream.as_str()])
                        .inc();
                }
                Err(e)
            }
        }
    }

    async fn channel_open_confirmation(
        &mut self,
        id: russh::ChannelId,
        _max_packet_size: u32,
        _window_size: u32,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        // Before the channel's first DATA, which may come before the opener
        // has its channel (server-speaks-first targets).
        if let Some(feed) = &self.inboxes {
            feed.0.register(id);
        }
        Ok(())
    }

    async fn data(
        &mut self,
        channel: russh::ChannelId,
        data: &[u8],
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        // Waits only when the tunnel's caps are reached (tunnel_buffer::Inboxes).
        if let Some(feed) = &self.inboxes {
            feed.0.data(channel, data).await;
        }
        Ok(())
    }

    async fn channel_eof(
        &mut self,
        channel: russh::ChannelId,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        if let Some(feed) = &self.inboxes {
            feed.0.eof(channel);
        }
        Ok(())
    }

    async fn channel_close(
        &mut self,
        channel: russh::ChannelId,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        if let Some(feed) = &self.inboxes {
            feed.0.close(channel);
        }
        Ok(())
    }

    async fn channel_open_failure(
        &mut self,
        _channel: russh::ChannelId,
        _reason: ChannelOpenFailure,
        description: &str,
        _language: &str,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        self.failures.push(description.to_owned());
        Ok(())
    }

    async fn server_channel_open_forwarded_tcpip(
        &mut self,
        channel: Channel<client::Msg>,
        connected_address: &str,
        connected_port: u32,
        originator_address: &str,
        originator_port: u32,
        reply: client::ChannelOpenHandle,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        // Runs inside russh's session task: hand over, never wait here.
        let session = self.session.get().and_then(Weak::upgrade);
        let (Some(tx), Some(session)) = (&self.forwarded, session) else {
            debug!(
                bound = %connected_address, port = connected_port,
                "refusing a forwarded-tcpip channel we did not ask for"
            );
            reply
                .reject(ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        };
        // The inbox exists before the hand-over (hence before we accept and
        // before any DATA); every refusal below and in `proxy::remote_forward`
        // forgets it (`ForwardedChannel::reject`).
        if let Some(feed) = &self.inboxes {
            feed.0.register(channel.id());
        }
        let fc = ForwardedChannel {
            session,
            channel,
            reply,
            bound_host: connected_address.to_owned(),
            bound_port: connected_port,
            originator: format!("{originator_address}:{originator_port}"),
        };
        if let Err(e) = tx.try_send(fc) {
            let (why, fc) = match e {
                mpsc::error::TrySendError::Full(fc) => (ChannelOpenFailure::ResourceShortage, fc),
                // The receiver is gone (shutting down): no new
                // remote-forward connections.
                mpsc::error::TrySendError::Closed(fc) => {
                    (ChannelOpenFailure::AdministrativelyProhibited, fc)
                }
            };
            debug!(bound_port = connected_port, reason = ?why, "refusing a forwarded-tcpip channel");
            fc.reject(why).await;
        }
        Ok(())
    }
}
