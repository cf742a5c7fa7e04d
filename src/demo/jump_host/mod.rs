//! The demo's jump host: a tiny SSH server (russh, server side) that runs inside the
//! jumpgate process, so that `jumpgate demo` works with no setup, and that fault-injection
//! tests can make slow, refusing or silent on purpose.
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
//! through a real sshd; this module talks to no other part of jumpgate.

use std::borrow::Cow;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use russh::keys::{PrivateKey, PublicKey};
use russh::server::{
    self, Auth, ChannelOpenHandle, Msg, PublicKeyOffer, Session, VerifiedPublicKey,
};
use russh::{
    cipher, Channel, ChannelId, ChannelMsg, ChannelOpenFailure, ChannelReadHalf, ChannelWriteHalf,
    MethodKind, MethodSet, Preferred, SshId,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, Semaphore};
use tokio::task::JoinSet;
use tokio::time::{sleep, sleep_until, timeout, timeout_at, Instant};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tokio_util::task::AbortOnDropHandle;
use tracing::{debug, debug_span, warn, Instrument, Span};

/// The host name the jump host answers itself, with an HTTP page (any port, any case).
/// `.jumpgate` is no real top-level domain, so the name can only work through the tunnel.
pub const DEMO_HOST: &str = "hello.jumpgate";

/// Connections served at once; the permit is taken before `accept()`, so a flood waits
/// in the kernel's backlog instead of growing our memory.
const MAX_CONNECTIONS: usize = 64;
/// From TCP accept to a successful login (OpenSSH's `LoginGraceTime`, shortened).
const LOGIN_GRACE: Duration = Duration::from_secs(30);
/// Resolving and connecting a `direct-tcpip` target, as a whole.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The hello page reads at most this much request head...
const MAX_REQUEST_HEAD: usize = 16 * 1024;
/// ...within this time; a client that says nothing gets the channel closed.
const REQUEST_HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// After the page and our EOF, how long we wait for the client's EOF before closing.
/// Closing first is legal but leaves an entry in russh's server session (see `close`).
const CLOSE_LINGER: Duration = Duration::from_secs(5);
/// Pause after a failed `accept()` (EMFILE and friends) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// What to start: where to listen, who may log in, and how to misbehave.
pub struct JumpHostConfig {
    /// A loopback address; port 0 picks a free port (see [`JumpHost::addr`]).
    pub bind: SocketAddr,
    /// The host key clients see; put its public half in their known_hosts.
    pub host_key: PrivateKey,
    /// Client keys allowed to log in, under any user name. Compared by key data, so
    /// comments do not matter. Empty means nobody gets in.
    pub authorized: Vec<PublicKey>,
    /// Fault knobs for tests; the default behaves like a healthy sshd.
    pub behaviour: Behaviour,
}

/// Fault knobs. The default is a well-behaved jump host.
#[derive(Clone, Debug, Default)]
pub struct Behaviour {
    /// Delay every `direct-tcpip` answer, accept or refusal, by this much (slow opens).
    /// The delay is per channel: other channels and the session keep moving.
    pub open_delay: Option<Duration>,
    /// Refuse every `direct-tcpip` channel with this reason (after `open_delay`).
    /// The description sent is russh's stock text for the reason.
    pub refuse_all: Option<ChannelOpenFailure>,
    /// Accept TCP connections but never send the SSH banner (a hung server).
    pub silent: bool,
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
}

/// A running jump host. Dropping it stops everything it started: the listener at once,
/// and every live SSH session (with its channels) at the session's next poll.
pub struct JumpHost {
    /// Where it listens, with the real port when the config asked for port 0.
    addr: SocketAddr,
    /// Severs every session's TCP stream on drop. russh runs each session in a task of its
    /// own that we cannot abort, so we end it by failing its socket instead.
    cut: CancellationToken,
    /// The accept loop; it owns the connection tasks, which die with it.
    _accept: AbortOnDropHandle<()>,
}

