//! The session pool when jump hosts die: reconnects, failover across jump hosts,
//! fast refusals when no session can be had, and the reconnect backoff holding
//! under waiting clients. (Many tunnels on one pool, idle extras and graceful
//! shutdown are `pool_load`.)
//!
//! "Killing the jump host" here means what a crash of the sshd service does
//! (`support::sshd_life`): the sshd listener and every per-connection sshd process
//! it forked are killed, so every session on it drops at once. Killing only the
//! listener would leave the sessions running (OpenSSH forks one process per
//! connection).

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::task::JoinSet;

use crate::support::pattern::Checker;
use crate::support::socks;
use crate::support::sshd_life::{kill_sshd_tree, restart_sshd, sshd_pid, until};
use crate::support::{free_port, targets, within, Gate, GateConfig, Sshd};

const TEST_LIMIT: Duration = Duration::from_secs(120);

const KIB: usize = 1024;
const MIB: u64 = 1024 * 1024;
/// A source this long never ends within a test: an "endless" download.
const ENDLESS: u64 = 1 << 40;

/// A gate config for an upstream with both jump hosts `a` and `b`: b authorizes a's
/// client key and the known_hosts file lists both host keys.
fn two_host_config(a: &Sshd, b: &Sshd) -> GateConfig {
    let mut pubkey = a.client_key().as_os_str().to_owned();
    pubkey.push(".pub");
    let pubkey = std::fs::read_to_string(Path::new(&pubkey)).expect("read a's client key .pub");
    let ak = b.dir().join("authorized_keys");
    let mut text = std::fs::read_to_string(&ak).expect("read b's authorized_keys");
    text.push_str(pubkey.trim());
    text.push('\n');
    std::fs::write(&ak, text).expect("write b's authorized_keys");
    let kh = a.dir().join("known_hosts.both");
    let both = std::fs::read_to_string(a.known_hosts()).expect("read a's known_hosts")
        + &std::fs::read_to_string(b.known_hosts()).expect("read b's known_hosts");
    std::fs::write(&kh, both).expect("write known_hosts.both");
    GateConfig::new(a).known_hosts(Some(&kh)).hosts(&[
        (a.host().to_string(), a.port()),
        (b.host().to_string(), b.port()),
    ])
}

/// Waits up to `limit` for the gate to log a failed dial to the jump host.
async fn wait_failed_dial(gate: &mut Gate, limit: Duration, what: &str) {
    assert!(
        gate.wait_log(limit, |l| l.contains("cannot open SSH session"))
            .await
            .is_some(),
        "{what}:\n{}",
        gate.log_text()
    );
}

/// One echo round trip through the gate once sshd is back; panics with the
/// gate's log if it fails.
async fn echo_after_restart(gate: &Gate, echo: SocketAddr) {
    if let Err(e) = socks::echo_roundtrip(gate.socks_addr(), echo, b"back").await {
        panic!(
            "CONNECT after sshd came back: {e:#}\ngate log:\n{}",
            gate.log_text()
        );
    }
}

// === 1. kill and restart ===

