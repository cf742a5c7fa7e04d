//! `[limits]`: a connection rate per client address and a cap on open client
//! connections, over all listeners. A refused connection still gets its
//! SOCKS handshake and the reply 0x02 ("not allowed by ruleset"), so the
//! client sees why instead of a bare close. Built from the config model's
//! `LimitSettings`; `status` reads its counters.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

pub use crate::config::LimitSettings;

/// Which limit refused a connection (`jumpgate_rate_limited_total{limit}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    ClientRate,
    MaxConnections,
}

impl Refusal {
    pub fn label(self) -> &'static str {
        match self {
            Refusal::ClientRate => "connections_per_second_per_client",
            Refusal::MaxConnections => "max_connections",
        }
    }
}

pub struct Limits {
    settings: LimitSettings,
    per_client: Option<DefaultKeyedRateLimiter<IpAddr>>,
    open: AtomicUsize,
    refused: AtomicU64,
}

/// An admitted connection; counts in `max_connections` until dropped.
pub struct Permit {
    limits: Arc<Limits>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.limits.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Limits {
    pub fn new(settings: LimitSettings) -> Arc<Limits> {
        Arc::new(Limits {
            settings,
            per_client: settings
                .connections_per_second_per_client
                .map(|n| RateLimiter::keyed(Quota::per_second(n))),
            open: AtomicUsize::new(0),
            refused: AtomicU64::new(0),
        })
    }

    /// Admits a connection from `client`, or says which limit refuses it.
    /// The connection counts as open either way until the permit (or the
    /// refusal's handshake) is over, so a flood cannot exceed the cap by
    /// being refused slowly.
    pub fn admit(self: &Arc<Self>, client: IpAddr) -> (Permit, Option<Refusal>) {
        let open = self.open.fetch_add(1, Ordering::Relaxed) + 1;
        let permit = Permit {
            limits: self.clone(),
        };
        let refusal = if self.settings.max_connections.is_some_and(|max| open > max) {
            Some(Refusal::MaxConnections)
        } else if self
            .per_client
            .as_ref()
            .is_some_and(|l| l.check_key(&client).is_err())
        {
            Some(Refusal::ClientRate)
        } else {
            None
        };
        if refusal.is_some() {
            self.refused.fetch_add(1, Ordering::Relaxed);
        }
        (permit, refusal)
    }

    /// Forgets clients whose rate state is back to full, so the table does
    /// not grow with every address ever seen. Called periodically.
    pub fn prune(&self) {
        if let Some(l) = &self.per_client {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }

    pub fn is_active(&self) -> bool {
        self.settings != LimitSettings::default()
    }

    pub fn settings(&self) -> LimitSettings {
        self.settings
    }

    /// Client connections open now, over all listeners.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Connections refused by a limit since start.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::num::NonZeroU32;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[test]
    fn max_connections_counts_open_permits() {
        let l = Limits::new(LimitSettings {
            connections_per_second_per_client: None,
            max_connections: Some(2),
        });
        let (a, ra) = l.admit(ip(1));
        let (b, rb) = l.admit(ip(2));
        let (c, rc) = l.admit(ip(3));
        assert_eq!((ra, rb, rc), (None, None, Some(Refusal::MaxConnections)));
        drop(c);
        drop(a);
        let (_d, rd) = l.admit(ip(4));
        assert_eq!(rd, None);
        drop(b);
        assert_eq!(l.open(), 1);
        assert_eq!(l.refused(), 1);
    }

    #[test]
    fn client_rate_is_per_address() {
        let l = Limits::new(LimitSettings {
            connections_per_second_per_client: NonZeroU32::new(3),
            max_connections: None,
        });
        let from_1: Vec<_> = (0..5).map(|_| l.admit(ip(1)).1).collect();
        assert_eq!(from_1.iter().filter(|r| r.is_none()).count(), 3);
        assert_eq!(from_1[4], Some(Refusal::ClientRate));
        // Another client is not affected by the first one's burst.
        assert_eq!(l.admit(ip(2)).1, None);
        assert_eq!(l.refused(), 2);
    }

    #[test]
    fn no_limits_admit_everything() {
        let l = Limits::new(LimitSettings::default());
        assert!(!l.is_active());
        assert!((0..1000).all(|_| l.admit(ip(1)).1.is_none()));
    }
}
