//! The session pool: reconnects, failover across jump hosts, growth under load,
//! head-of-line isolation, graceful shutdown.
//!
//! "Killing the jump host" here means what a crash of the sshd service does: the sshd
//! listener and every per-connection sshd process it forked are killed (SIGKILL, by
//! PID, only processes this test started), so every session on it drops at once.
//! Killing only the listener would leave the sessions running (OpenSSH forks one
//! process per connection).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use crate::support::pattern::{self, Checker};
use crate::support::process::{offline_command, ChildGuard};
use crate::support::socks;
use crate::support::sshd::SSHD;
use crate::support::{free_port, heavy_lock, targets, within, Gate, GateConfig, Sshd};

const TEST_LIMIT: Duration = Duration::from_secs(120);

const KIB: usize = 1024;
const MIB: u64 = 1024 * 1024;
/// A source this long never ends within a test: an "endless" download.
const ENDLESS: u64 = 1 << 40;

// === helpers: killing and restarting a jump host's sshd ===

/// The PID of an sshd's listener process, from the PidFile in its config.
pub(crate) fn sshd_pid(sshd: &Sshd) -> u32 {
    let file = sshd.dir().join("sshd.pid");
    let text =
        std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
    text.trim()
        .parse()
        .unwrap_or_else(|e| panic!("{}: {text:?}: {e}", file.display()))
}

/// The parent PID of `pid` (from /proc/PID/stat), if the process exists.
pub(crate) fn ppid_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "PID (comm) STATE PPID ...": comm may contain spaces and parentheses.
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(1)?.parse().ok()
}

/// Every live descendant of `root` (children, grandchildren, ...).
pub(crate) fn descendants(root: u32) -> Vec<u32> {
    let mut parent = BTreeMap::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            if let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) {
                if let Some(pp) = ppid_of(pid) {
                    parent.insert(pid, pp);
                }
            }
        }
    }
    let mut out = Vec::new();
    let mut frontier = vec![root];
    // A process tree is acyclic; the bound only guards against a garbled /proc read.
    for _ in 0..64 {
        let Some(p) = frontier.pop() else { break };
        for (&child, &pp) in &parent {
            if pp == p && !out.contains(&child) {
                out.push(child);
                frontier.push(child);
            }
        }
    }
    out
}

