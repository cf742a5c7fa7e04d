//! Moves bytes between a client TCP connection and an SSH channel, both
//! directions, with half-close, and reports what happened.
//!
//! Down (jump host -> client) does not read the channel: the session's
//! handler pushes every packet into the tunnel's `Inbox` (memory, then a
//! spill file; `tunnel_buffer::inbox` states the bound) without waiting, and the relay
//! drains the inbox to the client at the client's pace. So a slow or paused
//! client never holds up its session's other tunnels, and nothing it has not
//! read is thrown away. Only when a tunnel's caps are reached does the
//! session task wait for it (see `tunnel_buffer::inboxes`): the session then takes no new
//! tunnels, and resumes as soon as that client reads again. A tunnel is
//! never ended because its reader is slow or paused.
//!
//! russh traps shape the rest (DESIGN.md "Facts"): closing a channel from
//! our side before the server's CLOSE leaks the channel's entry in the
//! session for its whole life. So we never close first on the normal path:
//! client EOF becomes channel EOF, and the relay ends when the server sends
//! CLOSE, which also ends the upload (after CLOSE, a writer waiting for
//! window would wait forever). Only when the client is gone and the server
//! keeps sending past `DRAIN_LIMIT` (or at forced shutdown) do we close
//! first, and say so in the result. Every end that cuts the stream short
//! (session lost, forced shutdown, spill lost, drain timeout) resets the
//! client connection, so that a client never takes a cut download for a
//! complete one.
//!
//! The buffer itself (`Inbox`, its spill file, the caps and the budget) is
//! `crate::tunnel_buffer`, below both this module and the SSH layer.

use std::io::{self, IoSlice};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncReadExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::ssh::session::{ChannelGuard, JumpSession};
use crate::tunnel_buffer::{Drained, Event, InboxReader, Sink, Tunnel, DRAIN_LIMIT};

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
    /// Forced shutdown (the drain grace was over).
    Shutdown,
    /// The spill file could not be read back; the client is cut (reset).
    SpillFailed(io::ErrorKind),
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
/// The two directions run as two futures polled together, and the relay
/// ends with the down direction (on CLOSE, session loss or client loss);
/// the upload is dropped then, never left waiting for window.
pub async fn run(
    client: TcpStream,
    early: Bytes,
    tunnel: Tunnel,
    guard: &mut ChannelGuard,
    meter: &Meter,
    force: CancellationToken,
) -> RelayStats {
    let started = Instant::now();
    let tally = Arc::new(Tally {
        meter: meter.clone(),
        session: guard.session().clone(),
        up: AtomicU64::new(0),
        down: AtomicU64::new(0),
    });
    let Tunnel { write: tx, inbox } = tunnel;
    let (mut cr, cw) = client.into_split();
    // The write half is shared with the session task: while the inbox is
    // empty, the handler writes each packet straight to the client (the
    // inbox's `Sink`), and the relay task is not woken at all. This halved
    // the relay's CPU per GiB in the bulk bench (see README, Performance).
    let cw = Arc::new(cw);
    inbox.set_sink(Arc::new(ClientSink {
        cw: cw.clone(),
        tally: tally.clone(),
    }));

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
        let down = down(inbox, &cw, tally);
        tokio::pin!(up);
        tokio::pin!(down);
        let mut up_finished = false;
        loop {
            tokio::select! {
                biased;
                _ = force.cancelled() => break End::Shutdown,
                r = &mut down => break r,
                _ = &mut up, if !up_finished => up_finished = true,
            }
        }
    };
    // The down future, and with it the inbox (and its `Sink`, the other
    // hold on `cw`), is gone here: whatever the jump host still sends is
    // dropped, and a session parked on this tunnel's caps resumes before
    // we close.
    match Arc::try_unwrap(cw) {
        Ok(cw) if cuts_short(outcome) => reset(cw),
        Ok(cw) => drop(cw),
        // Not expected (the sink goes with the reader); the socket then
        // closes with the last hold, and a reset is still asked for.
        Err(cw) if cuts_short(outcome) => {
            let stream: &TcpStream = (*cw).as_ref();
            let _ = stream.set_zero_linger();
        }
        Err(_) => {}
    }
    if matches!(
        outcome,
        End::DrainTimeout | End::Shutdown | End::SpillFailed(_)
    ) {
        // Closing first leaks the channel entry in russh (module doc); only
        // here, where the alternative is to hold the channel forever.
        let _ = tx.close().await;
    }
    RelayStats {
        up: tally.up.load(Ordering::Relaxed),
        down: tally.down.load(Ordering::Relaxed),
        end: outcome,
        elapsed: started.elapsed(),
    }
}

