//! Moves bytes between a client TCP connection and an SSH channel, both
//! directions, with half-close, and reports what happened.
//!
//! russh traps shape this (DESIGN.md "Facts"): closing a channel from our side
//! before the server's CLOSE leaks the channel's entry in the session for its
//! whole life. So we never close first on the normal path: client EOF becomes
//! channel EOF, and the relay ends when the server sends CLOSE. Only when the
//! client is gone and the server keeps sending past `DRAIN_LIMIT` (or at
//! forced shutdown) do we close first, and say so in the result.

use std::io::{self, IoSlice};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};
use russh::{client, Channel, ChannelMsg};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::ssh::session::{ChannelGuard, JumpSession};

/// How long we keep draining (and discarding) a channel whose client is gone
/// before closing it from our side.
pub const DRAIN_LIMIT: Duration = Duration::from_secs(10);

/// Per-tunnel buffer between the channel and a slow client. Beyond it the
/// tunnel counts as stalled. With russh's queue of 100 packets (3.2 MiB) on
/// top, one stalled tunnel holds at most about 4.2 MiB.
pub const STALL_BUFFER: usize = 1024 * 1024;

/// Packets written to the client per system call, at most.
const WRITE_BATCH: usize = 16;

/// Client reads are this big: one SSH packet's worth (maximum_packet_size).
const READ_CHUNK: usize = 32 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The server closed the channel after the exchange; the normal end.
    Closed,
    /// The client went away (reset, broken pipe) and the server closed after.
    ClientGone(io::ErrorKind),
    /// The client was gone and the server kept sending; we closed first.
    DrainTimeout,
    /// The SSH session died under the tunnel.
    SessionLost,
    /// Forced shutdown.
    Shutdown,
    /// The client stopped reading for `stall_timeout` with a full buffer;
    /// closed so that the session's other tunnels resume.
    Stalled,
}

/// Where a tunnel's bytes are counted as they pass: the upstream's
/// `jumpgate_transferred_bytes_total` series (resolved once per listener)
/// and, in `run`, the session's own counters for `/status`. Lock-free
/// atomic adds, so tunnels never serialise on them.
#[derive(Clone)]
pub struct Meter {
    pub up: prometheus::IntCounter,
    pub down: prometheus::IntCounter,
}

#[derive(Debug, Clone, Copy)]
pub struct RelayStats {
    /// Client -> jump host bytes.
    pub up: u64,
    /// Jump host -> client bytes.
    pub down: u64,
    pub end: End,
    pub elapsed: Duration,
}

