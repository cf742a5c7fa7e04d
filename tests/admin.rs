//! The admin endpoint: `/metrics` after a known workload shows exactly what
//! happened; `/healthz`; `/readyz` for a ready and an unreachable upstream.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::admin::{admin_addr, get, known_workload, sample, ADMIN_TOML};
use crate::support::socks::{self, Dest};
use crate::support::{refused_addr, targets, within, Gate, GateConfig, KeyKind, Sshd};

const TEST_LIMIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_a_known_workload() {
    within(TEST_LIMIT, "test", async {
        let sshd = Sshd::start().await;
        let mut cfg = GateConfig::new(&sshd);
        cfg.extra_toml.push(ADMIN_TOML.into());
        let mut gate = Gate::start(&cfg).await;
        let admin = admin_addr(&mut gate).await;

        known_workload(&gate, admin, 3, 2).await;
        let (status, text) = get(admin, "/metrics").await;
        assert_eq!(status, 200, "{text}");
        let want = [
            (
                "jumpgate_connections_total{listener=\"socks\",result=\"ok\"}",
                3.0,
            ),
            (
                "jumpgate_connections_total{listener=\"socks\",result=\"failed\"}",
                2.0,
            ),
            (
                "jumpgate_connections_total{listener=\"socks\",result=\"rejected\"}",
                1.0,
            ),
            ("jumpgate_connections_active{listener=\"socks\"}", 0.0),
            (
                "jumpgate_channel_open_failures_total{reason=\"connect_failed\",upstream=\"jump\"}",
                2.0,
            ),
            (
                "jumpgate_session_connects_total{result=\"ok\",upstream=\"jump\"}",
                1.0,
            ),
            ("jumpgate_sessions{state=\"ready\",upstream=\"jump\"}", 1.0),
            ("jumpgate_channels_active{upstream=\"jump\"}", 0.0),
            (
                "jumpgate_connect_duration_seconds_count{upstream=\"jump\"}",
                5.0,
            ),
            (
                "jumpgate_transferred_bytes_total{direction=\"up\",upstream=\"jump\"}",
                30.0,
            ),
            (
                "jumpgate_transferred_bytes_total{direction=\"down\",upstream=\"jump\"}",
                30.0,
            ),
        ];
        for (series, value) in want {
            assert_eq!(sample(&text, series), Some(value), "{series} in:\n{text}");
        }
        assert!(text.contains("jumpgate_build_info{version=\""), "{text}");
        assert!(text.contains("process_resident_memory_bytes"), "{text}");

        assert_eq!(get(admin, "/healthz").await.0, 200);
        let (status, body) = get(admin, "/readyz").await;
        assert_eq!((status, body.as_str()), (200, "ready\n"));
        assert_eq!(get(admin, "/nope").await.0, 404);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_names_an_upstream_without_a_session() {
    within(TEST_LIMIT, "test", async {
        let sshd = Sshd::start().await;
        let mut cfg = GateConfig::new(&sshd);
        cfg.port = refused_addr().port();
        cfg.extra_toml.push(ADMIN_TOML.into());
        let mut gate = Gate::start_unready(&cfg).await;
        let admin = admin_addr(&mut gate).await;
        let (status, body) = get(admin, "/readyz").await;
        assert_eq!(status, 503, "{body}");
        assert!(body.contains("jump"), "{body}");
        assert_eq!(get(admin, "/healthz").await.0, 200);
        let (_, metrics) = get(admin, "/metrics").await;
        let failed = sample(
            &metrics,
            "jumpgate_session_connects_total{result=\"failed\",upstream=\"jump\"}",
        );
        assert!(failed.is_some_and(|n| n >= 1.0), "{metrics}");
        // Every session series exists at 0 before any session, so that
        // JumpgateUpstreamDown sees an upstream that never came up.
        for state in ["ready", "connecting", "draining"] {
            let series = format!("jumpgate_sessions{{state=\"{state}\",upstream=\"jump\"}}");
            let v = sample(&metrics, &series);
            assert!(v.is_some(), "{series} missing:\n{metrics}");
            if state != "connecting" {
                assert_eq!(v, Some(0.0), "{series}:\n{metrics}");
            }
        }
    })
    .await;
}

/// Every series with a known label set exists at 0 from start-up, before any
/// event: a counter that appears only at its first event, already at 1, is a
/// rise `increase()` never sees, so an alert such as JumpgateKeepaliveTimeouts
/// could never fire on the first keepalive timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_known_series_is_at_zero_from_start_up() {
    within(TEST_LIMIT, "test", async {
        let sshd = Sshd::start().await;
        let mut cfg = GateConfig::new(&sshd);
        cfg.extra_toml.push(ADMIN_TOML.into());
        let mut gate = Gate::start(&cfg).await;
        let admin = admin_addr(&mut gate).await;
        let (_, metrics) = get(admin, "/metrics").await;
        let mut zero = vec![
            "jumpgate_keepalive_timeouts_total{upstream=\"jump\"}".to_owned(),
            "jumpgate_session_connects_total{result=\"failed\",upstream=\"jump\"}".to_owned(),
            "jumpgate_channels_active{upstream=\"jump\"}".to_owned(),
            "jumpgate_connections_active{listener=\"socks\"}".to_owned(),
            "jumpgate_connect_duration_seconds_count{upstream=\"jump\"}".to_owned(),
        ];
        for reason in [
            "prohibited",
            "connect_failed",
            "unknown_channel_type",
            "resource_shortage",
            "timeout",
            "no_session",
            "session_gone",
            "pool_full",
            "ssh_error",
        ] {
            zero.push(format!(
                "jumpgate_channel_open_failures_total{{reason=\"{reason}\",upstream=\"jump\"}}"
            ));
        }
        for result in ["ok", "rejected", "failed", "rate_limited"] {
            zero.push(format!(
                "jumpgate_connections_total{{listener=\"socks\",result=\"{result}\"}}"
            ));
        }
        for limit in ["connections_per_second_per_client", "max_connections"] {
            zero.push(format!(
                "jumpgate_rate_limited_total{{limit=\"{limit}\",listener=\"socks\"}}"
            ));
        }
        for direction in ["up", "down"] {
            zero.push(format!(
                "jumpgate_transferred_bytes_total{{direction=\"{direction}\",upstream=\"jump\"}}"
            ));
        }
        let missing: Vec<&String> = zero
            .iter()
            .filter(|s| sample(&metrics, s) != Some(0.0))
            .collect();
        assert!(missing.is_empty(), "not at 0: {missing:?}\n{metrics}");
        // The session that made the gate ready is counted, not pre-created at 0.
        let ok = "jumpgate_session_connects_total{result=\"ok\",upstream=\"jump\"}";
        assert!(sample(&metrics, ok).is_some_and(|n| n >= 1.0), "{metrics}");
    })
    .await;
}

/// Polls `/metrics` until `series` has `value` (counters settle when a
/// refused client's handshake task ends), then returns the text.
async fn metrics_when(admin: SocketAddr, series: &str, value: f64) -> String {
    let mut text = String::new();
    for _ in 0..50 {
        text = get(admin, "/metrics").await.1;
        if sample(&text, series) == Some(value) {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{series} never reached {value}:\n{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connections_refuses_with_not_allowed_and_counts_it() {
    within(TEST_LIMIT, "test", async {
        let sshd = Sshd::start().await;
        let echo = targets::echo().await;
        let mut cfg = GateConfig::new(&sshd);
        cfg.extra_toml
            .push("[admin]\nbind = \"127.0.0.1:0\"\n[limits]\nmax_connections = 2".into());
        let mut gate = Gate::start(&cfg).await;
        let admin = admin_addr(&mut gate).await;

        let first = gate.connect(echo.addr()).await;
        let _second = gate.connect(echo.addr()).await;
        let code = gate
            .reply_code(socks::CONNECT, &Dest::from(echo.addr()))
            .await;
        assert_eq!(
            code,
            socks::NOT_ALLOWED,
            "third connection over max_connections = 2"
        );
        // A slot freed is a slot usable again.
        drop(first);
        let mut ok = false;
        for _ in 0..50 {
            if gate
                .reply_code(socks::CONNECT, &Dest::from(echo.addr()))
                .await
                == socks::SUCCEEDED
            {
                ok = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(ok, "no connection admitted after one of two closed");

        let limited = "jumpgate_connections_total{listener=\"socks\",result=\"rate_limited\"}";
        let text = get(admin, "/metrics").await.1;
        let refused = sample(&text, limited).unwrap_or(0.0);
        assert!(refused >= 1.0, "{text}");
        let series = "jumpgate_rate_limited_total{limit=\"max_connections\",listener=\"socks\"}";
        assert_eq!(sample(&text, series), Some(refused), "{text}");
        let (_, status) = get(admin, "/status").await;
        let status: jumpgate::status::Status = serde_json::from_str(&status).expect("status JSON");
        assert_eq!(status.limits.max_connections, Some(2));
        assert_eq!(status.limits.rate_limited as f64, refused);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_rate_limit_admits_the_burst_then_refuses() {
    within(TEST_LIMIT, "test", async {
        let sshd = Sshd::start().await;
        let echo = targets::echo().await;
        let mut cfg = GateConfig::new(&sshd);
        cfg.extra_toml.push(
            "[admin]\nbind = \"127.0.0.1:0\"\n[limits]\nconnections_per_second_per_client = 5"
                .into(),
        );
        let mut gate = Gate::start(&cfg).await;
        let admin = admin_addr(&mut gate).await;

        const TRIES: usize = 20;
        let started = std::time::Instant::now();
        let mut codes = Vec::new();
        for _ in 0..TRIES {
            codes.push(gate.reply_code(socks::CONNECT, &Dest::from(echo.addr())).await);
        }
        let secs = started.elapsed().as_secs_f64();
        let ok = codes.iter().filter(|c| **c == socks::SUCCEEDED).count();
        let limited = codes.iter().filter(|c| **c == socks::NOT_ALLOWED).count();
        assert_eq!(ok + limited, TRIES, "only 0x00 and 0x02 expected: {codes:?}");
        // A burst of 5, then 5 per second replenished while the loop ran.
        let most = 5 + (secs * 5.0).ceil() as usize + 1;
        assert!((5..=most).contains(&ok), "{ok} admitted in {secs:.2} s: {codes:?}");
        eprintln!("{TRIES} connects in {secs:.2} s: {ok} admitted, {limited} refused");

        let series = "jumpgate_rate_limited_total{limit=\"connections_per_second_per_client\",listener=\"socks\"}";
        let text = metrics_when(admin, series, limited as f64).await;
        assert_eq!(
            sample(&text, "jumpgate_connections_total{listener=\"socks\",result=\"rate_limited\"}"),
            Some(limited as f64),
            "{text}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_are_counted_while_the_tunnel_is_open() {
    within(TEST_LIMIT, "test", async {
        let sshd = Sshd::start().await;
        let echo = targets::echo().await;
        let mut cfg = GateConfig::new(&sshd);
        cfg.extra_toml
            .push("[admin]\nbind = \"127.0.0.1:0\"".into());
        let mut gate = Gate::start(&cfg).await;
        let admin = admin_addr(&mut gate).await;

        let mut tunnel = gate.connect(echo.addr()).await;
        let payload = vec![7u8; 100_000];
        tunnel.write_all(&payload).await.expect("send");
        let mut back = vec![0u8; payload.len()];
        tunnel.read_exact(&mut back).await.expect("echo back");
        // The tunnel is still open: the counters already have its bytes.
        let text = get(admin, "/metrics").await.1;
        for dir in ["up", "down"] {
            let series = format!(
                "jumpgate_transferred_bytes_total{{direction=\"{dir}\",upstream=\"jump\"}}"
            );
            assert_eq!(sample(&text, &series), Some(100_000.0), "{series}:\n{text}");
        }
        let (_, status) = get(admin, "/status").await;
        let status: jumpgate::status::Status = serde_json::from_str(&status).expect("status JSON");
        let session = &status.upstreams[0].sessions[0];
        assert_eq!(
            (session.channels, session.bytes_up, session.bytes_down),
            (1, 100_000, 100_000)
        );
        drop(tunnel);
    })
    .await;
}

/// A refused key is not a network failure: retrying it every backoff step
/// is a failed login to the bastion each time (fail2ban bans the host). The
/// first refusal backs off to `reconnect.max` at once, is logged once at
/// ERROR with the count, and `/status` and `/readyz` say the key is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_key_backs_off_to_the_maximum_and_says_so() {
    within(TEST_LIMIT, "test", async {
        let sshd = Sshd::start().await;
        let stranger = sshd.new_unlisted_key(KeyKind::Ed25519);
        let mut cfg = GateConfig::new(&sshd)
            .identity(&stranger)
            .upstream_line("reconnect = { initial = \"100ms\", max = \"60s\" }");
        cfg.extra_toml.push(ADMIN_TOML.into());
        let before = sshd.connections();
        let mut gate = Gate::start_unready(&cfg).await;
        let admin = admin_addr(&mut gate).await;
        // Long enough for several network-style retries (100 ms doubling).
        tokio::time::sleep(Duration::from_secs(3)).await;
        let tries = sshd.connections() - before;
        assert_eq!(tries, 1, "logins tried in 3 s:\n{}", sshd.log());
        let refused = gate.count_log(|l| l.contains("ERROR") && l.contains("key refused"));
        assert_eq!(refused, 1, "{}", gate.log_text());
        let (status, body) = get(admin, "/readyz").await;
        assert_eq!(status, 503, "{body}");
        assert!(body.contains("key refused"), "{body}");
        let (_, json) = get(admin, "/status").await;
        let v: serde_json::Value = serde_json::from_str(&json).expect("status json");
        let host = &v["upstreams"][0]["hosts"][0];
        assert_eq!(host["key_refused"], true, "{json}");
        assert_eq!(host["failures"], 1, "{json}");
        let retry = host["retry_in_seconds"].as_f64().unwrap_or(0.0);
        assert!(retry > 50.0, "retry_in_seconds {retry}: {json}");
    })
    .await;
}

/// `/status` "retry in" is the deadline the reconnect really sleeps to: with
/// the jump host down, every sample between two dials shows it (it used to
/// come from a jitter of its own, so it was often gone while the slot still
/// slept: failures rose while retry_in_seconds stayed null).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_retry_in_is_the_real_reconnect_deadline() {
    within(TEST_LIMIT, "test", async {
        let sshd = Sshd::start().await;
        let mut cfg =
            GateConfig::new(&sshd).upstream_line("reconnect = { initial = \"1s\", max = \"1s\" }");
        cfg.port = refused_addr().port();
        cfg.extra_toml.push(ADMIN_TOML.into());
        let mut gate = Gate::start_unready(&cfg).await;
        let admin = admin_addr(&mut gate).await;
        let (mut samples, mut nulls, mut last_failures) = (0, 0, 0);
        for _ in 0..80 {
            let (_, json) = get(admin, "/status").await;
            let v: serde_json::Value = serde_json::from_str(&json).expect("status json");
            let host = &v["upstreams"][0]["hosts"][0];
            let failures = host["failures"].as_u64().unwrap_or(0);
            if failures > 0 && host["connecting"] == 0 {
                samples += 1;
                if host["retry_in_seconds"].is_null() {
                    nulls += 1;
                }
            }
            last_failures = failures;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            last_failures >= 2,
            "the slot did not retry: {last_failures}"
        );
        assert!(samples >= 40, "too few samples between dials: {samples}");
        assert!(
            nulls * 10 <= samples,
            "retry_in_seconds null in {nulls} of {samples} samples between dials"
        );
    })
    .await;
}
