//! The pool's two choices as pure functions, so that tests need no session:
//! which session a new channel goes to (`choose`), and which host a new
//! session goes to (`pick_host`).

use std::sync::Arc;

use tokio::time::Instant;

use super::HostHealth;
use crate::ssh::session::JumpSession;

/// What the pool knows of a session when choosing; see `choose`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Load {
    pub channels: usize,
    pub usable: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Choice {
    Use(usize),
    Dial,
    Wait,
    /// Every slot of every session is taken and the pool may not grow:
    /// only a closing tunnel frees one, so the caller refuses at once
    /// instead of waiting `connect_timeout` for it.
    Full,
}

/// The least-loaded usable session with room; else dial if the pool may grow
/// and no dial is already under way (one at a time, so a burst does not
/// open `max` sessions at once); else full if `max_sessions` sessions hold
/// `cap` channels each and none is being dialled; else wait (a session is
/// being dialled, stalled or retiring: that can pass).
pub(crate) fn choose(live: &[Load], cap: usize, max_sessions: usize, dialing: usize) -> Choice {
    let best = live
        .iter()
        .enumerate()
        .filter(|(_, l)| l.usable && l.channels < cap)
        .min_by_key(|(_, l)| l.channels);
    match best {
        Some((i, _)) => Choice::Use(i),
        None if live.len() + dialing < max_sessions && dialing == 0 => Choice::Dial,
        None if dialing == 0
            && live.len() >= max_sessions
            && live.iter().all(|l| l.channels >= cap) =>
        {
            Choice::Full
        }
        None => Choice::Wait,
    }
}

/// Picks the host (an index into `hosts`) for a new session: among hosts
/// not in backoff, the one with the fewest sessions; if all are in backoff,
/// the one free soonest.
pub(super) fn pick_host(
    hosts: &[HostHealth],
    sessions: &[Arc<JumpSession>],
    now: Instant,
) -> usize {
    let count = |i: usize| sessions.iter().filter(|s| s.host_index == i).count() + hosts[i].dialing;
    let up = (0..hosts.len())
        .filter(|i| hosts[*i].down_until.is_none_or(|t| t <= now))
        .min_by_key(|i| count(*i));
    up.unwrap_or_else(|| {
        (0..hosts.len())
            .min_by_key(|i| hosts[*i].down_until)
            .unwrap_or(0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn l(channels: usize, usable: bool) -> Load {
        Load { channels, usable }
    }

    #[test]
    fn least_loaded_usable_session_wins() {
        let live = [l(5, true), l(2, true), l(1, false), l(3, true)];
        assert_eq!(choose(&live, 10, 4, 0), Choice::Use(1));
    }

    #[test]
    fn full_pool_grows_one_dial_at_a_time() {
        let live = [l(10, true), l(10, true)];
        assert_eq!(choose(&live, 10, 4, 0), Choice::Dial);
        assert_eq!(choose(&live, 10, 4, 1), Choice::Wait);
        // At max sessions, all full, none dialling: no longer a wait (issue 11).
        assert_eq!(choose(&live, 10, 2, 0), Choice::Full);
        assert_eq!(choose(&[], 10, 2, 0), Choice::Dial);
    }

    #[test]
    fn a_full_pool_is_full_only_when_nothing_can_free_a_slot() {
        let full = [l(3, true)];
        assert_eq!(choose(&full, 3, 1, 0), Choice::Full);
        // The last slot of a full pool was just freed: use it.
        assert_eq!(choose(&[l(2, true)], 3, 1, 0), Choice::Use(0));
        // A session being dialled will bring room: wait for it.
        assert_eq!(choose(&full, 3, 2, 1), Choice::Wait);
        assert_eq!(choose(&[], 3, 1, 1), Choice::Wait);
        // A stalled or retiring session with room may come back: wait.
        assert_eq!(choose(&[l(3, true), l(1, false)], 3, 2, 0), Choice::Wait);
        // The pool may still grow: dial.
        assert_eq!(choose(&full, 3, 2, 0), Choice::Dial);
        // The defaults: 4 x 4096 all taken.
        let all = [l(4096, true); 4];
        assert_eq!(choose(&all, 4096, 4, 0), Choice::Full);
        // Over the cap (after a reload lowered it) counts as full too.
        assert_eq!(choose(&[l(10, false)], 3, 1, 0), Choice::Full);
    }

    #[test]
    fn stalled_sessions_get_nothing() {
        let live = [l(0, false)];
        assert_eq!(choose(&live, 10, 1, 0), Choice::Wait);
        assert_eq!(choose(&live, 10, 2, 0), Choice::Dial);
    }

    #[test]
    fn host_choice_avoids_hosts_in_backoff() {
        let now = Instant::now();
        let down = HostHealth {
            down_until: Some(now + Duration::from_secs(5)),
            failures: 1,
            ..HostHealth::default()
        };
        let busy = HostHealth {
            dialing: 1,
            ..HostHealth::default()
        };
        // A dial in flight counts as a session: the next goes elsewhere.
        assert_eq!(pick_host(&[busy, HostHealth::default()], &[], now), 1);
        let hosts = vec![down.clone(), HostHealth::default()];
        assert_eq!(pick_host(&hosts, &[], now), 1);
        let later = HostHealth {
            down_until: Some(now + Duration::from_secs(9)),
            failures: 2,
            ..HostHealth::default()
        };
        assert_eq!(pick_host(&[later, down], &[], now), 1);
    }
}
