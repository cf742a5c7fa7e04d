//! The session pool under load: a thousand tunnels spread over sessions, a stalled
//! reader beside busy neighbours, idle extra sessions retired, and SIGTERM draining
//! open tunnels before exit.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use crate::support::pattern::{self, Checker};
use crate::support::socks;
use crate::support::sshd_life::until;
use crate::support::{heavy_lock, targets, within, Gate, GateConfig, Sshd};

const TEST_LIMIT: Duration = Duration::from_secs(120);

const KIB: usize = 1024;
const MIB: u64 = 1024 * 1024;

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

// === 1. growth under load ===

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

// === 2. head-of-line isolation ===

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

// === 3. idle extra sessions ===

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

// === 4. graceful shutdown ===

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