impl JumpHost {
    /// Binds `cfg.bind` and starts serving. Returns once the listener is bound, so the
    /// address can be handed to a client right away.
    pub async fn start(cfg: JumpHostConfig) -> Result<JumpHost, JumpHostError> {
        let JumpHostConfig {
            bind,
            host_key,
            authorized,
            behaviour,
        } = cfg;
        if !bind.ip().is_loopback() {
            return Err(JumpHostError::NotLoopback { addr: bind });
        }
        let listener = TcpListener::bind(bind)
            .await
            .map_err(|source| JumpHostError::Bind { addr: bind, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| JumpHostError::Bind { addr: bind, source })?;
        let shared = Arc::new(Shared {
            authorized,
            behaviour,
        });
        let cut = CancellationToken::new();
        let accept = tokio::spawn(
            accept_loop(
                listener,
                Arc::new(server_config(host_key)),
                shared,
                cut.clone(),
            )
            .instrument(debug_span!("jump_host", %addr)),
        );
        debug!(%addr, "demo jump host listening");
        Ok(JumpHost {
            addr,
            cut,
            _accept: AbortOnDropHandle::new(accept),
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
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

/// Ciphers we accept, aes128-gcm first. In SSH the client's order decides; listing
/// aes128-gcm at all matters because russh leaves it out by default and it is the
/// fastest cipher for both russh and OpenSSH here.
const CIPHERS: &[cipher::Name] = &[
    cipher::AES_128_GCM,
    cipher::CHACHA20_POLY1305,
    cipher::AES_256_GCM,
    cipher::AES_256_CTR,
    cipher::AES_192_CTR,
    cipher::AES_128_CTR,
];

fn server_config(host_key: PrivateKey) -> server::Config {
    let mut methods = MethodSet::empty();
    methods.push(MethodKind::PublicKey);
    // russh aborts a session (Error::Pending) when more than two windows of channel data
    // arrive during a rekey it started itself; with several busy channels that happens.
    // A loopback demo host gains nothing from byte-count rekeys, so only the hourly
    // time-based one remains. (`Limits::new` would assert on these values.)
    let limits = russh::Limits {
        rekey_read_limit: usize::MAX,
        rekey_write_limit: usize::MAX,
        ..russh::Limits::default()
    };
    server::Config {
        server_id: SshId::Standard(Cow::Borrowed(concat!(
            "SSH-2.0-jumpgate_",
            env!("CARGO_PKG_VERSION"),
            " demo-jump-host"
        ))),
        methods,
        // Rejections are deliberately slow in russh (1 s by default); here they only
        // slow down tests. OpenSSH probes with "none" first: answer that at once.
        auth_rejection_time: Duration::from_millis(50),
        auth_rejection_time_initial: Some(Duration::ZERO),
        keys: vec![host_key],
        limits,
        preferred: Preferred {
            cipher: Cow::Borrowed(CIPHERS),
            ..Preferred::default()
        },
        max_auth_attempts: 6,
        // Idle sessions are the normal state of a pool; dead peers are found by keepalives.
        inactivity_timeout: None,
        keepalive_interval: Some(Duration::from_secs(15)),
        keepalive_max: 3,
        nodelay: true,
        ..server::Config::default()
    }
}

/// What every connection's handler needs; read-only after start.
struct Shared {
    authorized: Vec<PublicKey>,
    behaviour: Behaviour,
}

impl Shared {
    fn is_authorized(&self, key: &PublicKey) -> bool {
        self.authorized
            .iter()
            .any(|k| k.key_data() == key.key_data())
    }
}

async fn accept_loop(
    listener: TcpListener,
    config: Arc<server::Config>,
    shared: Arc<Shared>,
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

async fn serve_conn(
    tcp: TcpStream,
    config: Arc<server::Config>,
    shared: Arc<Shared>,
    cut: CancellationToken,
) {
    debug!("connection accepted");
    if shared.behaviour.silent {
        drain_silently(tcp).await;
        return;
    }
    let (authed_tx, authed_rx) = oneshot::channel();
    let handler = ConnHandler {
        shared,
        channels: JoinSet::new(),
        authed: Some(authed_tx),
        span: Span::current(),
    };
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

/// The `silent` behaviour: hold the connection, say nothing, discard what arrives.
async fn drain_silently(mut tcp: TcpStream) {
    let mut sink = [0u8; 4096];
    loop {
        match tcp.read(&mut sink).await {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                debug!(error = %e, "silent connection read failed");
                break;
            }
        }
    }
    debug!("silent connection closed by the client");
}

/// A socket that fails once its token is cancelled. russh spawns each session's task
/// itself and gives no way to abort it; a failing socket ends it.
struct Severable<S> {
    inner: S,
    token: CancellationToken,
    /// Wakes the session's (always pending) read when the token is cancelled.
    cut: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl<S> Severable<S> {
    fn new(inner: S, token: CancellationToken) -> Self {
        let cut = Box::pin(token.clone().cancelled_owned());
        Severable { inner, token, cut }
    }

    fn severed() -> io::Error {
        io::Error::new(io::ErrorKind::ConnectionAborted, "demo jump host stopped")
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Severable<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.token.is_cancelled() || self.cut.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(Self::severed()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Severable<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.token.is_cancelled() {
            return Poll::Ready(Err(Self::severed()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.token.is_cancelled() {
            return Poll::Ready(Err(Self::severed()));
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// One SSH connection. russh owns it (inside its session task) and drops it when the
/// session ends, which aborts the channel tasks in `channels`.
struct ConnHandler {
    shared: Arc<Shared>,
    /// One task per open `direct-tcpip` channel, so a slow connect or a slow reader never
    /// holds up the session loop that calls us.
    channels: JoinSet<()>,
    /// Tells `serve_conn` that the login grace timer can stop.
    authed: Option<oneshot::Sender<()>>,
    /// The connection's span: russh calls us from its own task, outside it.
    span: Span,
}

impl server::Handler for ConnHandler {
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
        let behaviour = self.shared.behaviour.clone();
        let host = host_to_connect.to_owned();
        self.channels.spawn(
            open_direct_tcpip(channel, host, port_to_connect, reply, behaviour).instrument(span),
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
async fn open_direct_tcpip(
    channel: Channel<Msg>,
    host: String,
    port: u32,
    reply: ChannelOpenHandle,
    behaviour: Behaviour,
) {
    if let Some(delay) = behaviour.open_delay {
        sleep(delay).await;
    }
    if let Some(reason) = behaviour.refuse_all {
        debug!(?reason, "refused (refuse_all)");
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
        Err(text) => {
            debug!(reason = %text, "refused: connect failed");
            reply.reject(connect_failed(text)).await;
            return;
        }
    };
    reply.accept().await;
    relay(channel, tcp).await;
}

fn is_demo_host(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    host.eq_ignore_ascii_case(DEMO_HOST)
}

/// `SSH_OPEN_CONNECT_FAILED` with our own description. `ChannelOpenFailure::ConnectFailed`
/// always carries russh's "Connect failed"; `Other` with the same code puts our text on
/// the wire, and clients decode code 2 as `ConnectFailed` as usual.
fn connect_failed(text: String) -> ChannelOpenFailure {
    ChannelOpenFailure::Other {
        code: ChannelOpenFailure::ConnectFailed.code(),
        reason: text,
    }
}

/// Resolves and connects like sshd: every address in order, the last error wins. The
/// error is the text sshd would send: "Name or service not known", "Connection refused".
async fn connect_target(host: &str, port: u32) -> Result<TcpStream, String> {
    let deadline = Instant::now() + CONNECT_TIMEOUT;
    let Ok(port) = u16::try_from(port) else {
        return Err(format!("invalid port {port}"));
    };
    let addrs: Vec<SocketAddr> =
        match timeout_at(deadline, tokio::net::lookup_host((host, port))).await {
            Ok(Ok(addrs)) => addrs.collect(),
            Ok(Err(e)) => {
                debug!(error = %e, "name resolution failed");
                Vec::new()
            }
            Err(_) => return Err(TIMED_OUT.to_owned()),
        };
    if addrs.is_empty() {
        return Err(NAME_UNKNOWN.to_owned());
    }
    let mut last = None;
    for addr in addrs {
        match timeout_at(deadline, TcpStream::connect(addr)).await {
            Ok(Ok(tcp)) => {
                debug!(%addr, "connected");
                return Ok(tcp);
            }
            Ok(Err(e)) => {
                debug!(%addr, error = %e, "connect failed");
                last = Some(e);
            }
            Err(_) => return Err(TIMED_OUT.to_owned()),
        }
    }
    Err(last.map_or_else(|| NAME_UNKNOWN.to_owned(), |e| sshd_error_text(&e)))
}

const NAME_UNKNOWN: &str = "Name or service not known";
const TIMED_OUT: &str = "Connection timed out";

/// `strerror(errno)`, as sshd sends it: io::Error's text without " (os error N)".
fn sshd_error_text(e: &io::Error) -> String {
    if e.kind() == io::ErrorKind::ConnectionRefused {
        return "Connection refused".to_owned();
    }
    let text = e.to_string();
    match text.rsplit_once(" (os error ") {
        Some((msg, _)) => msg.to_owned(),
        None => text,
    }
}

/// The next thing the client sent on a channel.
enum Incoming {
    Data(Bytes),
    /// The client sent EOF: it will send no more data.
    Eof,
    /// The client closed the channel (russh has already answered with CLOSE).
    Closed,
}

async fn next_incoming(read: &mut ChannelReadHalf) -> Incoming {
    loop {
        match read.wait().await {
            Some(ChannelMsg::Data { data }) => return Incoming::Data(data),
            Some(ChannelMsg::Eof) => return Incoming::Eof,
            Some(ChannelMsg::Close) | None => return Incoming::Closed,
            // Window adjustments, extended data, requests: nothing to do for a TCP tunnel.
            Some(_) => {}
        }
    }
}

/// Closes our side unless the client already closed the channel.
///
/// When we close first, russh (0.65.1) answers the client's CLOSE with nothing and keeps
/// the channel's entry in the session until the session ends; sshd closes first too, so
/// we accept that and linger a little where we can (the hello page).
async fn close(write: &ChannelWriteHalf<Msg>, client_closed: bool) {
    if client_closed {
        return;
    }
    if let Err(e) = write.close().await {
        debug!(error = %e, "channel close not sent: session gone");
    }
}

// === the hello page ===

/// Serves [`DEMO_HOST`]: reads one request head, answers it, sends EOF and closes.
async fn serve_hello_page(channel: Channel<Msg>) {
    let (mut read, write) = channel.split();
    let mut head = Vec::new();
    let mut client_done = None; // Some(closed?) once the client sent EOF or closed
    let scan = timeout(REQUEST_HEAD_TIMEOUT, async {
        loop {
            match scan_request_head(&head) {
                Head::Incomplete if head.len() < MAX_REQUEST_HEAD => {}
                Head::Incomplete => return Some(Head::TooLarge),
                done => return Some(done),
            }
            match next_incoming(&mut read).await {
                Incoming::Data(data) => head.extend_from_slice(&data),
                Incoming::Eof => {
                    client_done = Some(false);
                    return match scan_request_head(&head) {
                        Head::Incomplete if trim_leading_newlines(&head).is_empty() => None,
                        Head::Incomplete => Some(Head::NotHttp),
                        done => Some(done),
                    };
                }
                Incoming::Closed => {
                    client_done = Some(true);
                    return None;
                }
            }
        }
    })
    .await;
    let response = match scan {
        Ok(Some(head)) => hello_response(&head),
        Ok(None) => None,
        Err(_) => {
            debug!(timeout = ?REQUEST_HEAD_TIMEOUT, "no request head in time");
            None
        }
    };
    if client_done == Some(true) {
        debug!("client closed the channel before a request");
        return;
    }
    if let Some(response) = response {
        let status = response.status;
        let mut out = write.make_writer();
        let sent = async {
            out.write_all(&response.bytes).await?;
            out.shutdown().await // EOF
        }
        .await;
        match sent {
            Ok(()) => debug!(status, bytes = response.bytes.len(), "hello page sent"),
            Err(e) => debug!(error = %e, "hello page not sent"),
        }
    } else if let Err(e) = write.eof().await {
        debug!(error = %e, "EOF not sent");
    }
    let mut client_closed = client_done == Some(true);
    if client_done.is_none() {
        // Let the client send its EOF (or close) first, within reason; ignore its data.
        let linger = timeout(CLOSE_LINGER, async {
            loop {
                match next_incoming(&mut read).await {
                    Incoming::Data(_) => {}
                    Incoming::Eof => return false,
                    Incoming::Closed => return true,
                }
            }
        })
        .await;
        client_closed = linger.unwrap_or(false);
    }
    close(&write, client_closed).await;
}

/// How far the request head has come.
#[derive(Debug, PartialEq, Eq)]
enum Head {
    /// More bytes needed.
    Incomplete,
    /// A complete head with this method.
    Complete { head_only: bool },
    /// Not an HTTP/1.x request (a TLS hello, SSH, binary, a bad request line).
    NotHttp,
    /// No end of head within [`MAX_REQUEST_HEAD`].
    TooLarge,
}

/// Looks at what arrived so far. Judges the request line as soon as it is complete and
/// rejects non-text early, so a TLS ClientHello gets its 400 without waiting.
fn scan_request_head(buf: &[u8]) -> Head {
    // RFC 9112 2.2: ignore empty lines before the request line.
    let buf = trim_leading_newlines(buf);
    let line_end = buf.iter().position(|&b| b == b'\n');
    let line = &buf[..line_end.unwrap_or(buf.len())];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if !line.iter().all(|&b| (0x20..0x7f).contains(&b)) {
        return Head::NotHttp;
    }
    let Some(line_end) = line_end else {
        return Head::Incomplete;
    };
    let Some(head_only) = parse_request_line(line) else {
        return Head::NotHttp;
    };
    // From the request line's LF on: an empty line ends the head.
    let rest = &buf[line_end..];
    if rest.windows(2).any(|w| w == b"\n\n") || rest.windows(3).any(|w| w == b"\n\r\n") {
        Head::Complete { head_only }
    } else {
        Head::Incomplete
    }
}

fn trim_leading_newlines(buf: &[u8]) -> &[u8] {
    let start = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    &buf[start..]
}

/// `METHOD SP target SP HTTP/1.x`; returns whether it is a HEAD request.
fn parse_request_line(line: &[u8]) -> Option<bool> {
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    let is_token_char = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    let ok = parts.next().is_none()
        && !method.is_empty()
        && method.chars().all(is_token_char)
        && !target.is_empty()
        && matches!(version, "HTTP/1.0" | "HTTP/1.1");
    ok.then_some(method == "HEAD")
}

struct Response {
    status: u16,
    bytes: Vec<u8>,
}

const HELLO_BODY: &str = "<!DOCTYPE html>
<html lang=\"en\">
<head><meta charset=\"utf-8\"><title>It works: jumpgate</title></head>
<body>
<h1>It works</h1>
<p>It works: this page came through jumpgate's SSH tunnel from the demo jump host hello.jumpgate.</p>
<p>Your client spoke SOCKS5 to jumpgate on this machine; jumpgate carried the connection
over an SSH <code>direct-tcpip</code> channel to its built-in demo jump host, which served
this page itself. Point jumpgate at your own bastion to reach your private network the same way.</p>
</body>
</html>
";

fn hello_response(head: &Head) -> Option<Response> {
    let (status, reason, content_type, body, head_only) = match *head {
        Head::Complete { head_only } => {
            (200, "OK", "text/html; charset=utf-8", HELLO_BODY, head_only)
        }
        Head::NotHttp => (
            400,
            "Bad Request",
            "text/plain; charset=utf-8",
            "400 Bad Request: hello.jumpgate speaks HTTP/1.1 only\n",
            false,
        ),
        Head::TooLarge => (
            431,
            "Request Header Fields Too Large",
            "text/plain; charset=utf-8",
            "431 Request Header Fields Too Large\n",
            false,
        ),
        Head::Incomplete => return None,
    };
    let mut bytes = format!(
        "HTTP/1.1 {status} {reason}\r\n\
         Content-Type: {content_type}\r\n\
         Content-Length: {}\r\n\
         Cache-Control: no-store\r\n\
         Server: jumpgate-demo\r\n\
         Connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        bytes.extend_from_slice(body.as_bytes());
    }
    Some(Response { status, bytes })
}

// === relaying to a real target ===

/// Copies both ways until both sides are done, with half-close: the client's EOF shuts
/// down our TCP write side, the target's EOF becomes a channel EOF. Then closes.
async fn relay(channel: Channel<Msg>, mut tcp: TcpStream) {
    let (mut read, write) = channel.split();
    let (mut tcp_read, mut tcp_write) = tcp.split();
    let mut to_client = write.make_writer();

    let up = async {
        let mut bytes = 0u64;
        loop {
            match next_incoming(&mut read).await {
                Incoming::Data(data) => {
                    tcp_write.write_all(&data).await?;
                    bytes += data.len() as u64;
                }
                Incoming::Eof => {
                    tcp_write.shutdown().await?;
                    return Ok::<_, io::Error>((bytes, false));
                }
                Incoming::Closed => return Ok((bytes, true)),
            }
        }
    };
    let down = async {
        let bytes = tokio::io::copy(&mut tcp_read, &mut to_client).await?;
        to_client.shutdown().await?; // channel EOF
        Ok::<_, io::Error>(bytes)
    };
    tokio::pin!(up, down);

    let mut up_done = None;
    let mut down_done = None;
    let client_closed = loop {
        tokio::select! {
            r = &mut up, if up_done.is_none() => match r {
                // The client is gone: nothing more can be delivered to it.
                Ok((_, true)) => { up_done = Some(r); break true; }
                Ok(_) => up_done = Some(r),
                Err(_) => { up_done = Some(r); break false; }
            },
            r = &mut down, if down_done.is_none() => {
                let failed = r.is_err();
                down_done = Some(r);
                if failed { break false; }
            },
        }
        if up_done.is_some() && down_done.is_some() {
            break false;
        }
    };
    let up = up_done.map(|r| r.map(|(bytes, _)| bytes));
    match (up, down_done) {
        (Some(Ok(up)), Some(Ok(down))) => debug!(up, down, "relay done"),
        (up, down) => debug!(
            up = ?up.map(|r| r.map_err(|e| e.to_string())),
            down = ?down.map(|r| r.map_err(|e| e.to_string())),
            client_closed,
            "relay ended early"
        ),
    }
    close(&write, client_closed).await;
}

#[cfg(test)]
mod tests {
    use std::process::Stdio;
    use std::sync::Mutex;

    use russh::client;
    use russh::keys::{PrivateKeyWithHashAlg, PublicKeyOrCertificate};

    use super::*;

    const LOOPBACK: &str = "127.0.0.1:0";
    /// Upper bound for anything that should happen at once on loopback.
    const SOON: Duration = Duration::from_secs(5);

    struct Fixture {
        host: JumpHost,
        host_key: PublicKey,
        client_key: PrivateKey,
    }

    async fn start(behaviour: Behaviour) -> Fixture {
        let host_key = generate_key().unwrap();
        let client_key = generate_key().unwrap();
        let host = JumpHost::start(JumpHostConfig {
            bind: LOOPBACK.parse().unwrap(),
            host_key: host_key.clone(),
            authorized: vec![client_key.public_key().clone()],
            behaviour,
        })
        .await
        .unwrap();
        Fixture {
            host,
            host_key: host_key.public_key().clone(),
            client_key,
        }
    }

    /// A russh client that checks the host key and records channel-open failures.
    struct TestClient {
        host_key: PublicKey,
        failures: Arc<Mutex<Vec<(ChannelOpenFailure, String)>>>,
    }

    impl client::Handler for TestClient {
        type Error = russh::Error;

        async fn check_server_key(
            &mut self,
            key: &PublicKeyOrCertificate,
        ) -> Result<bool, Self::Error> {
            Ok(matches!(key, PublicKeyOrCertificate::PublicKey { key, .. }
                if key.key_data() == self.host_key.key_data()))
        }

        async fn channel_open_failure(
            &mut self,
            _channel: ChannelId,
            reason: ChannelOpenFailure,
            description: &str,
            _language: &str,
            _session: &mut client::Session,
        ) -> Result<(), Self::Error> {
            self.failures
                .lock()
                .unwrap()
                .push((reason, description.to_owned()));
            Ok(())
        }
    }

    struct Client {
        handle: client::Handle<TestClient>,
        failures: Arc<Mutex<Vec<(ChannelOpenFailure, String)>>>,
    }

    impl Fixture {
        async fn connect_unauthenticated(&self, config: client::Config) -> Client {
            let failures = Arc::new(Mutex::new(Vec::new()));
            let handler = TestClient {
                host_key: self.host_key.clone(),
                failures: failures.clone(),
            };
            let handle = timeout(
                SOON,
                client::connect(Arc::new(config), self.host.addr(), handler),
            )
            .await
            .expect("SSH handshake timed out")
            .expect("SSH handshake failed");
            Client { handle, failures }
        }

        async fn connect(&self) -> Client {
            let mut client = self
                .connect_unauthenticated(client::Config::default())
                .await;
            let key = PrivateKeyWithHashAlg::new(Arc::new(self.client_key.clone()), None);
            let auth = client
                .handle
                .authenticate_publickey("anyone", key)
                .await
                .unwrap();
            assert!(auth.success(), "authorized key was rejected: {auth:?}");
            client
        }
    }

    impl Client {
        async fn open(&self, host: &str, port: u32) -> Result<Channel<client::Msg>, russh::Error> {
            timeout(
                SOON,
                self.handle
                    .channel_open_direct_tcpip(host, port, "127.0.0.1", 40000),
            )
            .await
            .expect("channel open got no answer")
        }

        fn last_failure(&self) -> (ChannelOpenFailure, String) {
            self.failures.lock().unwrap().last().cloned().unwrap()
        }
    }

    /// Reads until the server's EOF; panics on CLOSE without EOF or on a stall.
    async fn read_to_eof(channel: &mut Channel<client::Msg>) -> Vec<u8> {
        let mut got = Vec::new();
        loop {
            match timeout(SOON, channel.wait()).await.expect("read stalled") {
                Some(ChannelMsg::Data { data }) => got.extend_from_slice(&data),
                Some(ChannelMsg::Eof) => return got,
                Some(ChannelMsg::Close) | None => panic!("closed without EOF"),
                Some(_) => {}
            }
        }
    }

    /// Waits for the server's CLOSE (russh may report it as the end of the stream).
    async fn expect_close(channel: &mut Channel<client::Msg>) {
        loop {
            match timeout(SOON, channel.wait()).await.expect("no CLOSE") {
                Some(ChannelMsg::Close) | None => return,
                Some(ChannelMsg::Data { .. }) => panic!("data after EOF"),
                Some(_) => {}
            }
        }
    }

    fn split_response(response: &[u8]) -> (String, Vec<u8>) {
        let text = String::from_utf8_lossy(response);
        let (head, body) = text.split_once("\r\n\r\n").expect("no end of head");
        (head.to_owned(), body.as_bytes().to_vec())
    }

    fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
        head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    #[tokio::test]
    async fn hello_page_over_direct_tcpip() {
        let f = start(Behaviour::default()).await;
        let client = f.connect().await;
        let mut channel = client.open("HELLO.Jumpgate", 80).await.unwrap();
        channel
            .data_bytes(&b"GET / HTTP/1.1\r\nHost: hello.jumpgate\r\nUser-Agent: test\r\n\r\n"[..])
            .await
            .unwrap();
        // No EOF from us yet: the server answers after the head, like any web server.
        let response = read_to_eof(&mut channel).await;
        let (head, body) = split_response(&response);
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert_eq!(
            header(&head, "Content-Type"),
            Some("text/html; charset=utf-8")
        );
        assert_eq!(header(&head, "Connection"), Some("close"));
        assert_eq!(
            header(&head, "Content-Length"),
            Some(body.len().to_string().as_str())
        );
        let body = String::from_utf8(body).unwrap();
        assert!(body.contains("It works: this page came through jumpgate's SSH tunnel from the demo jump host hello.jumpgate"));
        channel.eof().await.unwrap();
        expect_close(&mut channel).await;
    }

    #[tokio::test]
    async fn hello_head_request_gets_headers_only() {
        let f = start(Behaviour::default()).await;
        let client = f.connect().await;
        let mut channel = client.open("hello.jumpgate.", 8080).await.unwrap();
        channel
            .data_bytes(&b"HEAD /x HTTP/1.0\r\n\r\n"[..])
            .await
            .unwrap();
        channel.eof().await.unwrap();
        let response = read_to_eof(&mut channel).await;
        let (head, body) = split_response(&response);
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert_eq!(
            header(&head, "Content-Length"),
            Some(HELLO_BODY.len().to_string().as_str())
        );
        assert!(body.is_empty());
        expect_close(&mut channel).await;
    }

    #[tokio::test]
    async fn hello_answers_non_http_with_400_at_once() {
        let f = start(Behaviour::default()).await;
        let client = f.connect().await;
        let mut channel = client.open(DEMO_HOST, 443).await.unwrap();
        // The start of a TLS ClientHello: no newline will ever come.
        channel
            .data_bytes(&[0x16u8, 0x03, 0x01, 0x02, 0x00, 0x01][..])
            .await
            .unwrap();
        let response = read_to_eof(&mut channel).await;
        let (head, body) = split_response(&response);
        assert!(head.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{head}");
        assert_eq!(
            header(&head, "Content-Length"),
            Some(body.len().to_string().as_str())
        );
        channel.eof().await.unwrap();
        expect_close(&mut channel).await;
    }

    #[tokio::test]
    async fn relay_to_echo_server_with_half_close() {
        let echo = TcpListener::bind(LOOPBACK).await.unwrap();
        let echo_port = echo.local_addr().unwrap().port();
        let echo_task = tokio::spawn(async move {
            let (mut tcp, _) = echo.accept().await.unwrap();
            let mut got = Vec::new();
            tcp.read_to_end(&mut got).await.unwrap(); // needs our EOF
            tcp.write_all(&got).await.unwrap();
            tcp.shutdown().await.unwrap();
            got.len()
        });
        let f = start(Behaviour::default()).await;
        let client = f.connect().await;
        let mut channel = client.open("127.0.0.1", echo_port.into()).await.unwrap();
        // Several packets' worth, and more than the echo server reads at once.
        let sent: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        channel.data_bytes(sent.clone()).await.unwrap();
        channel.eof().await.unwrap();
        let echoed = read_to_eof(&mut channel).await;
        assert_eq!(echoed.len(), sent.len());
        assert!(echoed == sent, "echoed bytes differ");
        expect_close(&mut channel).await;
        assert_eq!(echo_task.await.unwrap(), sent.len());
    }

    #[tokio::test]
    async fn relay_target_eof_first_keeps_client_direction_open() {
        let target = TcpListener::bind(LOOPBACK).await.unwrap();
        let port = target.local_addr().unwrap().port();
        let target_task = tokio::spawn(async move {
            let (mut tcp, _) = target.accept().await.unwrap();
            tcp.write_all(b"hello first\n").await.unwrap();
            tcp.shutdown().await.unwrap(); // half-close: we still read
            let mut got = Vec::new();
            tcp.read_to_end(&mut got).await.unwrap();
            got
        });
        let f = start(Behaviour::default()).await;
        let client = f.connect().await;
        let mut channel = client.open("localhost", port.into()).await.unwrap();
        assert_eq!(read_to_eof(&mut channel).await, b"hello first\n");
        channel.data_bytes(&b"late reply"[..]).await.unwrap();
        channel.eof().await.unwrap();
        expect_close(&mut channel).await;
        assert_eq!(target_task.await.unwrap(), b"late reply");
    }

    #[tokio::test]
    async fn refused_port_is_connect_failed_connection_refused() {
        let port = {
            let l = TcpListener::bind(LOOPBACK).await.unwrap();
            l.local_addr().unwrap().port()
        };
        let f = start(Behaviour::default()).await;
        let client = f.connect().await;
        let err = client.open("127.0.0.1", port.into()).await.unwrap_err();
        assert!(
            matches!(
                err,
                russh::Error::ChannelOpenFailure(ChannelOpenFailure::ConnectFailed)
            ),
            "{err:?}"
        );
        assert_eq!(
            client.last_failure(),
            (
                ChannelOpenFailure::ConnectFailed,
                "Connection refused".into()
            )
        );
    }

    #[tokio::test]
    async fn unknown_name_is_connect_failed_name_not_known() {
        let f = start(Behaviour::default()).await;
        let client = f.connect().await;
        let err = client.open("no-such-host.invalid", 80).await.unwrap_err();
        assert!(
            matches!(
                err,
                russh::Error::ChannelOpenFailure(ChannelOpenFailure::ConnectFailed)
            ),
            "{err:?}"
        );
        assert_eq!(
            client.last_failure(),
            (
                ChannelOpenFailure::ConnectFailed,
                "Name or service not known".into()
            )
        );
        // The session survives a refusal.
        assert!(client.open(DEMO_HOST, 80).await.is_ok());
    }

    #[tokio::test]
    async fn refuse_all_uses_the_chosen_reason() {
        let f = start(Behaviour {
            refuse_all: Some(ChannelOpenFailure::ResourceShortage),
            ..Behaviour::default()
        })
        .await;
        let client = f.connect().await;
        let err = client.open(DEMO_HOST, 80).await.unwrap_err();
        assert!(
            matches!(
                err,
                russh::Error::ChannelOpenFailure(ChannelOpenFailure::ResourceShortage)
            ),
            "{err:?}"
        );
        assert_eq!(
            client.last_failure().0,
            ChannelOpenFailure::ResourceShortage
        );
    }

    #[tokio::test]
    async fn open_delay_slows_each_open_without_serializing_them() {
        let delay = Duration::from_millis(400);
        let f = start(Behaviour {
            open_delay: Some(delay),
            ..Behaviour::default()
        })
        .await;
        let client = f.connect().await;
        let started = std::time::Instant::now();
        let (a, b) = tokio::join!(client.open(DEMO_HOST, 80), client.open(DEMO_HOST, 80));
        let elapsed = started.elapsed();
        assert!(a.is_ok() && b.is_ok());
        assert!(elapsed >= delay, "opened after {elapsed:?}");
        assert!(elapsed < 2 * delay, "delays were serialized: {elapsed:?}");
    }

    #[tokio::test]
    async fn silent_host_never_sends_a_banner() {
        let f = start(Behaviour {
            silent: true,
            ..Behaviour::default()
        })
        .await;
        let mut tcp = TcpStream::connect(f.host.addr()).await.unwrap();
        tcp.write_all(b"SSH-2.0-test\r\n").await.unwrap();
        let mut buf = [0u8; 64];
        let read = timeout(Duration::from_millis(500), tcp.read(&mut buf)).await;
        assert!(read.is_err(), "silent host answered: {read:?}");
    }

    #[tokio::test]
    async fn wrong_key_and_password_are_rejected() {
        let f = start(Behaviour::default()).await;
        let mut client = f.connect_unauthenticated(client::Config::default()).await;
        let stranger = generate_key().unwrap();
        let auth = client
            .handle
            .authenticate_publickey(
                "anyone",
                PrivateKeyWithHashAlg::new(Arc::new(stranger), None),
            )
            .await
            .unwrap();
        assert!(!auth.success());
        let auth = client
            .handle
            .authenticate_password("anyone", "secret")
            .await
            .unwrap();
        assert!(!auth.success());
        let auth = client.handle.authenticate_none("anyone").await.unwrap();
        assert!(!auth.success());
    }

    #[tokio::test]
    async fn session_channels_are_refused() {
        let f = start(Behaviour::default()).await;
        let client = f.connect().await;
        let err = timeout(SOON, client.handle.channel_open_session())
            .await
            .unwrap()
            .unwrap_err();
        assert!(
            matches!(
                err,
                russh::Error::ChannelOpenFailure(ChannelOpenFailure::AdministrativelyProhibited)
            ),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn aes128_gcm_is_offered() {
        let f = start(Behaviour::default()).await;
        let config = client::Config {
            preferred: Preferred {
                cipher: Cow::Borrowed(&[cipher::AES_128_GCM]),
                ..Preferred::default()
            },
            ..client::Config::default()
        };
        // Fails at key exchange if the server does not list aes128-gcm@openssh.com.
        f.connect_unauthenticated(config).await;
    }

    #[tokio::test]
    async fn drop_stops_listener_and_live_sessions() {
        let f = start(Behaviour::default()).await;
        let addr = f.host.addr();
        let client = f.connect().await;
        let mut channel = client.open(DEMO_HOST, 80).await.unwrap();
        drop(f.host);
        // The live session dies: its channel ends and new opens fail.
        timeout(SOON, async { while channel.wait().await.is_some() {} })
            .await
            .expect("channel outlived the jump host");
        assert!(client.open(DEMO_HOST, 80).await.is_err());
        timeout(SOON, async {
            while !client.handle.is_closed() {
                sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("session outlived the jump host");
        // The listener is gone.
        assert!(TcpStream::connect(addr).await.is_err());
    }

    #[tokio::test]
    async fn start_refuses_non_loopback_and_names_a_busy_address() {
        let key = generate_key().unwrap();
        let err = JumpHost::start(JumpHostConfig {
            bind: "0.0.0.0:0".parse().unwrap(),
            host_key: key.clone(),
            authorized: Vec::new(),
            behaviour: Behaviour::default(),
        })
        .await
        .err()
        .unwrap();
        assert!(matches!(err, JumpHostError::NotLoopback { .. }), "{err}");

        let busy = TcpListener::bind(LOOPBACK).await.unwrap();
        let addr = busy.local_addr().unwrap();
        let err = JumpHost::start(JumpHostConfig {
            bind: addr,
            host_key: key,
            authorized: Vec::new(),
            behaviour: Behaviour::default(),
        })
        .await
        .err()
        .unwrap();
        assert!(matches!(err, JumpHostError::Bind { .. }), "{err}");
        assert!(err.to_string().contains(&addr.to_string()), "{err}");
    }

    #[test]
    fn request_head_scanning() {
        use Head::*;
        assert_eq!(scan_request_head(b""), Incomplete);
        assert_eq!(scan_request_head(b"GET / HT"), Incomplete);
        assert_eq!(
            scan_request_head(b"GET / HTTP/1.1\r\nHost: x\r\n"),
            Incomplete
        );
        assert_eq!(
            scan_request_head(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
            Complete { head_only: false }
        );
        assert_eq!(
            scan_request_head(b"\r\nHEAD / HTTP/1.0\n\n"),
            Complete { head_only: true }
        );
        assert_eq!(
            scan_request_head(b"GET / HTTP/1.1\nA: b\n\r\n"),
            Complete { head_only: false }
        );
        assert_eq!(scan_request_head(b"\x16\x03\x01"), NotHttp);
        assert_eq!(scan_request_head(b"SSH-2.0-OpenSSH_9.2\r\n"), NotHttp);
        assert_eq!(scan_request_head(b"PRI * HTTP/2.0\r\n\r\n"), NotHttp);
        assert_eq!(scan_request_head(b"GET  / HTTP/1.1\r\n\r\n"), NotHttp);
        assert_eq!(scan_request_head(b"G\xc3\xa9T / HTTP/1.1"), NotHttp);
    }

    #[test]
    fn responses_are_well_formed() {
        let ok = hello_response(&Head::Complete { head_only: false }).unwrap();
        assert_eq!(ok.status, 200);
        let (head, body) = split_response(&ok.bytes);
        assert_eq!(body, HELLO_BODY.as_bytes());
        assert!(body.windows(8).any(|w| w == b"jumpgate"));
        assert_eq!(
            header(&head, "Content-Length"),
            Some(HELLO_BODY.len().to_string().as_str())
        );
        let too_large = hello_response(&Head::TooLarge).unwrap();
        assert_eq!(too_large.status, 431);
        assert!(hello_response(&Head::Incomplete).is_none());
    }

    #[test]
    fn demo_host_and_error_texts() {
        assert!(is_demo_host("hello.jumpgate"));
        assert!(is_demo_host("Hello.JumpGate."));
        assert!(!is_demo_host("hello.jumpgate.example"));
        assert!(!is_demo_host("xhello.jumpgate"));
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(sshd_error_text(&refused), "Connection refused");
        let unreachable = io::Error::from_raw_os_error(101); // ENETUNREACH on Linux
        assert_eq!(sshd_error_text(&unreachable), "Network is unreachable");
        assert_eq!(
            connect_failed("x".into()).code(),
            ChannelOpenFailure::ConnectFailed.code()
        );
    }

    // === the real OpenSSH client against it ===

    /// A temp dir with the client key (mode 0600) and a known_hosts line for the host.
    struct OpenSsh {
        dir: tempfile::TempDir,
        port: u16,
    }

    impl OpenSsh {
        fn new(f: &Fixture) -> OpenSsh {
            use std::os::unix::fs::PermissionsExt;
            let dir = tempfile::tempdir().unwrap();
            let key_path = dir.path().join("id_ed25519");
            let pem = f
                .client_key
                .to_openssh(russh::keys::ssh_key::LineEnding::LF)
                .unwrap();
            std::fs::write(&key_path, pem.as_bytes()).unwrap();
            std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
            let port = f.host.addr().port();
            let line = format!("[127.0.0.1]:{port} {}\n", f.host_key.to_openssh().unwrap());
            std::fs::write(dir.path().join("known_hosts"), line).unwrap();
            OpenSsh { dir, port }
        }

        /// `ssh -W target` with `stdin` as the tunnelled request; (status, stdout, stderr).
        async fn stdio_forward(&self, target: &str, stdin: &[u8]) -> (bool, Vec<u8>, String) {
            let dir = self.dir.path();
            let mut child = tokio::process::Command::new("ssh")
                .args(["-F", "/dev/null", "-T", "-o", "BatchMode=yes"])
                .args(["-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none"])
                .args(["-o", "StrictHostKeyChecking=yes"])
                .arg("-o")
                .arg(format!(
                    "UserKnownHostsFile={}",
                    dir.join("known_hosts").display()
                ))
                .arg("-i")
                .arg(dir.join("id_ed25519"))
                .args(["-p", &self.port.to_string(), "-W", target, "demo@127.0.0.1"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .expect("OpenSSH client `ssh` not found: install openssh-client");
            let mut input = child.stdin.take().unwrap();
            input.write_all(stdin).await.unwrap();
            drop(input); // EOF, sent on as channel EOF
            let out = timeout(Duration::from_secs(20), child.wait_with_output())
                .await
                .expect("ssh did not finish")
                .unwrap();
            (
                out.status.success(),
                out.stdout,
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        }
    }

    #[tokio::test]
    async fn openssh_client_gets_the_page_and_sshd_like_refusals() {
        let f = start(Behaviour::default()).await;
        let ssh = OpenSsh::new(&f);

        let (ok, stdout, stderr) = ssh
            .stdio_forward(
                "hello.jumpgate:80",
                b"GET / HTTP/1.1\r\nHost: hello.jumpgate\r\n\r\n",
            )
            .await;
        assert!(ok, "ssh -W failed: {stderr}");
        let (head, body) = split_response(&stdout);
        assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}\n{stderr}");
        assert!(String::from_utf8_lossy(&body).contains("jumpgate"));

        let closed_port = {
            let l = TcpListener::bind(LOOPBACK).await.unwrap();
            l.local_addr().unwrap().port()
        };
        let (ok, _, stderr) = ssh
            .stdio_forward(&format!("127.0.0.1:{closed_port}"), b"")
            .await;
        assert!(!ok);
        assert!(
            stderr.contains("open failed: connect failed: Connection refused"),
            "{stderr}"
        );

        let (ok, _, stderr) = ssh.stdio_forward("no-such-host.invalid:80", b"").await;
        assert!(!ok);
        assert!(
            stderr.contains("open failed: connect failed: Name or service not known"),
            "{stderr}"
        );
    }

    #[tokio::test]
    async fn openssh_client_with_unknown_key_is_refused() {
        let f = start(Behaviour::default()).await;
        let stranger = Fixture {
            host: f.host,
            host_key: f.host_key,
            client_key: generate_key().unwrap(),
        };
        let ssh = OpenSsh::new(&stranger);
        let (ok, _, stderr) = ssh.stdio_forward("hello.jumpgate:80", b"").await;
        assert!(!ok);
        assert!(stderr.contains("Permission denied (publickey)"), "{stderr}");
    }
}
