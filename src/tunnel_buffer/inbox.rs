//! A tunnel's inbox: what the jump host sent on one channel, held until the
//! tunnel's client takes it. The session's handler pushes into it from
//! russh's session task without waiting (`Inbox::push`); the tunnel's relay
//! task drains it to the client socket (`InboxReader`). Data goes to memory
//! first, then, past `memory_per_tunnel`, to the tunnel's spill file
//! (`spill`); order is kept because once a tunnel spills, everything
//! new goes to the file until the file has been read to its end (memory,
//! which is older, is always read first), and the emptied file is dropped.
//! Every byte is counted through the session's `Account` (the
//! process's `Budget`, the upstream's metrics, the session's gauges).
//!
//! The bound, per tunnel: memory at most `memory_per_tunnel` (or one SSH
//! packet, 32 KiB, if that is larger: an empty memory tier always takes a
//! packet), plus one read-back chunk of `READ_BACK` (128 KiB) while the
//! tunnel drains its file; disk at most `spill_per_tunnel`, and all files
//! together at most `spill_total`. When a push would pass a cap, `push`
//! refuses it and the handler awaits `room()`: the only place the session
//! task waits on a tunnel, and it does not lose the data.

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::Notify;
use tokio::time::Instant;
use tracing::warn;

use super::account::Account;
use super::budget::Cap;
use super::spill::Spill;

/// How much of the spill file is read back into memory at once.
pub const READ_BACK: usize = 128 * 1024;

/// Where a tunnel's bytes can go at once, without waiting: the client
/// socket's non-blocking write, installed by the relay
/// (`InboxReader::set_sink`). While the inbox holds nothing, `push` writes
/// through it from the session task, so a client that keeps up costs no
/// copy into the inbox, no wakeup of the relay task and no spill; whatever
/// the socket does not take at once is stored as before.
pub trait Sink: Send + Sync {
    /// Writes what the socket takes now: `Ok(n)`, possibly less than
    /// `data.len()`; `WouldBlock` (or any error) means store it all.
    fn try_write(&self, data: &[u8]) -> io::Result<usize>;
}

/// What the reader learns from `InboxReader::wait`, in stream order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Bytes are ready: `batch`, write, `consume`.
    Data,
    /// The jump host will send no more (CHANNEL_EOF); everything before it
    /// has been consumed. Reported once.
    Eof,
    /// The channel is closed (CHANNEL_CLOSE) and everything was consumed.
    Closed,
    /// The SSH session ended; everything that arrived was consumed.
    SessionLost,
    /// The spill file could not be read back: the rest of the stream is
    /// lost, so the client must see a cut (reset), not an end.
    SpillFailed(io::ErrorKind),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    Closed,
    SessionLost,
}

/// The producer's handle (held by the session's `Inboxes`).
#[derive(Clone)]
pub struct Inbox(Arc<Shared>);

/// The consumer's handle: one per inbox, held by the tunnel's relay.
/// Dropping it (or `discard`) throws away what is held and all that comes
/// later, so a tunnel whose client is gone never holds its session.
pub struct InboxReader {
    shared: Arc<Shared>,
    /// Bytes read back from the spill file, not yet consumed; still counted
    /// as disk bytes (they leave the file on `consume`).
    staged: Bytes,
    eof_told: bool,
}

struct Shared {
    state: Mutex<State>,
    /// Wakes the reader: data, EOF, close, loss.
    readable: Notify,
    /// Wakes a producer waiting for room (the reader consumed or left).
    room: Notify,
    budget: Arc<Account>,
}

#[derive(Default)]
struct State {
    memory: VecDeque<Bytes>,
    memory_len: usize,
    /// Some while the tunnel spills: all new data goes here.
    spill: Option<Spill>,
    eof: bool,
    end: Option<Ending>,
    /// The reader is gone or no longer wants data.
    discard: bool,
    /// The cap that refused the last push and since when; cleared by the
    /// next push that is taken.
    capped: Option<(Cap, Instant)>,
    /// Caps this tunnel has reached at least once, by `Cap as usize`: a
    /// reader that drains slowly meets its cap on nearly every packet, and
    /// the metric counts tunnels that hit a cap, not packets; the log says
    /// it once per tunnel too.
    hit: [bool; 4],
    /// The session's park on this tunnel was logged once.
    told: bool,
    /// The client socket, for writes that skip the buffer (`Sink`);
    /// cleared when the reader leaves, so the socket closes with the relay.
    sink: Option<Arc<dyn Sink>>,
}

impl Inbox {
    pub fn new(budget: Arc<Account>) -> Inbox {
        Inbox(Arc::new(Shared {
            state: Mutex::new(State::default()),
            readable: Notify::new(),
            room: Notify::new(),
            budget,
        }))
    }

    /// The reader. One per inbox: `Inboxes` hands it out once.
    pub fn reader(&self) -> InboxReader {
        InboxReader {
            shared: self.0.clone(),
            staged: Bytes::new(),
            eof_told: false,
        }
    }

