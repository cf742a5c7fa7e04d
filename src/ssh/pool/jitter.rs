//! Reconnect waits: exponential backoff with full jitter, so that sessions
//! that died together (a jump host restarted) do not all come back at the
//! same instant. Used by the pool's supervisors and by
//! `proxy::remote_forward` for re-requesting forwards.

use std::time::Duration;

use crate::config::Backoff;

/// A uniform wait in [0, cap], where the cap doubles from `initial` up to
/// `max`; never below 10 ms so a dead host is not hammered.
pub struct Jitter {
    cfg: Backoff,
    cap: Duration,
}

impl Jitter {
    pub fn new(cfg: Backoff) -> Self {
        Jitter {
            cfg,
            cap: cfg.initial,
        }
    }

    pub fn reset(&mut self) {
        self.cap = self.cfg.initial;
    }

    pub fn next_wait(&mut self) -> Duration {
        use rand::Rng;
        let cap = self.cap;
        self.cap = (self.cap * 2).min(self.cfg.max);
        let ms = cap.as_millis().min(u128::from(u64::MAX)) as u64;
        Duration::from_millis(rand::thread_rng().gen_range(0..=ms).max(10))
    }

    pub fn cap(&self) -> Duration {
        self.cap
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_max_and_resets() {
        let mut j = Jitter::new(Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(700),
        });
        let mut caps = vec![];
        for _ in 0..5 {
            let w = j.next_wait();
            caps.push(j.cap());
            assert!(w <= Duration::from_millis(700));
        }
        assert_eq!(
            caps,
            [200, 400, 700, 700, 700]
                .map(Duration::from_millis)
                .to_vec()
        );
        j.reset();
        assert!(j.next_wait() <= Duration::from_millis(100));
    }
}
