//! One SSH session's inboxes, by channel id: the meeting point of the
//! session's `client::Handler` (which registers an inbox when a channel is
//! confirmed and feeds it from `Handler::data`, `channel_eof` and
//! `channel_close`, inside russh's session task) and the tunnels' relay
//! tasks (which claim their channel's inbox). It also knows whether the
//! session task is parked on a full inbox, which `ssh::session` reads to give
//! such a session no new tunnels.
//!
//! Registration happens in the handler, before the channel's first DATA
//! can arrive; the opener claims after `channel_open_direct_tcpip` returns,
//! which may be after DATA, EOF and even CLOSE were handled: so the map
//! keeps an unclaimed inbox until it is claimed, and creates it if the claim
//! comes first.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use russh::{client, Channel, ChannelId};
use tracing::{info, warn};

use super::Tunnel;
use crate::tunnel_buffer::account::Account;
use crate::tunnel_buffer::inbox::{Inbox, InboxReader};

/// Generic over the key only so that unit tests can make ids (russh's
/// `ChannelId` has no public constructor).
pub struct Inboxes<K = ChannelId> {
    /// For the log lines that say which upstream parked.
    upstream: String,
    /// Where the inboxes' bytes are counted (session, upstream, process).
    budget: Arc<Account>,
    map: Mutex<Map<K>>,
    /// The session task waits in `data` for a tunnel's client to make room.
    parked: AtomicBool,
}

struct Map<K> {
    entries: HashMap<K, Entry>,
    /// The session ended: every inbox, and any claimed later, is lost.
    lost: bool,
}

struct Entry {
    inbox: Inbox,
    claimed: bool,
    /// CHANNEL_CLOSE was handled before the claim.
    closed: bool,
}

impl<K: Copy + Eq + Hash> Inboxes<K> {
    pub fn new(upstream: &str, budget: Arc<Account>) -> Arc<Inboxes<K>> {
        Arc::new(Inboxes {
            upstream: upstream.to_owned(),
            budget,
            map: Mutex::new(Map {
                entries: HashMap::new(),
                lost: false,
            }),
            parked: AtomicBool::new(false),
        })
    }

    /// A channel of this session was confirmed (or accepted): from now on
    /// its data goes to its inbox.
    pub fn register(&self, id: K) {
        let mut map = self.lock();
        if map.lost {
            return;
        }
        let budget = &self.budget;
        map.entries.entry(id).or_insert_with(|| Entry {
            inbox: Inbox::new(budget.clone()),
            claimed: false,
            closed: false,
        });
    }

    /// The inbox of channel `id`, once.
    pub fn claim(&self, id: K) -> InboxReader {
        let mut map = self.lock();
        if map.lost {
            let inbox = Inbox::new(self.budget.clone());
            inbox.lose();
            return inbox.reader();
        }
        let budget = &self.budget;
        let entry = map.entries.entry(id).or_insert_with(|| Entry {
            inbox: Inbox::new(budget.clone()),
            claimed: false,
            closed: false,
        });
        entry.claimed = true;
        let reader = entry.inbox.reader();
        if entry.closed {
            map.entries.remove(&id);
        }
        reader
    }

    /// `Handler::data`: stores the packet, and only when a cap refuses it
    /// waits for the tunnel's client to make room (the session task parks;
    /// nothing is lost). Channels without an inbox are not ours to feed.
    pub async fn data(&self, id: K, data: &[u8]) {
        let Some(inbox) = self.inbox(id) else {
            return;
        };
        let Err(cap) = inbox.push(data) else {
            return;
        };
        self.parked.store(true, Ordering::Release);
        // Once per tunnel and cap: a slow reader meets its cap on almost
        // every packet, and the metric and /status keep the count.
        let tell = !inbox.seen_cap(cap);
        if tell {
            inbox.mark_told();
            warn!(upstream = %self.upstream, cap = cap.as_str(),
                "relay: a tunnel's buffer is full; its session waits for the client and takes no new tunnels");
        }
        let started = std::time::Instant::now();
        loop {
            inbox.room().await;
            if inbox.push(data).is_ok() {
                break;
            }
        }
        self.parked.store(false, Ordering::Release);
        if tell {
            info!(upstream = %self.upstream, waited = ?started.elapsed(), "relay: session resumed");
        }
    }

    pub fn eof(&self, id: K) {
        if let Some(inbox) = self.inbox(id) {
            inbox.eof();
        }
    }

    /// CHANNEL_CLOSE: the inbox ends; the entry goes unless nobody has
    /// claimed it yet.
    pub fn close(&self, id: K) {
        let mut map = self.lock();
        let Some(entry) = map.entries.get_mut(&id) else {
            return;
        };
        entry.inbox.close();
        if entry.claimed {
            map.entries.remove(&id);
        } else {
            entry.closed = true;
        }
    }

    /// A channel registered but never to be used: a `forwarded-tcpip` we
    /// refused after registering its inbox (the handler registers before
    /// it knows whether the local target answers). A refused open gets no
    /// CHANNEL_CLOSE, so without this the entry would stay for the
    /// session's life. A claimed inbox is its tunnel's; it is left alone.
    pub fn forget(&self, id: K) {
        let mut map = self.lock();
        if map.entries.get(&id).is_some_and(|e| !e.claimed) {
            if let Some(e) = map.entries.remove(&id) {
                e.inbox.close();
            }
        }
    }