/// Runs until the channel is closed (or `force` is cancelled). `early` is
/// client data already read (sent along with the SOCKS request).
///
/// The two directions run as two futures polled together: awaiting the
/// channel window while the channel's inbound queue fills would block russh's
/// session task and with it the window adjust we wait for.
///
/// Head-of-line: russh's session task blocks on a channel whose queue is
/// full, stalling every channel of the session. So the down direction always
/// drains the channel into a per-tunnel buffer of `STALL_BUFFER` bytes while
/// writing to the client; when the buffer is full the tunnel is marked
/// stalled (its session gets no new channels), and if the client then takes
/// nothing for `stall_timeout` the tunnel is closed so the session's others
/// resume. A slow but moving client is kept (its session runs at its pace).
pub async fn run(
    client: TcpStream,
    early: Bytes,
    channel: Channel<client::Msg>,
    guard: &mut ChannelGuard,
    meter: &Meter,
    stall_timeout: Duration,
    force: CancellationToken,
) -> RelayStats {
    let started = Instant::now();
    let session = guard.session().clone();
    let tally = Tally {
        meter,
        session: &session,
        up: AtomicU64::new(0),
        down: AtomicU64::new(0),
    };
    let (mut rx, tx) = channel.split();
    let (mut cr, mut cw) = client.into_split();

    let outcome = {
        let tx = &tx;
        let tally = &tally;
        let up = async move {
            // Data the client sent together with its SOCKS request goes first.
            if !early.is_empty() {
                tally.up(early.len());
                if tx.data_bytes(early).await.is_err() {
                    return;
                }
            }
            let mut buf = BytesMut::with_capacity(READ_CHUNK);
            loop {
                buf.reserve(READ_CHUNK);
                match cr.read_buf(&mut buf).await {
                    Ok(0) | Err(_) => {
                        // Client EOF or reset: tell the server we are done
                        // sending, and let it close (see module doc).
                        let _ = tx.eof().await;
                        return;
                    }
                    Ok(n) => {
                        tally.up(n);
                        if tx.data_bytes(buf.split().freeze()).await.is_err() {
                            return; // session gone; the down side sees it too
                        }
                    }
                }
            }
        };
        let down = async move {
            let mut queue: VecDeque<Bytes> = VecDeque::new();
            let mut batch: Vec<Bytes> = Vec::with_capacity(WRITE_BATCH);
            let mut queued: usize = 0;
            let mut eof_seen = false;
            let mut shut = false;
            let mut closed: Option<End> = None;
            let mut gone: Option<io::ErrorKind> = None;
            let mut drain_until: Option<tokio::time::Instant> = None;
            let mut stalled_since: Option<tokio::time::Instant> = None;
            loop {
                if let Some(end) = closed {
                    if queue.is_empty() || gone.is_some() {
                        if end == End::SessionLost && !shut {
                            reset(&cw);
                        }
                        return (end, gone);
                    }
                }
                if queue.is_empty() && eof_seen && !shut && gone.is_none() {
                    shut = true;
                    let _ = cw.shutdown().await;
                }
                let full = queued >= STALL_BUFFER;
                match (full, stalled_since) {
                    (true, None) => {
                        stalled_since = Some(tokio::time::Instant::now());
                        guard.set_stalled(true);
                    }
                    (false, Some(_)) => {
                        stalled_since = None;
                        guard.set_stalled(false);
                    }
                    _ => {}
                }
                let stall_deadline = async {
                    match stalled_since {
                        Some(t) => tokio::time::sleep_until(t + stall_timeout).await,
                        None => std::future::pending().await,
                    }
                };
                let drain_deadline = async {
                    match drain_until {
                        Some(t) => tokio::time::sleep_until(t).await,
                        None => std::future::pending().await,
                    }
                };
                // Up to WRITE_BATCH queued packets go out in one writev.
                batch.clear();
                batch.extend(queue.iter().take(WRITE_BATCH).cloned());
                let write = async {
                    let mut slices = [IoSlice::new(&[]); WRITE_BATCH];
                    for (slot, b) in slices.iter_mut().zip(batch.iter()) {
                        *slot = IoSlice::new(b);
                    }
                    cw.write_vectored(&slices[..batch.len()]).await
                };
                tokio::select! {
                    msg = rx.wait(), if !full && closed.is_none() => match msg {
                        Some(ChannelMsg::Data { data }) => {
                            if gone.is_none() {
                                queued += data.len();
                                queue.push_back(data);
                            }
                        }
                        Some(ChannelMsg::Eof) => eof_seen = true,
                        Some(ChannelMsg::Close) => closed = Some(End::Closed),
                        None => closed = Some(End::SessionLost),
                        Some(_) => {}
                    },
                    r = write, if !batch.is_empty() && gone.is_none() => match r {
                        Ok(0) | Err(_) => {
                            gone = Some(r.err().map_or(io::ErrorKind::WriteZero, |e| e.kind()));
                            queue.clear();
                            queued = 0;
                            drain_until = Some(tokio::time::Instant::now() + DRAIN_LIMIT);
                        }
                        Ok(mut n) => {
                            tally.down(n);
                            queued -= n;
                            // A slow reader is not a stalled one: the clock
                            // measures time without progress.
                            if stalled_since.is_some() {
                                stalled_since = Some(tokio::time::Instant::now());
                            }
                            while n > 0 {
                                let Some(b) = queue.front_mut() else { break };
                                if n >= b.len() {
                                    n -= b.len();
                                    queue.pop_front();
                                } else {
                                    let _ = b.split_to(n);
                                    n = 0;
                                }
                            }
                        }
                    },
                    _ = stall_deadline => {
                        reset(&cw);
                        return (End::Stalled, gone);
                    }
                    _ = drain_deadline => return (End::DrainTimeout, gone),
                }
            }
        };
        tokio::pin!(up);
        tokio::pin!(down);
        let mut up_finished = false;
        loop {
            tokio::select! {
                biased;
                _ = force.cancelled() => break (End::Shutdown, None),
                r = &mut down => break r,
                _ = &mut up, if !up_finished => up_finished = true,
            }
        }
    };
    // The down future (and with it the channel's receiver) is gone here: a
    // stalled session's reader is unblocked before we close.
    let end = match outcome {
        (End::Closed, Some(kind)) => End::ClientGone(kind),
        (end, _) => end,
    };
    if matches!(end, End::DrainTimeout | End::Shutdown | End::Stalled) {
        // Closing first leaks the channel entry in russh (module doc); only
        // here, where the alternative is to hold the channel forever.
        let _ = tx.close().await;
    }
    RelayStats {
        up: tally.up.load(Ordering::Relaxed),
        down: tally.down.load(Ordering::Relaxed),
        end,
        elapsed: started.elapsed(),
    }
}

/// One tunnel's byte counts, added to its meter and session as they pass.
struct Tally<'a> {
    meter: &'a Meter,
    session: &'a JumpSession,
    up: AtomicU64,
    down: AtomicU64,
}

impl Tally<'_> {
    fn up(&self, n: usize) {
        let n = n as u64;
        self.up.fetch_add(n, Ordering::Relaxed);
        self.meter.up.inc_by(n);
        self.session.count_up(n);
    }

    fn down(&self, n: usize) {
        let n = n as u64;
        self.down.fetch_add(n, Ordering::Relaxed);
        self.meter.down.inc_by(n);
        self.session.count_down(n);
    }
}

/// Ends the client connection with a reset instead of a FIN, so that a
/// client can tell a cut-off transfer (session lost, stalled) from a
/// complete one.
fn reset(cw: &tokio::net::tcp::OwnedWriteHalf) {
    let _ = cw.as_ref().set_zero_linger();
}

/// Ends a channel the way russh does not leak it: EOF, then wait (discarding
/// data) for the server's CLOSE for up to `DRAIN_LIMIT`; only then close
/// first. Used for channels that never get (or lost) their client.
pub async fn close_after_eof(mut chan: Channel<client::Msg>) -> End {
    let _ = chan.eof().await;
    let wait = async {
        while let Some(msg) = chan.wait().await {
            if matches!(msg, ChannelMsg::Close) {
                return End::Closed;
            }
        }
        End::SessionLost
    };
    match tokio::time::timeout(DRAIN_LIMIT, wait).await {
        Ok(end) => end,
        Err(_) => {
            let _ = chan.close().await;
            End::DrainTimeout
        }
    }
}
