//! The server's text for refused channel opens ("Connection refused", "Name
//! or service not known"). russh gives the opener only the reason code and
//! the handler only the text, so the handler (`handler`) pushes here and the
//! opener (`channels`) pops, in arrival order.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;

/// Texts nobody claimed beyond this are dropped, oldest first.
const KEPT: usize = 64;

/// Concurrent failures on one session may swap texts, which at worst makes
/// a listener report "connection refused" for "host unreachable" or back.
#[derive(Default)]
pub(super) struct FailureTexts {
    queue: Mutex<VecDeque<String>>,
    notify: Notify,
}

impl FailureTexts {
    pub(super) fn push(&self, text: String) {
        if let Ok(mut q) = self.queue.lock() {
            if q.len() >= KEPT {
                q.pop_front();
            }
            q.push_back(text);
        }
        self.notify.notify_one();
    }

    fn try_pop(&self) -> Option<String> {
        self.queue.lock().ok().and_then(|mut q| q.pop_front())
    }

    /// The oldest text, waiting up to `wait` for one; "" if none came.
    pub(super) async fn pop(&self, wait: Duration) -> String {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notified = self.notify.notified();
            if let Some(t) = self.try_pop() {
                return t;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.try_pop().unwrap_or_default();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn texts_come_out_in_order_and_the_queue_is_bounded() {
        let t = FailureTexts::default();
        for i in 0..KEPT + 3 {
            t.push(format!("t{i}"));
        }
        let wait = Duration::from_millis(1);
        // The three oldest were dropped.
        assert_eq!(t.pop(wait).await, "t3");
        assert_eq!(t.pop(wait).await, "t4");
        for _ in 2..KEPT {
            t.pop(wait).await;
        }
        assert_eq!(t.pop(wait).await, "", "empty after {KEPT} pops");
    }

    #[tokio::test]
    async fn pop_waits_for_a_text_that_follows_the_code() {
        let t = Arc::new(FailureTexts::default());
        let pusher = t.clone();
        let late = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            pusher.push("Connection refused".into());
        });
        assert_eq!(t.pop(Duration::from_secs(5)).await, "Connection refused");
        late.await.expect("pusher");
    }
}