    /// The session task ended: every tunnel learns it.
    pub fn lose_all(&self) {
        let mut map = self.lock();
        map.lost = true;
        for (_, e) in map.entries.drain() {
            e.inbox.lose();
        }
    }

    /// Whether the session task waits on a full inbox right now.
    pub fn is_parked(&self) -> bool {
        self.parked.load(Ordering::Acquire)
    }

    /// (memory, disk) bytes this session's tunnels hold now.
    pub fn buffered(&self) -> (u64, u64) {
        self.budget.buffered()
    }

    /// Inboxes held (open channels of this session, claimed or not).
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn inbox(&self, id: K) -> Option<Inbox> {
        self.lock().entries.get(&id).map(|e| e.inbox.clone())
    }

    fn lock(&self) -> MutexGuard<'_, Map<K>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Inboxes<ChannelId> {
    /// A tunnel's channel, split: the read half goes (its queue would park
    /// the session task once full; the inbox replaces it), the write half
    /// and the inbox stay.
    pub fn tunnel(&self, channel: Channel<client::Msg>) -> Tunnel {
        let inbox = self.claim(channel.id());
        let (read, write) = channel.split();
        drop(read);
        Tunnel { write, inbox }
    }
}

/// The handler's hold on its session's inboxes: russh drops the handler
/// when the session task ends, and then every tunnel is told.
pub struct Feed<K: Copy + Eq + Hash = ChannelId>(pub Arc<Inboxes<K>>);

impl<K: Copy + Eq + Hash> Drop for Feed<K> {
    fn drop(&mut self) {
        self.0.lose_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tunnel_buffer::budget::{Budget, Limits};
    use crate::tunnel_buffer::inbox::Event;

    fn inboxes() -> Arc<Inboxes<u32>> {
        Inboxes::new(
            "u",
            Account::detached(Budget::new(Limits {
                memory_per_tunnel: 16,
                spill_per_tunnel: 0,
                ..Limits::default()
            })),
        )
    }

    #[tokio::test]
    async fn data_eof_and_close_before_the_claim_are_kept() {
        let ib = inboxes();
        let id = 7u32;
        ib.register(id);
        ib.data(id, b"banner").await;
        ib.eof(id);
        ib.close(id);
        assert_eq!(ib.len(), 1, "closed but unclaimed: kept for the claim");
        let mut r = ib.claim(id);
        assert!(ib.is_empty());
        assert_eq!(r.wait().await, Event::Data);
        assert_eq!(r.buffered(), 6);
        r.consume(6);
        assert_eq!(r.wait().await, Event::Eof);
        assert_eq!(r.wait().await, Event::Closed);
    }

    #[tokio::test]
    async fn a_claim_before_registration_gets_the_data_that_follows() {
        let ib = inboxes();
        let id = 3u32;
        let mut r = ib.claim(id);
        ib.register(id);
        ib.data(id, b"x").await;
        assert_eq!(r.wait().await, Event::Data);
        ib.close(id);
        assert!(ib.is_empty());
    }

    #[tokio::test]
    async fn a_refused_channel_is_forgotten_and_a_claimed_one_is_not() {
        let ib = inboxes();
        ib.register(5u32);
        ib.register(6u32);
        let mut r = ib.claim(6u32);
        assert_eq!(ib.len(), 2);
        ib.forget(5u32);
        assert_eq!(ib.len(), 1, "the refused channel's inbox is gone");
        ib.forget(6u32);
        assert_eq!(ib.len(), 1, "a claimed inbox belongs to its tunnel");
        ib.data(6u32, b"still fed").await;
        assert_eq!(r.wait().await, Event::Data);
        ib.forget(99u32);
        ib.close(6u32);
        assert!(ib.is_empty());
    }

    #[tokio::test]
    async fn data_for_unknown_channels_is_ignored_and_a_lost_session_is_told() {
        let ib = inboxes();
        ib.data(1u32, b"not ours").await;
        assert!(ib.is_empty());
        let id = 2u32;
        ib.register(id);
        let mut r = ib.claim(id);
        drop(Feed(ib.clone()));
        assert_eq!(r.wait().await, Event::SessionLost);
        let mut late = ib.claim(4u32);
        assert_eq!(late.wait().await, Event::SessionLost);
    }

    #[tokio::test]
    async fn a_full_inbox_parks_the_caller_until_the_reader_consumes() {
        let ib = inboxes();
        let id = 9u32;
        ib.register(id);
        let mut r = ib.claim(id);
        ib.data(id, &[1; 16]).await;
        let feeder = {
            let ib = ib.clone();
            tokio::spawn(async move { ib.data(id, &[2; 16]).await })
        };
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(ib.is_parked(), "a refused push must park the session");
        assert!(!feeder.is_finished());
        assert_eq!(r.wait().await, Event::Data);
        r.consume(16);
        tokio::time::timeout(std::time::Duration::from_secs(5), feeder)
            .await
            .expect("woken")
            .expect("join");
        assert!(!ib.is_parked());
        assert_eq!(r.buffered(), 16, "the parked packet was stored, not lost");
    }
}