    /// Stores a copy of `data` without waiting (a spill-file write goes to
    /// the page cache). `Err(cap)`: nothing was stored; await `room()` and
    /// push again. After the end, or once the reader left, data is dropped.
    pub fn push(&self, data: &[u8]) -> Result<(), Cap> {
        if data.is_empty() {
            return Ok(());
        }
        let shared = &*self.0;
        let mut st = shared.lock();
        if st.discard || st.end.is_some() {
            return Ok(());
        }
        // Nothing held (memory empty, no spill file, so nothing staged or
        // being written by the relay): the socket may take the packet now,
        // in order. Under the lock, so the relay cannot start a write in
        // between.
        let mut data = data;
        if st.memory.is_empty() && st.spill.is_none() {
            if let Some(sink) = &st.sink {
                match sink.try_write(data) {
                    Ok(n) if n >= data.len() => {
                        st.capped = None;
                        return Ok(());
                    }
                    Ok(n) => data = &data[n..],
                    // WouldBlock, or the client is gone: stored, and the
                    // relay's own write finds out which.
                    Err(_) => {}
                }
            }
        }
        match st.store(data, &shared.budget) {
            Ok(()) => {
                st.capped = None;
                drop(st);
                shared.readable.notify_one();
                Ok(())
            }
            Err(cap) => {
                if st.capped.map(|(c, _)| c) != Some(cap) {
                    st.capped = Some((cap, Instant::now()));
                }
                if !st.hit[cap as usize] {
                    st.hit[cap as usize] = true;
                    shared.budget.cap_reached(cap);
                }
                Err(cap)
            }
        }
    }

    /// Whether this tunnel has reached `cap` before the last refusal (the
    /// first time is logged, later ones are not).
    pub fn seen_cap(&self, cap: Cap) -> bool {
        let st = self.0.lock();
        st.hit[cap as usize] && st.told
    }

    /// Marks the first refusal as logged.
    pub fn mark_told(&self) {
        self.0.lock().told = true;
    }

    /// Resolves after the reader consumed something or left: time to retry
    /// a refused `push`.
    pub async fn room(&self) {
        self.0.room.notified().await
    }

    /// CHANNEL_EOF: the reader sees `Event::Eof` after the data before it.
    pub fn eof(&self) {
        self.0.lock().eof = true;
        self.0.readable.notify_one();
    }

    /// CHANNEL_CLOSE: nothing more will come.
    pub fn close(&self) {
        self.end(Ending::Closed);
    }

    /// The session died: nothing more will come, and the reader will say so.
    pub fn lose(&self) {
        self.end(Ending::SessionLost);
    }

    fn end(&self, how: Ending) {
        self.0.lock().end.get_or_insert(how);
        self.0.readable.notify_one();
        self.0.room.notify_one();
    }
}

impl InboxReader {
    /// Waits for the next thing to do. Cancel-safe: nothing is taken from
    /// the inbox until `consume`.
    pub async fn wait(&mut self) -> Event {
        loop {
            let notified = self.shared.readable.notified();
            let read_back = {
                let st = self.shared.lock();
                if !st.memory.is_empty() || !self.staged.is_empty() {
                    return Event::Data;
                }
                match st.spill.as_ref().and_then(|s| s.oldest(READ_BACK)) {
                    Some(piece) => Some(piece),
                    None if st.eof && !self.eof_told => {
                        self.eof_told = true;
                        return Event::Eof;
                    }
                    None => match st.end {
                        Some(Ending::Closed) => return Event::Closed,
                        Some(Ending::SessionLost) => return Event::SessionLost,
                        None => None,
                    },
                }
            };
            if let Some((file, at, len)) = read_back {
                // Off the runtime's threads: the page may have left the cache.
                let read = tokio::task::spawn_blocking(move || {
                    let mut buf = vec![0; len];
                    std::os::unix::fs::FileExt::read_exact_at(&*file, &mut buf, at).map(|()| buf)
                })
                .await;
                return match read {
                    Ok(Ok(buf)) => {
                        self.staged = Bytes::from(buf);
                        Event::Data
                    }
                    Ok(Err(e)) => Event::SpillFailed(e.kind()),
                    Err(_) => Event::SpillFailed(io::ErrorKind::Other),
                };
            }
            notified.await;
        }
    }

    /// The oldest ready bytes, as up to `max` chunks (clones of the
    /// buffers, not copies), into `out` (cleared first).
    pub fn batch(&self, out: &mut Vec<Bytes>, max: usize) {
        out.clear();
        if !self.staged.is_empty() {
            out.push(self.staged.clone());
            return;
        }
        out.extend(self.shared.lock().memory.iter().take(max).cloned());
    }