/// Jump host -> client: drains the inbox to the client socket, up to
/// `WRITE_BATCH` buffers per writev, until the channel ends. However long
/// the client takes, the tunnel waits for it.
async fn down(mut inbox: InboxReader, cw: &OwnedWriteHalf, tally: &Tally) -> End {
    let mut batch: Vec<Bytes> = Vec::with_capacity(WRITE_BATCH);
    loop {
        match inbox.wait().await {
            Event::Data => {}
            Event::Eof => {
                // FIN to the client; the half is shared, so through socket2.
                let _ = socket2::SockRef::from(cw.as_ref()).shutdown(std::net::Shutdown::Write);
                continue;
            }
            Event::Closed => return End::Closed,
            Event::SessionLost => return End::SessionLost,
            Event::SpillFailed(kind) => return End::SpillFailed(kind),
        }
        inbox.batch(&mut batch, WRITE_BATCH);
        let mut slices = [IoSlice::new(&[]); WRITE_BATCH];
        for (slot, b) in slices.iter_mut().zip(batch.iter()) {
            *slot = IoSlice::new(b);
        }
        let written = write_vectored(cw, &slices[..batch.len()]).await;
        match written {
            Ok(0) | Err(_) => {
                let kind = written.err().map_or(io::ErrorKind::WriteZero, |e| e.kind());
                return client_gone(inbox, kind).await;
            }
            Ok(n) => {
                tally.down(n);
                inbox.consume(n);
            }
        }
    }
}

/// One vectored write to the shared write half, waiting for the socket to
/// take something (the readiness loop `AsyncWrite` would run for us).
async fn write_vectored(cw: &OwnedWriteHalf, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    loop {
        cw.writable().await?;
        match cw.try_write_vectored(bufs) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            r => return r,
        }
    }
}

/// The client socket as the inbox's `Sink`: the session task writes a
/// packet through it when nothing is buffered, counted like the relay's
/// own writes.
struct ClientSink {
    cw: Arc<OwnedWriteHalf>,
    tally: Arc<Tally>,
}

impl Sink for ClientSink {
    fn try_write(&self, data: &[u8]) -> io::Result<usize> {
        let n = self.cw.try_write(data)?;
        self.tally.down(n);
        Ok(n)
    }
}

/// Whether `end` leaves the client's stream incomplete: then the client
/// must see a reset, not an end of file.
fn cuts_short(end: End) -> bool {
    matches!(
        end,
        End::SessionLost | End::Shutdown | End::SpillFailed(_) | End::DrainTimeout
    )
}

/// The client is gone: drop what the inbox holds and all that follows, and
/// wait for the server's CLOSE (its EOF follows ours, sent by the upload
/// direction when its read fails) for up to `DRAIN_LIMIT`.
async fn client_gone(mut inbox: InboxReader, kind: io::ErrorKind) -> End {
    inbox.discard();
    let closed = async {
        loop {
            match inbox.wait().await {
                Event::Closed => return End::ClientGone(kind),
                Event::SessionLost => return End::SessionLost,
                _ => {}
            }
        }
    };
    tokio::time::timeout(DRAIN_LIMIT, closed)
        .await
        .unwrap_or(End::DrainTimeout)
}

/// One tunnel's byte counts, added to its meter and session as they pass.
struct Tally {
    meter: Meter,
    session: Arc<JumpSession>,
    up: AtomicU64,
    down: AtomicU64,
}

impl Tally {
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
/// client can tell a cut-off transfer (session lost, forced shutdown) from
/// a complete one. `forget` keeps tokio from sending a FIN when the half is
/// dropped; the socket closes (with SO_LINGER 0: RST) when the read half
/// goes too.
fn reset(cw: OwnedWriteHalf) {
    let _ = cw.as_ref().set_zero_linger();
    cw.forget();
}

impl From<Drained> for End {
    fn from(d: Drained) -> End {
        match d {
            Drained::Closed => End::Closed,
            Drained::SessionLost => End::SessionLost,
            Drained::TimedOut => End::DrainTimeout,
        }
    }
}
