//! The daemon's life when its surroundings misbehave: a closed stderr (a dead
//! log collector, `jumpgate run ... 2>&1 | head`) must not stop it from
//! serving or from shutting down on SIGTERM. Before the fix, the first log
//! line after stderr closed panicked the task that wrote it (tracing's
//! fallback `eprintln!`), so SIGTERM was ignored for good.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::gate::JUMPGATE;
use crate::support::process::offline_command;
use crate::support::{free_port, targets, within, GateConfig, Sshd};

const TEST_LIMIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_stderr_neither_stops_service_nor_shutdown() {
    within(TEST_LIMIT, "test", async {
        let sshd = Sshd::start().await;
        let echo = targets::echo().await;
        let port = free_port();
        let toml = GateConfig::new(&sshd).toml().replace(
            "bind = \"127.0.0.1:0\"",
            &format!("bind = \"127.0.0.1:{port}\""),
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("jumpgate.toml");
        std::fs::write(&path, toml).expect("write config");
        let mut cmd: Command = offline_command(dir.path(), JUMPGATE);
        cmd.arg("run")
            .arg("-c")
            .arg(&path)
            .env("NO_COLOR", "1")
            .env_remove("SSH_AUTH_SOCK")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn jumpgate");
        // Close our ends at once: every log line from here on fails to write.
        drop(child.stdout.take());
        drop(child.stderr.take());

        // Still serving: each tunnel logs as it ends, so the second one
        // proves the first one's log line did not take anything down.
        let proxy = SocketAddr::from(([127, 0, 0, 1], port));
        let started = Instant::now();
        let mut served = 0;
        while served < 3 && started.elapsed() < Duration::from_secs(20) {
            match crate::support::socks::echo_roundtrip(proxy, echo.addr(), b"still here").await {
                Ok(()) => served += 1,
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        assert_eq!(served, 3, "jumpgate with a closed stderr stopped serving");

        // And SIGTERM still drains and exits 0.
        let pid = child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let signalled = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().expect("wait") {
                break Some(s);
            }
            if signalled.elapsed() > Duration::from_secs(20) {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let status = status.expect("jumpgate ignored SIGTERM for 20 s with a closed stderr");
        assert_eq!(status.code(), Some(0), "{status:?}");
        eprintln!("exited {:?} after SIGTERM", signalled.elapsed());
    })
    .await;
}
