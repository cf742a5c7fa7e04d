//! Where a tunnel's buffered bytes are counted, three ways at once: the
//! process's `Budget` (what `spill_total` caps, and the totals `/status`
//! shows), the upstream's `jumpgate_relay_*` series (`Meters`, resolved once
//! per upstream, so no label lookup happens per packet), and the session's
//! own gauges (`/status` shows buffered bytes per session). One `Account`
//! per session; every inbox of the session writes through it. All plain
//! atomic adds: the session task and the relay tasks never wait here.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use prometheus::{IntCounter, IntGauge};

use super::budget::{Budget, Cap, Limits};

/// One upstream's relay series. Created (at 0) when the upstream's session
/// settings are built, so every series exists before the first tunnel.
pub struct Meters {
    memory: IntGauge,
    disk: IntGauge,
    spilled: IntCounter,
    /// `jumpgate_relay_cap_reached_total{cap}`, indexed by `Cap as usize`.
    caps: [IntCounter; 4],
}

impl Meters {
    pub fn for_upstream(upstream: &str) -> Arc<Meters> {
        let m = crate::metrics::get();
        Arc::new(Meters {
            memory: m.relay_buffered.with_label_values(&[upstream, "memory"]),
            disk: m.relay_buffered.with_label_values(&[upstream, "disk"]),
            spilled: m.relay_spilled.with_label_values(&[upstream]),
            caps: Cap::ALL.map(|c| m.relay_caps.with_label_values(&[upstream, c.as_str()])),
        })
    }

    /// Series in no registry: for unit tests that must not touch the
    /// process's metrics.
    #[cfg(test)]
    pub fn unregistered() -> Arc<Meters> {
        let gauge = || IntGauge::new("g", "g").unwrap_or_else(|_| unreachable!());
        let counter = || IntCounter::new("c", "c").unwrap_or_else(|_| unreachable!());
        Arc::new(Meters {
            memory: gauge(),
            disk: gauge(),
            spilled: counter(),
            caps: [counter(), counter(), counter(), counter()],
        })
    }
}

/// One session's share: its inboxes' bytes, in memory and on disk.
pub struct Account {
    budget: Arc<Budget>,
    meters: Arc<Meters>,
    memory: AtomicU64,
    disk: AtomicU64,
}

impl Account {
    pub fn new(budget: Arc<Budget>, meters: Arc<Meters>) -> Arc<Account> {
        Arc::new(Account {
            budget,
            meters,
            memory: AtomicU64::new(0),
            disk: AtomicU64::new(0),
        })
    }

    #[cfg(test)]
    pub fn detached(budget: Arc<Budget>) -> Arc<Account> {
        Account::new(budget, Meters::unregistered())
    }

    pub fn limits(&self) -> &Limits {
        self.budget.limits()
    }

    pub fn budget(&self) -> &Arc<Budget> {
        &self.budget
    }

    /// (memory, disk) bytes this session's tunnels hold now.
    pub fn buffered(&self) -> (u64, u64) {
        (
            self.memory.load(Ordering::Relaxed),
            self.disk.load(Ordering::Relaxed),
        )
    }

    pub(super) fn reserve_disk(&self, n: u64) -> bool {
        self.budget.reserve_disk(n)
    }

    pub(super) fn release_disk(&self, n: u64) {
        self.budget.release_disk(n)
    }

    pub(super) fn add_memory(&self, n: usize) {
        self.budget.add_memory(n);
        self.memory.fetch_add(n as u64, Ordering::Relaxed);
        self.meters.memory.add(n as i64);
    }

    pub(super) fn sub_memory(&self, n: usize) {
        self.budget.sub_memory(n);
        self.memory.fetch_sub(n as u64, Ordering::Relaxed);
        self.meters.memory.sub(n as i64);
    }

    pub(super) fn add_disk(&self, n: usize) {
        self.budget.add_disk(n);
        self.disk.fetch_add(n as u64, Ordering::Relaxed);
        self.meters.disk.add(n as i64);
        self.meters.spilled.inc_by(n as u64);
    }

    pub(super) fn sub_disk(&self, n: u64) {
        self.budget.sub_disk(n);
        self.disk.fetch_sub(n, Ordering::Relaxed);
        self.meters.disk.sub(n as i64);
    }

    pub(super) fn cap_reached(&self, cap: Cap) {
        self.budget.cap_reached(cap);
        self.meters.caps[cap as usize].inc();
    }
}