    /// `n` bytes of the last `batch` reached the client: they leave the
    /// inbox, and a producer waiting for room is woken.
    pub fn consume(&mut self, n: usize) {
        let budget = &self.shared.budget;
        let mut st = self.shared.lock();
        if !self.staged.is_empty() {
            let n = n.min(self.staged.len());
            let _ = self.staged.split_to(n);
            if let Some(spill) = st.spill.as_mut() {
                spill.consume(n as u64);
                budget.sub_disk(n as u64);
                if spill.is_empty() {
                    // Reset: the file goes, the tunnel is back to memory.
                    let extent = spill.extent();
                    st.spill = None;
                    budget.release_disk(extent);
                }
            }
        } else {
            let n = n.min(st.memory_len);
            let mut left = n;
            while left > 0 {
                let Some(front) = st.memory.front_mut() else {
                    break;
                };
                if left >= front.len() {
                    left -= front.len();
                    st.memory.pop_front();
                } else {
                    let _ = front.split_to(left);
                    left = 0;
                }
            }
            st.memory_len -= n;
            budget.sub_memory(n);
        }
        drop(st);
        self.shared.room.notify_one();
    }

    /// Bytes held (memory and disk, read back or not).
    pub fn buffered(&self) -> u64 {
        let st = self.shared.lock();
        st.memory_len as u64 + st.spill.as_ref().map_or(0, |s| s.len())
    }

    /// The cap refusing the producer now, and since when: the session is
    /// parked on this tunnel.
    pub fn capped(&self) -> Option<(Cap, Instant)> {
        self.shared.lock().capped
    }

    /// From now on `push` writes straight to `sink` whenever the inbox
    /// holds nothing (see `Sink`).
    pub fn set_sink(&self, sink: Arc<dyn Sink>) {
        self.shared.lock().sink = Some(sink);
    }

    /// Drops everything held and everything to come (the client is gone);
    /// EOF, close and loss are still reported.
    pub fn discard(&mut self) {
        self.staged = Bytes::new();
        let mut st = self.shared.lock();
        st.discard = true;
        st.sink = None;
        st.release(&self.shared.budget);
        drop(st);
        self.shared.room.notify_one();
    }
}

impl Drop for InboxReader {
    fn drop(&mut self) {
        self.discard();
    }
}

impl Shared {
    /// The state, also after a panic elsewhere: every update leaves it
    /// consistent, so a poisoned lock holds nothing half-done.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let budget = self.budget.clone();
        self.lock().release(&budget);
    }
}

impl State {
    fn store(&mut self, data: &[u8], budget: &Account) -> Result<(), Cap> {
        let limits = budget.limits();
        if self.spill.is_none() {
            if self.memory_len == 0 || self.memory_len + data.len() <= limits.memory_per_tunnel {
                self.memory.push_back(Bytes::copy_from_slice(data));
                self.memory_len += data.len();
                budget.add_memory(data.len());
                return Ok(());
            }
            if limits.spill_per_tunnel == 0 {
                return Err(Cap::MemoryPerTunnel);
            }
            match Spill::create(&limits.spill_dir, limits.spill_per_tunnel) {
                Ok(s) => self.spill = Some(s),
                Err(e) => {
                    if self.capped.map(|(c, _)| c) != Some(Cap::SpillError) {
                        warn!(dir = %limits.spill_dir.display(), error = %e,
                            "relay: cannot create a spill file; holding in memory only");
                    }
                    return Err(Cap::SpillError);
                }
            }
        }
        let Some(spill) = self.spill.as_mut() else {
            return Err(Cap::SpillError);
        };
        if !spill.fits(data.len()) {
            return Err(Cap::SpillPerTunnel);
        }
        let growth = spill.growth(data.len());
        if growth > 0 && !budget.reserve_disk(growth) {
            self.drop_empty_spill(budget);
            return Err(Cap::SpillTotal);
        }
        if let Err(e) = spill.append(data) {
            budget.release_disk(growth);
            if self.capped.map(|(c, _)| c) != Some(Cap::SpillError) {
                warn!(dir = %limits.spill_dir.display(), error = %e,
                    "relay: cannot write to a spill file");
            }
            self.drop_empty_spill(budget);
            return Err(Cap::SpillError);
        }
        budget.add_disk(data.len());
        Ok(())
    }

    /// A spill file that holds nothing goes (it may have just been created
    /// for a push that was then refused), so memory takes the next push.
    fn drop_empty_spill(&mut self, budget: &Account) {
        if let Some(s) = self.spill.take_if(|s| s.is_empty()) {
            budget.release_disk(s.extent());
        }
    }

    /// Gives everything held back to the budget.
    fn release(&mut self, budget: &Account) {
        budget.sub_memory(self.memory_len);
        self.memory.clear();
        self.memory_len = 0;
        if let Some(s) = self.spill.take() {
            budget.sub_disk(s.len());
            budget.release_disk(s.extent());
        }
    }
}

#[cfg(test)]
#[path = "inbox_tests.rs"]
mod tests;
