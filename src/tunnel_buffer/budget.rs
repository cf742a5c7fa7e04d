//! The relay's limits (`[relay]` in the config) and the process-wide budget
//! every tunnel's inbox draws on: the `spill_total` disk allowance, and
//! atomic totals of what is buffered in memory and on disk, spilled so far,
//! and how often each cap was hit. Metrics and `/status` read the totals;
//! `tunnel_buffer::account` is the only writer. Reads `config::RelaySettings`;
//! talks to nothing else.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

/// The per-tunnel and total caps. Sizes in bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Bytes a tunnel holds in memory before it spills to disk.
    pub memory_per_tunnel: usize,
    /// Where spill files are created (and at once unlinked).
    pub spill_dir: PathBuf,
    /// Disk bytes one tunnel may hold; 0 turns spilling off.
    pub spill_per_tunnel: u64,
    /// Disk bytes all tunnels together may hold.
    pub spill_total: u64,
}

impl From<&crate::config::RelaySettings> for Limits {
    fn from(r: &crate::config::RelaySettings) -> Limits {
        Limits {
            memory_per_tunnel: r.memory_per_tunnel,
            spill_dir: r.spill_dir.clone(),
            spill_per_tunnel: r.spill_per_tunnel,
            spill_total: r.spill_total,
        }
    }
}

/// `[relay] spill_dir` is not usable: the daemon does not start.
#[derive(Debug, thiserror::Error)]
#[error("[relay] spill_dir = {:?}: cannot create a spill file there: {source}", .dir.display().to_string())]
pub struct SpillDirError {
    pub dir: PathBuf,
    pub source: std::io::Error,
}

impl Default for Limits {
    /// The documented defaults: 256 KiB in memory, then up to 64 MiB per
    /// tunnel and 2 GiB in all in the system temporary directory (`$TMPDIR`,
    /// else `/tmp`), which every Unix has and which is often a tmpfs: a
    /// daemon that wants real disk sets `spill_dir`.
    fn default() -> Self {
        Limits {
            memory_per_tunnel: 256 * 1024,
            spill_dir: std::env::temp_dir(),
            spill_per_tunnel: 64 * 1024 * 1024,
            spill_total: 2 * 1024 * 1024 * 1024,
        }
    }
}

/// Which cap stopped a tunnel from taking more: the `cap` label of
/// `jumpgate_relay_cap_reached_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cap {
    /// Memory is full and spilling is off (`spill_per_tunnel = 0`).
    MemoryPerTunnel = 0,
    /// This tunnel's spill file is full.
    SpillPerTunnel = 1,
    /// All spill files together are at `spill_total`.
    SpillTotal = 2,
    /// The spill file could not be created or written (disk full, no
    /// `spill_dir`): memory only until it drains.
    SpillError = 3,
}

impl Cap {
    pub const ALL: [Cap; 4] = [
        Cap::MemoryPerTunnel,
        Cap::SpillPerTunnel,
        Cap::SpillTotal,
        Cap::SpillError,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Cap::MemoryPerTunnel => "memory_per_tunnel",
            Cap::SpillPerTunnel => "spill_per_tunnel",
            Cap::SpillTotal => "spill_total",
            Cap::SpillError => "spill_error",
        }
    }
}

static GLOBAL: OnceLock<Arc<Budget>> = OnceLock::new();

/// Shared by every inbox of the process. All counters are plain atomics:
/// the session tasks that push and the relay tasks that drain never wait on
/// each other here.
#[derive(Debug)]
pub struct Budget {
    limits: Limits,
    /// Bytes held in memory tiers now.
    memory: AtomicU64,
    /// Bytes held in spill files now, not yet sent to their client.
    disk: AtomicU64,
    /// Disk space the spill files take now (a file's extent: at most its
    /// ring size); what `spill_total` caps.
    disk_reserved: AtomicU64,
    /// Bytes ever written to spill files.
    spilled: AtomicU64,
    /// Times each cap was reached, indexed by `Cap as usize`.
    caps: [AtomicU64; 4],
}

/// A point-in-time copy of the budget's counters, for metrics and status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub memory: u64,
    pub disk: u64,
    pub disk_reserved: u64,
    pub spilled: u64,
    pub caps: [u64; 4],
}

impl Budget {
    pub fn new(limits: Limits) -> Arc<Budget> {
        Arc::new(Budget {
            limits,
            memory: AtomicU64::new(0),
            disk: AtomicU64::new(0),
            disk_reserved: AtomicU64::new(0),
            spilled: AtomicU64::new(0),
            caps: Default::default(),
        })
    }

    /// The process's budget: the one `install`ed at start, else (a
    /// process that never installed one, such as `jumpgate check`) the
    /// defaults.
    pub fn global() -> Arc<Budget> {
        GLOBAL
            .get_or_init(|| Budget::new(Limits::default()))
            .clone()
    }

