//! The jump host of the bench: the test suite's own sshd fixture
//! (tests/support/sshd.rs, compiled here from the same file, with the helpers it
//! uses), started with `Ciphers` set to the one cipher under test, so that `ssh -D`
//! and jumpgate both end up with it whatever they prefer, and with less logging and
//! a higher `MaxStartups` than the tests use. Its PID is put under the bench's
//! watchdog (`super::process`).

use anyhow::{anyhow, Result};

// The fixture's parent module must offer `process` and `require` (the tests'
// files, not the bench's `super::process`); `require` needs `netns`. The tests use
// all of these files; the bench only the sshd.
#[allow(dead_code)]
#[path = "../../tests/support/sshd.rs"]
mod fixture;
#[allow(dead_code)]
#[path = "../../tests/support/netns.rs"]
mod netns;
#[allow(dead_code)]
#[path = "../../tests/support/process.rs"]
mod process;
#[allow(dead_code)]
#[path = "../../tests/support/require.rs"]
mod require;

/// A running sshd offering one cipher, killed on drop.
pub struct Sshd {
    inner: fixture::Sshd,
    /// Declared after `inner`: fields drop in order, so sshd is killed before its
    /// PID leaves the watchdog's list.
    _watched: Watched,
}

/// Keeps a PID on the bench watchdog's list until dropped.
struct Watched(u32);

impl Drop for Watched {
    fn drop(&mut self) {
        super::process::unwatch(self.0);
    }
}

impl Sshd {
    pub async fn start(cipher: &str) -> Result<Sshd> {
        let opts = fixture::SshdOptions {
            extra_config: vec![
                // One cipher offered: both clients must use it.
                format!("Ciphers {cipher}"),
                // Per-connection log lines cost sshd CPU that the bench measures.
                "LogLevel ERROR".into(),
                "MaxStartups 1000:30:1000".into(),
                "UseDNS no".into(),
            ],
            ..fixture::SshdOptions::default()
        };
        // The fixture fails by panicking (that is how a test fails); the bench
        // reports an error instead.
        let inner = tokio::spawn(async move {
            require::program("/usr/bin/ssh", "openssh-client");
            fixture::Sshd::start_with(opts).await
        })
        .await
        .map_err(|e| match e.try_into_panic() {
            Ok(p) => anyhow!(
                "sshd did not start: {}",
                p.downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| p.downcast_ref::<&str>().copied())
                    .unwrap_or("(no message)")
            ),
            Err(e) => anyhow!("sshd did not start: {e}"),
        })?;
        super::process::watch(inner.pid());
        Ok(Sshd {
            _watched: Watched(inner.pid()),
            inner,
        })
    }
}

impl std::ops::Deref for Sshd {
    type Target = fixture::Sshd;

    fn deref(&self) -> &fixture::Sshd {
        &self.inner
    }
}