/// `kill -SIG PID...` for exactly these PIDs.
fn signal(sig: &str, pids: &[u32]) {
    if pids.is_empty() {
        return;
    }
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .args(pids.iter().map(|p| p.to_string()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Kills the sshd whose listener is `master` and every session process it forked:
/// the listener is stopped first (so it cannot fork while we look), then its tree is
/// stopped and collected until no new process shows up, then all are SIGKILLed. Waits
/// (bounded) until `addr` refuses connections. Returns how many processes died.
pub(crate) async fn kill_sshd_tree(master: u32, addr: SocketAddr) -> usize {
    signal("STOP", &[master]);
    let mut tree = vec![master];
    for _ in 0..20 {
        let found: Vec<u32> = descendants(master)
            .into_iter()
            .filter(|p| !tree.contains(p))
            .collect();
        if found.is_empty() {
            break;
        }
        signal("STOP", &found);
        tree.extend(found);
    }
    signal("KILL", &tree);
    let started = Instant::now();
    loop {
        match TcpStream::connect(addr).await {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => break,
            _ => {}
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{addr} still accepts connections 5 s after its sshd (pid {master}) was killed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tree.len()
}

/// Starts sshd again with the config (same port, host key and authorized_keys) of
/// `sshd`, appending to its log so that `sshd.logins()` counts both lives; waits for
/// its banner. The returned guard kills it.
pub(crate) async fn restart_sshd(sshd: &Sshd) -> ChildGuard {
    let dir = sshd.dir();
    let log = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.join("sshd.log"))
        .expect("open sshd.log for appending");
    let mut cmd = offline_command(dir, SSHD);
    cmd.arg("-D")
        .arg("-e")
        .arg("-f")
        .arg(dir.join("sshd_config"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    let mut child = ChildGuard::spawn("sshd (restarted)", &mut cmd);
    let addr = SocketAddr::new(sshd.host(), sshd.port());
    let started = Instant::now();
    loop {
        if let Some(status) = child.exited() {
            panic!("restarted sshd exited ({status}):\n{}", sshd.log());
        }
        if banner(addr).await {
            return child;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "restarted sshd shows no banner on {addr} within 10 s:\n{}",
            sshd.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn banner(addr: SocketAddr) -> bool {
    let probe = async {
        let mut s = TcpStream::connect(addr).await.ok()?;
        let mut buf = [0u8; 8];
        s.read_exact(&mut buf).await.ok()?;
        Some(&buf == b"SSH-2.0-")
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), probe).await,
        Ok(Some(true))
    )
}

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

/// Waits (bounded) until `cond` holds, polling every 20 ms.
pub(crate) async fn until(limit: Duration, what: &str, cond: impl Fn() -> bool) {
    let started = Instant::now();
    while !cond() {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The `key=value` field of a log line, quotes stripped.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let prefix = format!("{key}=");
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(prefix.as_str()))
        .map(|v| v.trim_matches(|c| c == '"' || c == ','))
}

fn is_tunnel_end(l: &str) -> bool {
    l.contains("tunnel closed") || l.contains("tunnel ended abnormally")
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
        assert!(
            gate.wait_log(Duration::from_secs(5), |l| l
                .contains("cannot open SSH session"))
                .await
                .is_some(),
            "no failed reconnect logged while sshd was down:\n{}",
            gate.log_text()
        );

        let _sshd2 = restart_sshd(&sshd).await;
        let back = Instant::now();
        if let Err(e) = socks::echo_roundtrip(gate.socks_addr(), echo.addr(), b"back").await {
            panic!(
                "CONNECT after sshd came back: {e:#}\ngate log:\n{}",
                gate.log_text()
            );
        }
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

// === 3. growth under load ===

/// 1000 tunnels open at once with `max_channels_per_session = 300`: the pool grows to
/// four sessions, none carries more than 300, and every tunnel is byte-exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_tunnels_spread_over_four_sessions() {
    const TUNNELS: usize = 1000;
    const CAP: usize = 300;
    const PAYLOAD: usize = 4 * KIB;
    let _heavy = heavy_lock().await;
    within(TEST_LIMIT, "test", async {
        let sshd = Sshd::start().await;
        let echo = targets::echo().await;
        let cfg = GateConfig::new(&sshd)
            .upstream_line(r#"sessions = { min = 1, max = 4 }"#)
            .upstream_line(&format!("max_channels_per_session = {CAP}"))
            .connect_timeout("20s");
        let gate = Gate::start(&cfg).await;
        let proxy = gate.socks_addr();
        let started = Instant::now();
        let mut opening = JoinSet::new();
        for i in 0..TUNNELS {
            let dest = echo.addr();
            opening.spawn(async move { (i, socks::connect(proxy, dest).await) });
        }
        let mut tunnels = Vec::with_capacity(TUNNELS);
        let mut failures = Vec::new();
        while let Some(r) = opening.join_next().await {
            match r.expect("connect task") {
                (i, Ok(s)) => tunnels.push((i, s)),
                (i, Err(e)) => failures.push(format!("tunnel {i}: {e:#}")),
            }
        }
        let opened_in = started.elapsed();
        assert!(
            failures.is_empty(),
            "{} of {TUNNELS} CONNECTs failed, first: {:?}\ngate log:\n{}",
            failures.len(),
            failures.first(),
            gate.log_text()
        );
        // All 1000 are open now; each does its round trip while the others stay open.
        let mut talking = JoinSet::new();
        for (i, s) in tunnels {
            talking.spawn(async move {
                let (mut r, mut w) = s.into_split();
                let mut msg = vec![0u8; PAYLOAD];
                pattern::fill((i * PAYLOAD) as u64, &mut msg);
                let mut back = vec![0u8; PAYLOAD];
                let (wr, rd) = tokio::join!(w.write_all(&msg), r.read_exact(&mut back));
                wr?;
                rd?;
                anyhow::ensure!(back == msg, "tunnel {i}: echo differs");
                anyhow::Ok((r, w))
            });
        }
        let mut held = Vec::with_capacity(TUNNELS);
        while let Some(r) = talking.join_next().await {
            match r.expect("echo task") {
                Ok(h) => held.push(h),
                Err(e) => failures.push(format!("{e:#}")),
            }
        }
        assert!(
            failures.is_empty(),
            "{} round trips failed, first: {:?}",
            failures.len(),
            failures.first()
        );
        assert_eq!(held.len(), TUNNELS);
        assert_eq!(echo.accepted(), TUNNELS as u64);
        let all_done = started.elapsed();
        drop(held);

        until(Duration::from_secs(30), "1000 tunnel end lines", || {
            gate.count_log(is_tunnel_end) >= TUNNELS
        })
        .await;
        let text = gate.log_text();
        let mut per_session: BTreeMap<String, usize> = BTreeMap::new();
        for line in text.lines().filter(|l| is_tunnel_end(l)) {
            let s = field(line, "session").unwrap_or("?").to_string();
            *per_session.entry(s).or_default() += 1;
            assert_eq!(field(line, "up"), Some("4096"), "{line}");
            assert_eq!(field(line, "down"), Some("4096"), "{line}");
        }
        eprintln!(
            "{TUNNELS} tunnels opened in {opened_in:?}, all round trips done at {all_done:?}; \
             tunnels per session: {per_session:?}; sshd logins: {}",
            sshd.logins()
        );
        assert!(
            per_session.len() >= 4,
            "tunnels went over {} sessions: {per_session:?}",
            per_session.len()
        );
        assert!(
            per_session.values().all(|n| *n <= CAP),
            "a session carried more than {CAP} tunnels at once: {per_session:?}"
        );
        assert!(sshd.logins() >= 4, "sshd logins: {}", sshd.logins());
    })
    .await;
}

// === 4. head-of-line isolation ===

/// Head-of-line, both sides of the relay's cap (issue 11). With the default
/// `[relay]` limits, tunnel A's reader takes nothing while its 24 MiB download
/// arrives, and tunnel B on the same session keeps its echo round trips (no gap over
/// 1 s); then A reads everything, byte-exact. With tiny caps (64 KiB memory, 1 MiB
/// spill) A's buffer fills and its session parks: a new tunnel goes to a second
/// session at once, and when A resumes it still gets every byte in order. No tunnel
/// is ever cut for its slow reader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_reader_does_not_freeze_other_tunnels() {
    const LEN: u64 = 24 * MIB;
    const RUN: Duration = Duration::from_secs(4);
    let _heavy = heavy_lock().await;
    within(TEST_LIMIT, "test", async {
        let sshd = Sshd::start().await;
        let source = targets::source(LEN).await;
        let echo = targets::echo().await;

        // 1. Defaults: no freeze at all.
        let cfg = GateConfig::new(&sshd).upstream_line(r#"sessions = { min = 1, max = 1 }"#);
        let gate = Gate::start(&cfg).await;
        let mut b = gate.connect(echo.addr()).await;
        let mut a = gate.connect(source.addr()).await;
        let payload = [0x5au8; 1024];
        let mut back = [0u8; 1024];
        let started = Instant::now();
        let (mut trips, mut longest, mut last) = (0u64, Duration::ZERO, Instant::now());
        while started.elapsed() < RUN {
            let r = tokio::time::timeout(Duration::from_secs(10), async {
                b.write_all(&payload).await?;
                b.read_exact(&mut back).await?;
                std::io::Result::Ok(())
            })
            .await;
            match r {
                Ok(Ok(())) => {}
                Ok(Err(e)) => panic!("tunnel B failed after {trips} round trips: {e}"),
                Err(_) => panic!("tunnel B froze for 10 s after {trips} round trips"),
            }
            assert_eq!(back, payload, "tunnel B: echo differs");
            trips += 1;
            longest = longest.max(last.elapsed());
            last = Instant::now();
        }
        let check = tokio::time::timeout(Duration::from_secs(30), pattern::read_check(&mut a))
            .await
            .expect("A's download did not finish within 30 s after its pause")
            .expect("A: read after the pause");
        eprintln!(
            "head-of-line, defaults: B did {trips} round trips in {RUN:?} while A read nothing, \
             longest gap {longest:?}; A then got {} bytes",
            check.received()
        );
        check.assert_exact(LEN, "tunnel A after its pause");
        assert!(trips > 200, "tunnel B did only {trips} round trips in {RUN:?}");
        assert!(
            longest < Duration::from_secs(1),
            "tunnel B paused for {longest:?} while A did not read"
        );
        drop(gate);

        // 2. Tiny caps: A's session parks, new tunnels go elsewhere, nothing is lost.
        let spill = tempfile::tempdir().expect("spill dir");
        let mut cfg = GateConfig::new(&sshd).upstream_line(r#"sessions = { min = 1, max = 2 }"#);
        cfg.extra_toml.push(format!(
            "[relay]\nmemory_per_tunnel = \"64KiB\"\nspill_per_tunnel = \"1MiB\"\nspill_dir = \"{}\"",
            spill.path().display()
        ));
        let mut gate = Gate::start(&cfg).await;
        let mut a = gate.connect(source.addr()).await;
        let parked = gate
            .wait_log(Duration::from_secs(20), |l| {
                l.contains("relay: a tunnel's buffer is full") && l.contains("spill_per_tunnel")
            })
            .await;
        assert!(parked.is_some(), "A's session never parked:\n{}", gate.log_text());
        // The first park comes while A's socket buffers still take data (the session
        // resumes between packets); a moment later they are full and it stays parked.
        // Tunnels already on a parked session wait with it: that is the fallback.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let opened = Instant::now();
        let mut c = gate.connect(echo.addr()).await;
        c.write_all(b"ping").await.expect("C: write");
        let mut four = [0u8; 4];
        tokio::time::timeout(Duration::from_secs(10), c.read_exact(&mut four))
            .await
            .expect("C froze: the new tunnel went to the parked session")
            .expect("C: read");
        assert_eq!(&four, b"ping");
        let took = opened.elapsed();
        let check = tokio::time::timeout(Duration::from_secs(60), pattern::read_check(&mut a))
            .await
            .expect("A's download did not finish within 60 s after its pause")
            .expect("A: read after the pause");
        eprintln!(
            "head-of-line, 64 KiB + 1 MiB caps: a new tunnel while A's session was parked \
             echoed in {took:?}; A then got {} bytes",
            check.received()
        );
        check.assert_exact(LEN, "tunnel A after its session parked");
        assert!(
            gate.count_log(|l| l.contains("relay: session resumed")) >= 1,
            "the parked session never resumed:\n{}",
            gate.log_text()
        );
        assert_eq!(
            gate.count_log(|l| l.contains("tunnel ended abnormally")),
            0,
            "a tunnel was cut:\n{}",
            gate.log_text()
        );
        drop(c);
    })
    .await;
}

// === 5. idle extra sessions ===

/// `max_channels_per_session = 2` and 6 tunnels at once: two extra sessions are
/// opened; once the tunnels are gone they are closed after `idle_timeout`, and the
/// pool still serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_extra_sessions_are_closed() {
    within(TEST_LIMIT, "test", async {
        let sshd = Sshd::start().await;
        let echo = targets::echo().await;
        let cfg = GateConfig::new(&sshd)
            .upstream_line(r#"sessions = { min = 1, max = 3, idle_timeout = "1s" }"#)
            .upstream_line("max_channels_per_session = 2");
        let gate = Gate::start(&cfg).await;
        let proxy = gate.socks_addr();
        let mut opening = JoinSet::new();
        for i in 0..6u32 {
            let dest = echo.addr();
            opening.spawn(async move {
                let mut s = socks::connect(proxy, dest).await?;
                let msg = format!("tunnel {i}").into_bytes();
                s.write_all(&msg).await?;
                let mut back = vec![0u8; msg.len()];
                s.read_exact(&mut back).await?;
                anyhow::ensure!(back == msg, "tunnel {i}: echo differs");
                anyhow::Ok(s)
            });
        }
        let mut held = Vec::new();
        while let Some(r) = opening.join_next().await {
            match r.expect("tunnel task") {
                Ok(s) => held.push(s),
                Err(e) => panic!("{e:#}\ngate log:\n{}", gate.log_text()),
            }
        }
        assert_eq!(held.len(), 6);
        // The log line may trail the session's first use by a moment.
        until(Duration::from_secs(5), "two `extra session ready`", || {
            gate.count_log(|l| l.contains("extra session ready")) >= 2
        })
        .await;
        until(Duration::from_secs(5), "three sshd logins", || {
            sshd.logins() >= 3
        })
        .await;
        assert_eq!(
            gate.count_log(|l| l.contains("extra session ready")),
            2,
            "{}",
            gate.log_text()
        );
        assert_eq!(sshd.logins(), 3, "sshd log:\n{}", sshd.log());
        let closed_at = Instant::now();
        drop(held);
        until(
            Duration::from_secs(10),
            "two `idle extra session closed`",
            || gate.count_log(|l| l.contains("idle extra session closed")) >= 2,
        )
        .await;
        let took = closed_at.elapsed();
        eprintln!("both idle extra sessions closed {took:?} after the tunnels");
        assert!(
            took >= Duration::from_millis(900),
            "extra sessions closed after {took:?}, before idle_timeout (1 s)"
        );
        assert_eq!(
            gate.count_log(|l| l.contains("idle extra session closed")),
            2
        );
        assert_eq!(gate.count_log(|l| l.contains("session lost")), 0);
        gate.echo_roundtrip(echo.addr(), b"still serving").await;
        assert_eq!(
            sshd.logins(),
            3,
            "the CONNECT after the idle closes needed a new session"
        );
    })
    .await;
}

// === 6. graceful shutdown ===

/// SIGTERM while a tunnel is mid-transfer: the listener stops accepting at once (a new
/// connection is refused), the live tunnel finishes byte-exact, and the daemon exits
/// 0 as soon as it has, well within the grace period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_and_exits_zero() {
    const PHASE1: u64 = MIB;
    const TOTAL: u64 = 8 * MIB;
    within(TEST_LIMIT, "test", async {
        let sshd = Sshd::start().await;
        let echo = targets::echo().await;
        let mut gate = Gate::start(&GateConfig::new(&sshd)).await;
        let listen = gate.socks_addr();
        let s = gate.connect(echo.addr()).await;
        let (mut r, mut w) = s.into_split();
        let received = Arc::new(AtomicU64::new(0));
        let got = received.clone();
        let reader = tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * KIB];
            let mut checker = Checker::default();
            loop {
                let n = r.read(&mut buf).await?;
                if n == 0 {
                    return std::io::Result::Ok(checker);
                }
                checker.feed(&buf[..n]);
                got.store(checker.received(), Ordering::Relaxed);
            }
        });
        let mut chunk = vec![0u8; 64 * KIB];
        let mut sent = 0u64;
        while sent < PHASE1 {
            pattern::fill(sent, &mut chunk);
            w.write_all(&chunk).await.expect("write before SIGTERM");
            sent += chunk.len() as u64;
        }
        until(
            Duration::from_secs(10),
            "1 MiB echoed before SIGTERM",
            || received.load(Ordering::Relaxed) >= PHASE1,
        )
        .await;

        let status = Command::new("kill")
            .arg("-TERM")
            .arg(gate.pid().to_string())
            .status()
            .expect("run kill -TERM");
        assert!(status.success(), "kill -TERM {} failed", gate.pid());
        let signalled = Instant::now();
        assert!(
            gate.wait_log(Duration::from_secs(5), |l| l.contains("signal received"))
                .await
                .is_some(),
            "no `signal received` after SIGTERM:\n{}",
            gate.log_text()
        );
        // The listener closes: new clients are refused (not accepted and left hanging).
        let started = Instant::now();
        loop {
            match TcpStream::connect(listen).await {
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => break,
                other => assert!(
                    started.elapsed() < Duration::from_secs(3),
                    "the SOCKS port still accepts 3 s after SIGTERM: {other:?}"
                ),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            gate.exited().is_none(),
            "the gate exited with a tunnel open"
        );

        // The live tunnel keeps working: the rest of the transfer, then EOF.
        while sent < TOTAL {
            pattern::fill(sent, &mut chunk);
            w.write_all(&chunk).await.expect("write after SIGTERM");
            sent += chunk.len() as u64;
        }
        w.shutdown().await.expect("half-close after SIGTERM");
        let checker = tokio::time::timeout(Duration::from_secs(20), reader)
            .await
            .expect("echo after SIGTERM did not finish within 20 s")
            .expect("reader task")
            .expect("read echo after SIGTERM");
        checker.assert_exact(TOTAL, "echo across SIGTERM");
        let tunnel_done = Instant::now();
        drop(w);

        let exit = loop {
            if let Some(st) = gate.exited() {
                break st;
            }
            assert!(
                signalled.elapsed() < Duration::from_secs(15),
                "the gate still runs 15 s after SIGTERM (grace 10 s):\n{}",
                gate.log_text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let after_tunnel = tunnel_done.elapsed();
        eprintln!(
            "SIGTERM: tunnel finished {:?} after the signal, gate exited {after_tunnel:?} later \
             ({exit})",
            tunnel_done - signalled
        );
        assert_eq!(exit.code(), Some(0), "log:\n{}", gate.log_text());
        assert!(
            after_tunnel < Duration::from_secs(3),
            "the gate waited {after_tunnel:?} after its last tunnel closed"
        );
        let log = gate.log_text();
        assert!(log.contains("stopped"), "no `stopped` in the log:\n{log}");
        assert!(
            log.lines()
                .any(|l| l.contains("tunnel closed") && l.contains("end=Closed")),
            "the tunnel did not end normally:\n{log}"
        );
        assert!(!log.contains("grace period over"), "{log}");
    })
    .await;
}

// === 7. no session ===

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

// === 8. backoff holds while clients wait ===

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
        assert!(
            gate.wait_log(Duration::from_secs(10), |l| l
                .contains("cannot open SSH session"))
                .await
                .is_some(),
            "no failed session logged:\n{}",
            gate.log_text()
        );
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