    /// Sets the process's budget from `[relay]`, once, at start: a spill
    /// file is created (and at once unlinked) in `spill_dir` first, so that
    /// an unusable directory stops the daemon with its name instead of
    /// showing up as a cap on the first slow client. With spilling off
    /// (`spill_per_tunnel = 0`) the directory is not touched. A second call
    /// (a reload) keeps the first budget: the spill files in use depend on
    /// it; the caller says so.
    pub fn install(limits: Limits) -> Result<Arc<Budget>, SpillDirError> {
        Budget::check_spill_dir(&limits)?;
        let mut fresh = Some(limits);
        let b = GLOBAL.get_or_init(|| Budget::new(fresh.take().unwrap_or_default()));
        Ok(b.clone())
    }

    /// Whether a spill file can be created (and is at once unlinked) in
    /// `spill_dir`; with spilling off the directory is not touched. What
    /// `install` checks at start, and `jumpgate check` on its own, with the
    /// same error.
    pub fn check_spill_dir(limits: &Limits) -> Result<(), SpillDirError> {
        if limits.spill_per_tunnel == 0 {
            return Ok(());
        }
        tempfile::tempfile_in(&limits.spill_dir)
            .map(drop)
            .map_err(|source| SpillDirError {
                dir: limits.spill_dir.clone(),
                source,
            })
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn usage(&self) -> Usage {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Usage {
            memory: load(&self.memory),
            disk: load(&self.disk),
            disk_reserved: load(&self.disk_reserved),
            spilled: load(&self.spilled),
            caps: [0, 1, 2, 3].map(|i| load(&self.caps[i])),
        }
    }

    /// Takes `n` bytes of `spill_total`, all or nothing.
    pub(super) fn reserve_disk(&self, n: u64) -> bool {
        let cap = self.limits.spill_total;
        self.disk_reserved
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(n).filter(|&t| t <= cap)
            })
            .is_ok()
    }

    pub(super) fn release_disk(&self, n: u64) {
        self.disk_reserved.fetch_sub(n, Ordering::AcqRel);
    }

    pub(super) fn add_memory(&self, n: usize) {
        self.memory.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub(super) fn sub_memory(&self, n: usize) {
        self.memory.fetch_sub(n as u64, Ordering::Relaxed);
    }

    pub(super) fn add_disk(&self, n: usize) {
        self.disk.fetch_add(n as u64, Ordering::Relaxed);
        self.spilled.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub(super) fn sub_disk(&self, n: u64) {
        self.disk.fetch_sub(n, Ordering::Relaxed);
    }

    pub(super) fn cap_reached(&self, cap: Cap) {
        self.caps[cap as usize].fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_reservations_never_exceed_spill_total() {
        let b = Budget::new(Limits {
            spill_total: 100,
            ..Limits::default()
        });
        assert!(b.reserve_disk(60));
        assert!(!b.reserve_disk(41), "60 + 41 > 100 must be refused");
        assert!(b.reserve_disk(40));
        assert_eq!(b.usage().disk_reserved, 100);
        b.release_disk(60);
        assert!(b.reserve_disk(60));
        assert_eq!(b.usage().disk_reserved, 100);
    }

    #[test]
    fn an_unusable_spill_dir_is_named_unless_spilling_is_off() {
        let dir = tempfile::tempdir().expect("temp dir");
        let missing = dir.path().join("missing");
        let limits = Limits {
            spill_dir: missing.clone(),
            ..Limits::default()
        };
        let e = Budget::check_spill_dir(&limits).err();
        let text = e.map(|e| e.to_string()).unwrap_or_default();
        assert!(
            text.starts_with(&format!(
                "[relay] spill_dir = {:?}: cannot create a spill file there: ",
                missing.display().to_string()
            )),
            "{text}"
        );
        let off = Limits {
            spill_per_tunnel: 0,
            ..limits
        };
        assert!(
            Budget::check_spill_dir(&off).is_ok(),
            "spilling off: not touched"
        );
        let usable = Limits {
            spill_dir: dir.path().to_owned(),
            ..Limits::default()
        };
        assert!(Budget::check_spill_dir(&usable).is_ok());
        assert_eq!(
            std::fs::read_dir(dir.path()).map(|d| d.count()).ok(),
            Some(0),
            "the probe file is unlinked"
        );
    }

    #[test]
    fn cap_labels_are_the_config_keys() {
        let labels: Vec<&str> = Cap::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(
            labels,
            [
                "memory_per_tunnel",
                "spill_per_tunnel",
                "spill_total",
                "spill_error"
            ]
        );
        for (i, c) in Cap::ALL.iter().enumerate() {
            assert_eq!(*c as usize, i);
        }
    }
}
