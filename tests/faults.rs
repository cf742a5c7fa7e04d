//! Faults of the jump host itself: the real jumpgate binary against
//! `support::fault_host`, the demo's in-process russh jump host on 127.0.0.1,
//! made slow, refusing or silent through its hooks. (Faults of the network
//! between are `faults_netns`.)

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use russh::ChannelOpenFailure;
use tokio::task::JoinSet;

use crate::support::fault_host::{Behaviour, FaultHost};
use crate::support::live_echo::{echo_on, Echo};
use crate::support::socks::{self, Dest};
use crate::support::{is_session_lost, is_upstream_ready, wait_until, within, Gate};

const TEST_LIMIT: Duration = Duration::from_secs(150);

// === 3. An in-process russh jump host with faults (support::fault_host) ===

const OPEN_DELAY: Duration = Duration::from_millis(500);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_channel_opens_still_succeed_and_time_out_cleanly() {
    within(TEST_LIMIT, "test", async {
        let host = FaultHost::start(Behaviour {
            open_delay: Some(OPEN_DELAY),
            ..Behaviour::default()
        })
        .await;
        let echo = Echo::start(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await;

        // Default listener connect_timeout (10 s): the slow open succeeds.
        let gate = Gate::start(&host.gate_config()).await;
        let t = Instant::now();
        let (reply, mut s) = socks::request(gate.socks_addr(), socks::CONNECT, &echo.addr().into())
            .await
            .unwrap_or_else(|e| panic!("CONNECT: {e:#}\ngate log:\n{}", gate.log_text()));
        let took = t.elapsed();
        assert_eq!(
            reply.code,
            socks::SUCCEEDED,
            "slow open; gate log:\n{}",
            gate.log_text()
        );
        assert!(
            took >= OPEN_DELAY,
            "reply after {took:?}, before the jump host answered ({OPEN_DELAY:?}): \
             success must wait for the channel"
        );
        assert!(took < Duration::from_secs(3), "slow open took {took:?}");
        echo_on(&mut s, b"slow but fine")
            .await
            .unwrap_or_else(|e| panic!("{e:#}\ngate log:\n{}", gate.log_text()));
        drop(s);

        // Slow opens overlap: 8 at once take about one delay, not eight.
        let t = Instant::now();
        let mut set = JoinSet::new();
        for i in 0..8u8 {
            let proxy = gate.socks_addr();
            let dest = echo.addr();
            set.spawn(async move { socks::echo_roundtrip(proxy, dest, &[i; 64 * 1024]).await });
        }
        let mut failures = Vec::new();
        while let Some(r) = set.join_next().await {
            match r {
                Ok(Ok(())) => {}
                Ok(Err(e)) => failures.push(format!("{e:#}")),
                Err(e) => failures.push(format!("task: {e}")),
            }
        }
        let took = t.elapsed();
        assert!(
            failures.is_empty(),
            "concurrent slow opens failed: {failures:?}\ngate log:\n{}",
            gate.log_text()
        );
        assert!(
            took < Duration::from_secs(2),
            "8 concurrent slow opens took {took:?}: opens are serialised (8 x {OPEN_DELAY:?})"
        );
        drop(gate);

        // A listener connect_timeout shorter than the open: 0x04, on time.
        let mut gate = Gate::start(&host.gate_config().connect_timeout("300ms")).await;
        let t = Instant::now();
        let code = gate.reply_code(socks::CONNECT, &echo.addr().into()).await;
        let took = t.elapsed();
        assert_eq!(
            code,
            socks::HOST_UNREACHABLE,
            "open slower than connect_timeout; gate log:\n{}",
            gate.log_text()
        );
        assert!(
            took >= Duration::from_millis(250) && took <= Duration::from_secs(1),
            "0x04 after {took:?}, want about the 300 ms connect_timeout"
        );
        // The line is logged before the reply, but reaches us through a pipe.
        let line = gate
            .wait_log(Duration::from_secs(5), |l| {
                l.contains("connect failed") && l.contains("reply=4")
            })
            .await;
        assert!(
            line.is_some(),
            "no `connect failed ... reply=4` line; gate log:\n{}",
            gate.log_text()
        );
        // The late confirmation (at 500 ms) must not upset the session.
        let lost = gate
            .wait_log(Duration::from_millis(1500), is_session_lost)
            .await;
        assert!(
            lost.is_none() && gate.exited().is_none(),
            "the session or the gate died after a late channel confirmation; log:\n{}",
            gate.log_text()
        );
    })
    .await;
}

/// A channel that the jump host confirms after the listener gave up (0x04) is nobody's:
/// the gate must close it, or every timed-out CONNECT leaves a channel on the session
/// and a TCP connection to the target open for the life of the session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_confirmed_after_the_open_timed_out_is_closed() {
    within(TEST_LIMIT, "test", async {
        let host = FaultHost::start(Behaviour {
            open_delay: Some(OPEN_DELAY),
            ..Behaviour::default()
        })
        .await;
        let echo = Echo::start(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await;
        // Control: a tunnel that completes and closes normally ends the target
        // connection, so `live` does measure the channel's life.
        let patient = Gate::start(&host.gate_config()).await;
        let mut s = patient.connect(echo.addr()).await;
        echo_on(&mut s, b"control")
            .await
            .expect("control round trip");
        drop(s);
        assert!(
            wait_until(Duration::from_secs(5), || echo.accepted() == 1
                && echo.live() == 0)
            .await,
            "control: a closed tunnel left the target connection open (accepted {}, live {}); \
             gate log:\n{}",
            echo.accepted(),
            echo.live(),
            patient.log_text()
        );
        drop(patient);

        let gate = Gate::start(&host.gate_config().connect_timeout("300ms")).await;
        let code = gate.reply_code(socks::CONNECT, &echo.addr().into()).await;
        assert_eq!(code, socks::HOST_UNREACHABLE, "{}", gate.log_text());
        // The jump host connects to the target after its delay, then confirms.
        assert!(
            wait_until(Duration::from_secs(5), || echo.accepted() == 2).await,
            "the jump host never connected to the target"
        );
        // Nobody uses that channel: the gate should close it (EOF/CLOSE), and the jump
        // host then closes the target connection.
        let closed = wait_until(Duration::from_secs(5), || echo.live() == 0).await;
        assert!(
            closed,
            "5 s after the late confirmation the orphaned channel is still open \
             (target connection alive): a leak per timed-out CONNECT; gate log:\n{}",
            gate.log_text()
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_opens_map_to_reply_codes() {
    within(TEST_LIMIT, "test", async {
        let echo = Echo::start(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await;
        let cases = [
            (
                "administratively prohibited",
                ChannelOpenFailure::AdministrativelyProhibited,
                socks::NOT_ALLOWED,
            ),
            (
                "resource shortage",
                ChannelOpenFailure::ResourceShortage,
                socks::GENERAL_FAILURE,
            ),
        ];
        for (what, reason, want) in cases {
            let host = FaultHost::start(Behaviour {
                refuse_all: Some(reason),
                ..Behaviour::default()
            })
            .await;
            let mut gate = Gate::start(&host.gate_config()).await;
            let dests = [
                Dest::from(echo.addr()),
                Dest::Domain("refused.jumpgate.test".into(), 80),
                Dest::from(echo.addr()),
            ];
            for dest in &dests {
                let code = gate.reply_code(socks::CONNECT, dest).await;
                assert_eq!(
                    code,
                    want,
                    "{what}: CONNECT {dest}: reply {code:#04x}, want {want:#04x}; gate log:\n{}",
                    gate.log_text()
                );
            }
            let want_log = format!("reply={want}");
            let line = gate
                .wait_log(Duration::from_secs(5), |l| {
                    l.contains("connect failed") && l.contains(&want_log)
                })
                .await;
            assert!(
                line.is_some(),
                "{what}: no `connect failed ... {want_log}` line; gate log:\n{}",
                gate.log_text()
            );
            // Refusals are per channel: the session stays.
            assert_eq!(
                gate.count_log(is_session_lost),
                0,
                "{what}: a refusal cost the session; gate log:\n{}",
                gate.log_text()
            );
            assert!(gate.exited().is_none(), "{what}: gate exited");
            assert_eq!(echo.accepted(), 0, "{what}: the target was reached");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_server_times_out_with_a_clear_error() {
    within(TEST_LIMIT, "test", async {
        let host = FaultHost::start(Behaviour {
            silent: true,
            ..Behaviour::default()
        })
        .await;
        let echo = Echo::start(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await;
        let cfg = host
            .gate_config()
            .upstream_line("connect_timeout = \"1s\"")
            .connect_timeout("2s");
        let spawned = Instant::now();
        let mut gate = Gate::start_unready(&cfg).await;
        let addr = format!("127.0.0.1:{}", host.port());
        let err = gate
            .wait_log(Duration::from_secs(10), |l| {
                l.contains("cannot open SSH session") && l.contains("did not finish within")
            })
            .await;
        let took = spawned.elapsed();
        let err = err.unwrap_or_else(|| {
            panic!(
                "no `cannot open SSH session ... did not finish within` error within 10 s; \
                 gate log:\n{}",
                gate.log_text()
            )
        });
        assert!(
            err.contains("ERROR") && err.contains(&addr),
            "the error should be at ERROR level and name {addr}: {err}"
        );
        // connect_timeout = 1 s from the first dial: no sooner, and not much later.
        assert!(
            took >= Duration::from_millis(950) && took <= Duration::from_millis(2500),
            "the connect timeout error came {took:?} after start, want about 1 s"
        );

        // A CONNECT meanwhile waits the listener's connect_timeout (2 s), then 0x04.
        let t = Instant::now();
        let code = gate.reply_code(socks::CONNECT, &echo.addr().into()).await;
        let waited = t.elapsed();
        assert_eq!(
            code,
            socks::HOST_UNREACHABLE,
            "CONNECT with no session; gate log:\n{}",
            gate.log_text()
        );
        assert!(
            waited >= Duration::from_millis(1900) && waited <= Duration::from_secs(3),
            "0x04 after {waited:?}, want the listener connect_timeout (2 s)"
        );
        assert_eq!(
            gate.count_log(is_upstream_ready),
            0,
            "a server that never sent a banner made the upstream ready; gate log:\n{}",
            gate.log_text()
        );
        assert_eq!(echo.accepted(), 0);
        assert!(gate.exited().is_none(), "gate exited:\n{}", gate.log_text());
    })
    .await;
}
