//! How many tunnels this process can hold, and the count of those open.
//! Two limits bound it: the pools' channel slots (`max_channels_per_session
//! x sessions.max`, summed over upstreams) and the open-files limit, which
//! `raise_nofile` lifts from its soft value to the hard one at start (the
//! soft default, often 1,024, would cap us far below `ssh -D`). Each tunnel
//! holds one descriptor (its client socket) and one more while it spills to
//! disk; `RESERVED_FDS` stay for sessions, listeners, the admin endpoint and
//! spill files. `daemon::startup` fills it once; `ssh::pool` takes a
//! `FdSlot` per tunnel and refuses at once, naming the limit, when none is
//! left; `admin` shows it in `/status`. Imports nothing of jumpgate's.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

/// Descriptors kept out of the tunnel budget: SSH sessions, listeners, the
/// admin endpoint, log files, and tunnels' spill files.
pub const RESERVED_FDS: u64 = 256;

/// The open-files limit after `raise_nofile`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoFile {
    pub soft: u64,
    pub hard: u64,
    /// Whether the soft limit was raised (false: it already was the hard
    /// limit, or raising failed).
    pub raised: bool,
}

/// Raises the soft RLIMIT_NOFILE to the hard limit (capped at `u32::MAX`,
/// "unlimited" hard limits included), as a server that holds a socket per
/// tunnel should. Through rustix: lib.rs forbids unsafe code. Never fails:
/// when raising is refused, the current limit is returned unchanged.
pub fn raise_nofile() -> NoFile {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let cap = u64::from(u32::MAX);
    let now = getrlimit(Resource::Nofile);
    let soft = now.current.unwrap_or(cap).min(cap);
    let hard = now.maximum.unwrap_or(cap).min(cap);
    if soft >= hard {
        return NoFile {
            soft,
            hard,
            raised: false,
        };
    }
    let want = Rlimit {
        current: Some(hard),
        maximum: now.maximum,
    };
    match setrlimit(Resource::Nofile, want) {
        Ok(()) => NoFile {
            soft: hard,
            hard,
            raised: true,
        },
        Err(_) => NoFile {
            soft,
            hard,
            raised: false,
        },
    }
}

/// The process's tunnel capacity, as logged at start and shown in `/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capacity {
    /// `max_channels_per_session x sessions.max`, summed over upstreams.
    pub channel_slots: usize,
    /// The soft open-files limit in force.
    pub nofile: u64,
    /// Tunnels the open-files limit allows: `nofile - RESERVED_FDS`.
    pub fd_tunnels: usize,
    /// The smaller of the two: what the process can hold.
    pub tunnels: usize,
}

impl Capacity {
    pub fn new(channel_slots: usize, nofile: u64) -> Capacity {
        let fd_tunnels = usize::try_from(nofile.saturating_sub(RESERVED_FDS)).unwrap_or(usize::MAX);
        Capacity {
            channel_slots,
            nofile,
            fd_tunnels,
            tunnels: channel_slots.min(fd_tunnels),
        }
    }
}

static CAPACITY: OnceLock<Capacity> = OnceLock::new();
static OPEN: AtomicUsize = AtomicUsize::new(0);

/// Records the capacity (first call wins: there is one per process).
pub fn set(c: Capacity) {
    let _ = CAPACITY.set(c);
}

/// The capacity, once `set`.
pub fn get() -> Option<Capacity> {
    CAPACITY.get().copied()
}

/// Tunnels open now, over every upstream.
pub fn open_tunnels() -> usize {
    OPEN.load(Ordering::Relaxed)
}

/// One tunnel's share of the open-files budget; dropping it gives it back.
#[derive(Debug)]
pub struct FdSlot(&'static AtomicUsize);

impl Drop for FdSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The open-files limit is used up: refuse, naming it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the open-files limit (RLIMIT_NOFILE {nofile}, {reserved} reserved) allows {tunnels} tunnels, all open"
)]
pub struct FdLimit {
    pub nofile: u64,
    pub reserved: u64,
    pub tunnels: usize,
}

/// A slot for one more tunnel, or the limit that is full. Without a
/// recorded capacity (commands that do not serve) there is no fd budget.
pub fn take() -> Result<FdSlot, FdLimit> {
    let Some(c) = get() else {
        OPEN.fetch_add(1, Ordering::Relaxed);
        return Ok(FdSlot(&OPEN));
    };
    take_within(&OPEN, c)
}

fn take_within(open: &'static AtomicUsize, c: Capacity) -> Result<FdSlot, FdLimit> {
    open.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
        (n < c.fd_tunnels).then_some(n + 1)
    })
    .map(|_| FdSlot(open))
    .map_err(|_| FdLimit {
        nofile: c.nofile,
        reserved: RESERVED_FDS,
        tunnels: c.fd_tunnels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_is_the_smaller_limit() {
        let c = Capacity::new(4 * 4096, 1024);
        assert_eq!(c.fd_tunnels, 1024 - 256);
        assert_eq!(c.tunnels, 768);
        let c = Capacity::new(16_384, 1 << 20);
        assert_eq!(c.tunnels, 16_384);
        assert_eq!(Capacity::new(10, 100).fd_tunnels, 0);
    }

    #[test]
    fn the_fd_budget_refuses_when_used_up() {
        // A counter of its own: the process-wide one is shared by every test.
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let c = Capacity::new(100, RESERVED_FDS + 2);
        let a = take_within(&COUNT, c).expect("first");
        let _b = take_within(&COUNT, c).expect("second");
        let e = take_within(&COUNT, c).expect_err("third");
        assert_eq!(e.tunnels, 2);
        assert!(e.to_string().contains("RLIMIT_NOFILE 258"), "{e}");
        assert_eq!(COUNT.load(Ordering::Relaxed), 2);
        drop(a);
        assert_eq!(COUNT.load(Ordering::Relaxed), 1);
        assert!(take_within(&COUNT, c).is_ok());
    }

    #[test]
    fn raising_keeps_a_sane_limit() {
        let n = raise_nofile();
        assert!(n.soft <= n.hard && n.soft > 0, "{n:?}");
    }
}