/// Kill the jump host's sshd during a download: the tunnel ends (EOF or reset, no
/// hang), the upstream is logged not ready; sshd comes back on the same port with the
/// same keys and, with `reconnect = { initial = "100ms", max = "1s" }`, the next
/// CONNECT succeeds within the backoff bound plus a login.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_sshd_reconnects() {
    within(TEST_LIMIT, "test", async {
        let sshd = Sshd::start().await;
        let source = targets::source(ENDLESS).await;
        let echo = targets::echo().await;
        let cfg = GateConfig::new(&sshd)
            .upstream_line(r#"reconnect = { initial = "100ms", max = "1s" }"#);
        let mut gate = Gate::start(&cfg).await;
        let mut s = gate.connect(source.addr()).await;
        let mut checker = Checker::default();
        let mut buf = vec![0u8; 64 * KIB];
        while checker.received() < 8 * MIB {
            let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
                .await
                .expect("download stalled before the kill")
                .expect("download before the kill");
            assert!(n > 0, "download ended before the kill");
            checker.feed(&buf[..n]);
        }
        let before_kill = checker.received();

        let addr = SocketAddr::new(sshd.host(), sshd.port());
        let killed = kill_sshd_tree(sshd_pid(&sshd), addr).await;
        let killed_at = Instant::now();
        // The tunnel must end by itself, soon: EOF or an error, never a hang.
        let how = within(Duration::from_secs(5), "tunnel end after the kill", async {
            loop {
                match s.read(&mut buf).await {
                    Ok(0) => break "EOF".to_string(),
                    Ok(n) => checker.feed(&buf[..n]),
                    Err(e) => break format!("error {e}"),
                }
            }
        })
        .await;
        let ended_after = killed_at.elapsed();
        assert_eq!(
            checker.first_mismatch(),
            None,
            "the bytes before the end are not the source's"
        );
        eprintln!(
            "killed {killed} sshd processes; tunnel ended by {how} {ended_after:?} later, \
             after {} bytes ({before_kill} before the kill)",
            checker.received()
        );
        drop(s);
        for what in ["session lost", "upstream NOT ready", "end=SessionLost"] {
            assert!(
                gate.wait_log(Duration::from_secs(5), |l| l.contains(what))
                    .await
                    .is_some(),
                "no `{what}` in the gate log after the kill:\n{}",
                gate.log_text()
            );
        }
        // While sshd is down the gate tries and fails (the backoff then grows).
        wait_failed_dial(
            &mut gate,
            Duration::from_secs(5),
            "no failed reconnect logged while sshd was down",
        )
        .await;

        let _sshd2 = restart_sshd(&sshd).await;
        let back = Instant::now();
        echo_after_restart(&gate, echo.addr()).await;
        let took = back.elapsed();
        eprintln!("first CONNECT after sshd came back succeeded in {took:?}");
        assert!(
            took <= Duration::from_secs(5),
            "the first CONNECT after sshd came back took {took:?} (backoff max 1 s)"
        );
        until(Duration::from_secs(5), "second `upstream ready`", || {
            gate.count_log(|l| l.contains("upstream ready")) >= 2
        })
        .await;
        // One login before the kill; after it the slot supervisor's session, and
        // possibly an on-demand one dialed for our CONNECT while the supervisor was
        // still in its backoff wait.
        let logins = sshd.logins();
        eprintln!("sshd logins: {logins}");
        assert!(
            (2..=3).contains(&logins),
            "{logins} logins\nsshd log:\n{}",
            sshd.log()
        );
    })
    .await;
}

/// After an outage long enough for the backoff to grow, the first CONNECT
/// once the jump host is back must not sit out the rest of it: a waiting
/// CONNECT has the slot retry early (at most once per failed dial, no sooner
/// than 1 s after it). With `reconnect = { initial = "30s", max = "60s" }` the
/// slot's own wait after the first failure is up to 30 s; the CONNECT,
/// made 1.5 s after that failure, must get through within 5 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_connect_retries_before_a_long_backoff_ends() {
    within(TEST_LIMIT, "test", async {
        let sshd = Sshd::start().await;
        let echo = targets::echo().await;
        let mut cfg = GateConfig::new(&sshd)
            .connect_timeout("20s")
            .upstream_line(r#"reconnect = { initial = "30s", max = "60s" }"#);
        cfg.extra_toml
            .push(crate::support::admin::ADMIN_TOML.into());
        let mut gate = Gate::start(&cfg).await;
        let admin = crate::support::admin::admin_addr(&mut gate).await;
        let addr = SocketAddr::new(sshd.host(), sshd.port());
        kill_sshd_tree(sshd_pid(&sshd), addr).await;
        wait_failed_dial(
            &mut gate,
            Duration::from_secs(10),
            "no failed reconnect logged while sshd was down",
        )
        .await;
        let _sshd2 = restart_sshd(&sshd).await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let (_, json) = crate::support::admin::get(admin, "/status").await;
        let v: serde_json::Value = serde_json::from_str(&json).expect("status json");
        let host = &v["upstreams"][0]["hosts"][0];
        let (failures, retry_in) = (
            host["failures"].as_u64().unwrap_or(0),
            host["retry_in_seconds"].as_f64(),
        );
        let back = Instant::now();
        echo_after_restart(&gate, echo.addr()).await;
        let took = back.elapsed();
        eprintln!(
            "before the CONNECT: {failures} failed dials, the slot's retry in {retry_in:?} s; \
             the CONNECT got through in {took:?}"
        );
        assert!(
            took <= Duration::from_secs(5),
            "the first CONNECT after sshd came back took {took:?} (slot retry was in \
             {retry_in:?} s)\n{}",
            gate.log_text()
        );
        assert!(
            gate.count_log(|l| l.contains("retrying the jump host before its backoff ends")) >= 1
                || retry_in.is_none_or(|r| r < 3.0),
            "no early retry logged while the slot's backoff had {retry_in:?} s left:\n{}",
            gate.log_text()
        );
    })
    .await;
}

// === 2. failover between two jump hosts ===

/// One round trip of the CONNECT stream: when it started and how it went.
struct Attempt {
    started: Instant,
    result: Result<(), String>,
}

/// Two jump hosts, one session each; a paced stream of CONNECT + echo round trips;
/// one host is killed in the middle. Round trips that start after the gate logged the
/// lost session must all succeed (the failed host is avoided, and an open on a dead
/// session is retried once elsewhere); the ones cut by the kill are counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hosts_one_killed_no_failed_connects_after_detection() {
    const WORKERS: usize = 4;
    const PER_WORKER: usize = 100;
    const PACE: Duration = Duration::from_millis(40);
    within(TEST_LIMIT, "test", async {
        let a = Sshd::start().await;
        let b = Sshd::start().await;
        let echo = targets::echo().await;
        let cfg = two_host_config(&a, &b)
            .upstream_line(r#"sessions = { min = 2, max = 2 }"#)
            .upstream_line(r#"reconnect = { initial = "100ms", max = "1s" }"#);
        let gate = Gate::start(&cfg).await;
        let spread = Duration::from_secs(10);
        let started = Instant::now();
        while a.logins() < 1 || b.logins() < 1 {
            assert!(
                started.elapsed() < spread,
                "sessions = {{ min = 2 }} over two hosts: logins a={} b={} after {spread:?} \
                 (the pool did not spread its sessions over both hosts)\ngate log:\n{}",
                a.logins(),
                b.logins(),
                gate.log_text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        let proxy = gate.socks_addr();
        let done = Arc::new(AtomicUsize::new(0));
        let t0 = Instant::now();
        let mut workers = JoinSet::new();
        for w in 0..WORKERS {
            let done = done.clone();
            let dest = echo.addr();
            workers.spawn(async move {
                let mut tick = tokio::time::interval(PACE);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let mut attempts = Vec::with_capacity(PER_WORKER);
                for i in 0..PER_WORKER {
                    tick.tick().await;
                    let started = Instant::now();
                    let msg = format!("worker {w} round trip {i}").into_bytes();
                    let r = tokio::time::timeout(
                        Duration::from_secs(15),
                        socks::echo_roundtrip(proxy, dest, &msg),
                    )
                    .await;
                    let result = match r {
                        Ok(Ok(())) => Ok(()),
                        Ok(Err(e)) => Err(format!("{e:#}")),
                        Err(_) => Err("round trip took longer than 15 s".into()),
                    };
                    attempts.push(Attempt { started, result });
                    done.fetch_add(1, Ordering::Relaxed);
                }
                attempts
            });
        }

        until(
            Duration::from_secs(30),
            "150 round trips before the kill",
            || done.load(Ordering::Relaxed) >= 150,
        )
        .await;
        let killed_at = Instant::now();
        let addr = SocketAddr::new(a.host(), a.port());
        kill_sshd_tree(sshd_pid(&a), addr).await;
        let lost_before = gate.count_log(|l| l.contains("session lost"));
        let deadline = Instant::now() + Duration::from_secs(5);
        while gate.count_log(|l| l.contains("session lost")) == 0 {
            assert!(
                Instant::now() < deadline,
                "the gate did not log `session lost` within 5 s of the kill\n{}",
                gate.log_text()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let detected = Instant::now();

        let mut attempts = Vec::new();
        while let Some(r) = workers.join_next().await {
            attempts.extend(r.expect("worker task"));
        }
        let total_time = t0.elapsed();
        let failed: Vec<&Attempt> = attempts.iter().filter(|a| a.result.is_err()).collect();
        let failed_after: Vec<String> = failed
            .iter()
            .filter(|a| a.started >= detected)
            .map(|a| {
                format!(
                    "+{:?} after detection: {}",
                    a.started - detected,
                    a.result.as_ref().err().map_or("", |e| e.as_str())
                )
            })
            .collect();
        let after = attempts.iter().filter(|a| a.started >= detected).count();
        eprintln!(
            "{} round trips in {total_time:?}; kill at +{:?}, `session lost` seen {:?} after \
             the kill ({lost_before} before polling); failures: {} in total, {} of {after} \
             started after detection",
            attempts.len(),
            killed_at - t0,
            detected - killed_at,
            failed.len(),
            failed_after.len()
        );
        for f in &failed {
            eprintln!(
                "  failure at +{:?}: {}",
                f.started - t0,
                f.result.as_ref().err().map_or("", |e| e.as_str())
            );
        }
        assert_eq!(attempts.len(), WORKERS * PER_WORKER);
        assert!(
            after >= 100,
            "only {after} round trips started after detection: the stream did not run across it"
        );
        assert!(
            failed_after.is_empty(),
            "CONNECTs failed after the lost session was detected: {failed_after:?}\ngate log:\n{}",
            gate.log_text()
        );
        assert_eq!(
            gate.count_log(|l| l.contains("upstream NOT ready")),
            0,
            "the upstream was reported not ready while host b was alive:\n{}",
            gate.log_text()
        );
    })
    .await;
}

// === 3. no session ===

/// An upstream whose port has nothing listening: a CONNECT waits `connect_timeout`
/// (1 s) for a session and gets 0x04, never hangs; several at once as well.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_session_answers_host_unreachable_in_time() {
    within(TEST_LIMIT, "test", async {
        let sshd = Sshd::start().await;
        let mut cfg = GateConfig::new(&sshd).connect_timeout("1s");
        cfg.port = free_port();
        let gate = Gate::start_unready(&cfg).await;
        let proxy = gate.socks_addr();
        let dest: socks::Dest = SocketAddr::from(([127, 0, 0, 1], 9)).into();
        let mut asks = JoinSet::new();
        for _ in 0..5 {
            let dest = dest.clone();
            asks.spawn(async move {
                let started = Instant::now();
                let code = socks::reply_code(proxy, socks::CONNECT, &dest).await;
                (code.map_err(|e| format!("{e:#}")), started.elapsed())
            });
        }
        while let Some(r) = asks.join_next().await {
            let (code, took) = r.expect("request task");
            eprintln!("CONNECT with no session: {code:?} after {took:?}");
            assert_eq!(
                code,
                Ok(socks::HOST_UNREACHABLE),
                "gate log:\n{}",
                gate.log_text()
            );
            assert!(
                took >= Duration::from_millis(900) && took <= Duration::from_millis(1500),
                "reply 0x04 after {took:?}, want about connect_timeout (1 s)"
            );
        }
        assert_eq!(
            gate.count_log(|l| l.contains("upstream ready")),
            0,
            "{}",
            gate.log_text()
        );
    })
    .await;
}

// === 4. backoff holds while clients wait ===

/// CPU time (user + system) of process `pid` so far, from /proc/PID/stat.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/PID/stat");
    let after = &stat[stat.rfind(')').expect("comm in stat") + 1..];
    let f: Vec<u64> = after
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    // After the comm: state is field 3, utime 14 and stime 15 (1-based, man 5 proc).
    let ticks = f[11] + f[12];
    let hz: u64 = String::from_utf8_lossy(
        &Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .expect("getconf CLK_TCK")
            .stdout,
    )
    .trim()
    .parse()
    .expect("CLK_TCK is a number");
    Duration::from_millis(ticks * 1000 / hz)
}

/// A jump host that accepts TCP and closes at once (a broken sshd): a CONNECT that
/// waits `connect_timeout` (1 s) for a session gets 0x04, and meanwhile the gate
/// keeps to its backoff (`reconnect.initial = 1s`): a handful of connection attempts,
/// not a tight loop of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_connects_do_not_bypass_the_reconnect_backoff() {
    within(TEST_LIMIT, "test", async {
        let sshd = Sshd::start().await;
        let closer = targets::source(0).await;
        let mut cfg = GateConfig::new(&sshd)
            .connect_timeout("1s")
            .upstream_line(r#"reconnect = { initial = "1s", max = "30s" }"#);
        cfg.port = closer.port();
        let mut gate = Gate::start_unready(&cfg).await;
        wait_failed_dial(
            &mut gate,
            Duration::from_secs(10),
            "no failed session logged",
        )
        .await;
        let proxy = gate.socks_addr();
        let dest: socks::Dest = SocketAddr::from(([127, 0, 0, 1], 9)).into();
        let (before, cpu_before) = (closer.accepted(), cpu_time(gate.pid()));
        let started = Instant::now();
        let code = socks::reply_code(proxy, socks::CONNECT, &dest).await;
        let took = started.elapsed();
        let attempts = closer.accepted() - before;
        let cpu = cpu_time(gate.pid()).saturating_sub(cpu_before);
        eprintln!(
            "one CONNECT while the jump host fails: reply {code:?} after {took:?}; \
             {attempts} connection attempts to the jump host meanwhile; gate CPU {cpu:?}"
        );
        assert_eq!(code.ok(), Some(socks::HOST_UNREACHABLE));
        assert!(
            attempts <= 10,
            "{attempts} connection attempts to a failing jump host during one CONNECT's \
             {took:?} wait (reconnect.initial = 1s)"
        );
        assert!(
            cpu < Duration::from_millis(300),
            "the gate used {cpu:?} of CPU while one CONNECT waited {took:?}"
        );
    })
    .await;
}
