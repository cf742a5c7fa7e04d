//! Failures a user must be able to act on: SOCKS reply codes (not silent closes), host
//! key and key file errors that name the problem, config errors with file, line and
//! key, exit codes, and a daemon that keeps serving through handshake timeouts and
//! garbage on its port.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::gate::{run_expect_exit, spawn_expect_exit, Exit};
use crate::support::socks::{self, Dest};
use crate::support::{curl, refused_addr, targets, within, Gate, GateConfig, Sshd, SshdOptions};

const TEST_LIMIT: Duration = Duration::from_secs(120);

/// Exit code for configuration errors (EX_CONFIG).
const EX_CONFIG: i32 = 78;
/// Exit code for usage errors (clap).
const EX_USAGE: i32 = 2;

// === SOCKS reply codes ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_port_replies_connection_refused() {
    within(TEST_LIMIT, "test", async {
        let sshd = Sshd::start().await;
        let echo = targets::echo().await;
        let gate = Gate::start(&GateConfig::new(&sshd)).await;
        let code = gate
            .reply_code(socks::CONNECT, &refused_addr().into())
            .await;
        assert_eq!(
            code,
            socks::CONNECTION_REFUSED,
            "gate log:\n{}",
            gate.log_text()
        );
        // A refused channel does not hurt the session.
        gate.echo_roundtrip(echo.addr(), b"still fine").await;
    })
    .await;
}

/// The name goes to the jump host (which resolves from /etc/hosts only, see
/// `support::process`), and fails there: host unreachable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unresolvable_name_replies_host_unreachable() {
    within(TEST_LIMIT, "test", async {
        let sshd = Sshd::start().await;
        let echo = targets::echo().await;
        let gate = Gate::start(&GateConfig::new(&sshd)).await;
        let dest = Dest::Domain("no-such-host.invalid".into(), 80);
        let code = gate.reply_code(socks::CONNECT, &dest).await;
        assert_eq!(
            code,
            socks::HOST_UNREACHABLE,
            "gate log:\n{}",
            gate.log_text()
        );
        assert!(
            sshd.log().contains("no-such-host.invalid"),
            "the name was not asked of the jump host; sshd log:\n{}",
            sshd.log()
        );
        gate.echo_roundtrip(echo.addr(), b"still fine").await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bind_and_udp_associate_reply_command_not_supported() {
    within(TEST_LIMIT, "test", async {
        let sshd = Sshd::start().await;
        let echo = targets::echo().await;
        let gate = Gate::start(&GateConfig::new(&sshd)).await;
        for (name, cmd) in [
            ("BIND", socks::BIND),
            ("UDP ASSOCIATE", socks::UDP_ASSOCIATE),
        ] {
            let code = gate.reply_code(cmd, &echo.addr().into()).await;
            assert_eq!(
                code,
                socks::COMMAND_NOT_SUPPORTED,
                "{name}; gate log:\n{}",
                gate.log_text()
            );
        }
        gate.echo_roundtrip(echo.addr(), b"still fine").await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_address_type_replies_address_type_not_supported() {
    within(TEST_LIMIT, "test", async {
        let sshd = Sshd::start().await;
        let gate = Gate::start(&GateConfig::new(&sshd)).await;
        // ATYP 0x02 does not exist in RFC 1928.
        let request = [0x05, socks::CONNECT, 0x00, 0x02, 127, 0, 0, 1, 0, 80];
        match socks::request_raw(gate.socks_addr(), &request).await {
            Ok((reply, _)) => assert_eq!(reply.code, socks::ADDRESS_TYPE_NOT_SUPPORTED),
            Err(e) => panic!("ATYP 0x02: {e:#}\ngate log:\n{}", gate.log_text()),
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permitopen_restricted_destination_replies_not_allowed() {
    within(TEST_LIMIT, "test", async {
        let sshd = Sshd::start_with(SshdOptions {
            permit_open: Some("127.0.0.1:1".into()),
            ..SshdOptions::default()
        })
        .await;
        let echo = targets::echo().await;
        let gate = Gate::start(&GateConfig::new(&sshd)).await;
        let code = gate.reply_code(socks::CONNECT, &echo.addr().into()).await;
        assert_eq!(
            code,
            socks::NOT_ALLOWED,
            "gate log:\n{}\nsshd log:\n{}",
            gate.log_text(),
            sshd.log()
        );
        assert_eq!(echo.accepted(), 0, "the jump host connected anyway");
    })
    .await;
}

/// What a user sees: curl names the SOCKS reply instead of "connection to proxy
/// closed" (what it says for `ssh -D`, which closes without replying).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_reports_the_socks_reply_for_a_refused_port() {
    within(TEST_LIMIT, "test", async {
        let sshd = Sshd::start().await;
        let gate = Gate::start(&GateConfig::new(&sshd)).await;
        let url = format!("http://{}/", refused_addr());
        let got = curl(gate.dir(), "--socks5-hostname", gate.socks_addr(), &url).await;
        // curl 7.88: "curl: (97) Can't complete SOCKS5 connection to 127.0.0.1. (5)"
        assert_eq!(got.code, 97, "curl: {}", got.stderr);
        assert!(
            got.stderr.contains("Can't complete SOCKS5 connection") && got.stderr.contains("(5)"),
            "curl did not report reply 5: {}",
            got.stderr
        );
        assert!(
            !got.stderr.contains("connection to proxy closed"),
            "{}",
            got.stderr
        );
    })
    .await;
}

// === Host keys and key files ===

/// A host key that differs from known_hosts: a loud error with the server's
/// fingerprint, never ready, CONNECTs fail within connect_timeout instead of hanging,
/// and the daemon stays up and keeps retrying (so a fixed known_hosts is picked up
/// without a restart). It is not a refused key: no login is tried (we hang up after
/// the key exchange), so it backs off as a network failure does, gradually up to
/// `reconnect.max`, and is not reported as `key refused`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_host_key_is_loud_and_connects_fail_fast() {
    within(TEST_LIMIT, "test", async {
        let sshd = Sshd::start().await;
        let wrong = sshd.wrong_known_hosts();
        let cfg = GateConfig::new(&sshd)
            .known_hosts(Some(&wrong))
            .connect_timeout("2s");
        assert_host_key_refused(&sshd, &cfg).await;
    })
    .await;
}

/// The same for a host that known_hosts does not list at all (strict is the default).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_host_key_is_loud_under_strict_default() {
    within(TEST_LIMIT, "test", async {
        let sshd = Sshd::start().await;
        let empty = sshd.empty_known_hosts();
        let cfg = GateConfig::new(&sshd)
            .known_hosts(Some(&empty))
            .connect_timeout("2s");
        assert_host_key_refused(&sshd, &cfg).await;
        assert_eq!(
            std::fs::read_to_string(&empty).unwrap_or_default(),
            "",
            "strict wrote to known_hosts"
        );
    })
    .await;
}

async fn assert_host_key_refused(sshd: &Sshd, cfg: &GateConfig) {
    let echo = targets::echo().await;
    // The retries below are a promise of this bound, not of luck: with the
    // default reconnect.max (30s) and full jitter, two more dials after the
    // first few failures take up to a minute.
    let cfg = cfg
        .clone()
        .upstream_line(r#"reconnect = { initial = "250ms", max = "2s" }"#);
    let mut gate = Gate::start_unready(&cfg).await;
    let fingerprint = sshd.host_key_fingerprint();
    let line = gate
        .wait_log(Duration::from_secs(20), |l| l.contains(&fingerprint))
        .await
        .unwrap_or_else(|| {
            panic!(
                "no log line with the server's fingerprint {fingerprint}; log:\n{}",
                gate.log_text()
            )
        });
    assert!(
        line.contains("ERROR"),
        "the host key error is not logged at ERROR: {line}"
    );

    let started = Instant::now();
    let code = gate.reply_code(socks::CONNECT, &echo.addr().into()).await;
    let waited = started.elapsed();
    assert!(
        code == socks::GENERAL_FAILURE || code == socks::HOST_UNREACHABLE,
        "reply {code:#04x}, want 0x01 or 0x04"
    );
    assert!(
        waited < Duration::from_secs(5),
        "CONNECT took {waited:?} with connect_timeout 2s"
    );

    // Still running, and retrying: new connections to sshd keep coming.
    let seen = sshd.connections();
    let started = Instant::now();
    while sshd.connections() < seen + 2 && started.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        sshd.connections() >= seen + 2,
        "fewer than 2 new attempts within 20 s; gate log:\n{}\nsshd log:\n{}",
        gate.log_text(),
        sshd.log()
    );
    assert!(
        gate.exited().is_none(),
        "the daemon exited; log:\n{}",
        gate.log_text()
    );
    assert_eq!(
        gate.count_log(|l| l.contains("upstream ready")),
        0,
        "became ready with a bad host key"
    );
    assert_eq!(sshd.logins(), 0, "logged in despite the host key");
    assert_eq!(
        gate.count_log(|l| l.contains("key refused")),
        0,
        "a host key error reported as a refused key:\n{}",
        gate.log_text()
    );
    assert_eq!(echo.accepted(), 0);
}

/// OpenSSH refuses a private key that others can read; so do we, saying how to fix it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn world_readable_key_is_refused_with_chmod_hint() {
    within(TEST_LIMIT, "test", async {
        let sshd = Sshd::start().await;
        let key = sshd.dir().join("id_loose");
        std::fs::copy(sshd.client_key(), &key).expect("copy key");
        std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .expect("chmod 644");
        let mut gate = Gate::spawn(&GateConfig::new(&sshd).identity(&key));
        let line = gate
            .wait_log(Duration::from_secs(20), |l| {
                l.contains("chmod 600") || l.contains("UNPROTECTED PRIVATE KEY FILE")
            })
            .await;
        assert!(
            line.is_some(),
            "no `chmod 600` / UNPROTECTED PRIVATE KEY FILE message; log:\n{}",
            gate.log_text()
        );
        assert_eq!(gate.count_log(|l| l.contains("upstream ready")), 0);
        assert_eq!(sshd.logins(), 0, "logged in with a world-readable key");
    })
    .await;
}

// === Config and CLI errors ===

/// A valid config as lines; tests break one line and know its number. The upstream is
/// never contacted: config errors come first.
fn config_lines() -> Vec<String> {
    [
        "[[upstream]]",
        "name = \"jump\"",
        "host = \"127.0.0.1\"",
        "port = 1",
        "user = \"root\"",
        "identity_files = [\"/nonexistent/id_ed25519\"]",
        "known_hosts = \"/nonexistent/known_hosts\"",
        "keepalive = { interval = \"15s\", count_max = 3 }",
        "",
        "[[listener]]",
        "name = \"socks\"",
        "kind = \"socks5\"",
        "bind = \"127.0.0.1:0\"",
        "via = \"jump\"",
        "handshake_timeout = \"10s\"",
        "connect_timeout = \"10s\"",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Replaces the line that starts with `prefix`, returning the config and the 1-based
/// line number.
fn config_with(prefix: &str, replacement: &str) -> (String, usize) {
    let mut lines = config_lines();
    let i = lines
        .iter()
        .position(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix:?}"));
    lines[i] = replacement.to_string();
    (lines.join("\n") + "\n", i + 1)
}

fn assert_config_error(exit: &Exit, line: Option<usize>, mentions: &[&str]) {
    let path = exit
        .config
        .as_ref()
        .expect("config path")
        .display()
        .to_string();
    assert_eq!(
        exit.code,
        Some(EX_CONFIG),
        "want exit 78; stderr:\n{}",
        exit.stderr
    );
    let want = match line {
        Some(n) => format!("{path}:{n}"),
        None => path,
    };
    assert!(
        exit.stderr.contains(&want),
        "stderr does not name {want}:\n{}",
        exit.stderr
    );
    for m in mentions {
        assert!(
            exit.stderr.contains(m),
            "stderr does not mention {m:?}:\n{}",
            exit.stderr
        );
    }
}

#[test]
fn unknown_key_is_a_config_error_naming_file_line_and_key() {
    // In the listener table, and a realistic typo in the upstream table.
    let (toml, line) = config_with("via", "via = \"jump\"\ncolour = \"blue\"");
    assert_config_error(&spawn_expect_exit(&toml), Some(line + 1), &["colour"]);
    let (toml, line) = config_with(
        "identity_files",
        "identity_file = \"/nonexistent/id_ed25519\"",
    );
    assert_config_error(&spawn_expect_exit(&toml), Some(line), &["identity_file"]);
}

#[test]
fn toml_syntax_error_is_a_config_error_with_its_line() {
    let (toml, line) = config_with("user", "user = \"root");
    assert_config_error(&spawn_expect_exit(&toml), Some(line), &[]);
}

#[test]
fn via_naming_no_upstream_is_a_config_error() {
    let (toml, _) = config_with("via", "via = \"nowhere\"");
    assert_config_error(&spawn_expect_exit(&toml), None, &["nowhere"]);
}

#[test]
fn bad_duration_is_a_config_error() {
    let (toml, line) = config_with(
        "keepalive",
        "keepalive = { interval = \"15 parsecs\", count_max = 3 }",
    );
    let exit = spawn_expect_exit(&toml);
    assert_config_error(&exit, Some(line), &[]);
    assert!(
        exit.stderr.contains("interval") || exit.stderr.contains("parsecs"),
        "stderr names neither the key nor the value:\n{}",
        exit.stderr
    );
}

#[test]
fn missing_config_file_is_a_config_error() {
    let exit = run_expect_exit(&["run", "-c", "/nonexistent/jumpgate.toml"]);
    assert_eq!(exit.code, Some(EX_CONFIG), "stderr:\n{}", exit.stderr);
    assert!(
        exit.stderr.contains("/nonexistent/jumpgate.toml"),
        "stderr:\n{}",
        exit.stderr
    );
}

#[test]
fn bad_cli_flag_is_a_usage_error() {
    for args in [&["run", "--no-such-flag"][..], &["no-such-subcommand"]] {
        let exit = run_expect_exit(args);
        assert_eq!(
            exit.code,
            Some(EX_USAGE),
            "{args:?}: stdout:\n{}\nstderr:\n{}",
            exit.stdout,
            exit.stderr
        );
    }
}

// === Misbehaving clients ===

/// Reads until the peer closes (EOF or reset); returns how long that took, or None if
/// it stayed open for `limit`.
async fn closed_within(s: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    while started.elapsed() < limit {
        match tokio::time::timeout(limit.saturating_sub(started.elapsed()), s.read(&mut buf)).await
        {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
            // Whatever the gate says first (an error reply), it must then close.
            Ok(Ok(_)) => continue,
            Err(_) => return None,
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_client_is_dropped_after_handshake_timeout() {
    within(TEST_LIMIT, "test", async {
        let sshd = Sshd::start().await;
        let echo = targets::echo().await;
        let gate = Gate::start(&GateConfig::new(&sshd).handshake_timeout("1s")).await;
        let proxy = gate.socks_addr();
        let started = Instant::now();
        // One says nothing at all, one stops after the greeting.
        let mut silent = TcpStream::connect(proxy).await.expect("connect");
        let mut stalled = socks::greet(proxy).await.expect("greeting");
        // Meanwhile the gate serves others.
        gate.echo_roundtrip(echo.addr(), b"not blocked by idle clients")
            .await;
        let limit = Duration::from_secs(3);
        for (name, s) in [
            ("silent", &mut silent),
            ("stalled after greeting", &mut stalled),
        ] {
            let left = limit.saturating_sub(started.elapsed());
            assert!(
                closed_within(s, left).await.is_some(),
                "{name} client still open {:?} after connecting (handshake_timeout 1s)",
                started.elapsed()
            );
        }
        assert!(
            started.elapsed() >= Duration::from_millis(900),
            "dropped before the timeout: {:?}",
            started.elapsed()
        );
        gate.echo_roundtrip(echo.addr(), b"still serving").await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_socks_port_is_closed_and_the_daemon_keeps_serving() {
    within(TEST_LIMIT, "test", async {
        let sshd = Sshd::start().await;
        let echo = targets::echo().await;
        let mut gate = Gate::start(&GateConfig::new(&sshd)).await;
        let proxy: SocketAddr = gate.socks_addr();
        let garbage: [&[u8]; 3] = [
            b"GET / HTTP/1.1\r\nHost: example.test\r\n\r\n",
            // SOCKS4 CONNECT
            &[0x04, 0x01, 0x00, 0x50, 127, 0, 0, 1, 0],
            // SOCKS5 greeting that offers no methods, then junk
            &[0x05, 0x00, 0xff, 0xff, 0xff],
        ];
        for g in garbage {
            let mut s = TcpStream::connect(proxy).await.expect("connect");
            // The gate may close while we write: that is fine.
            let _ = s.write_all(g).await;
            // handshake_timeout is 10s: closing must come from the bad bytes.
            assert!(
                closed_within(&mut s, Duration::from_secs(5))
                    .await
                    .is_some(),
                "connection after {:?} stayed open",
                String::from_utf8_lossy(g)
            );
        }
        assert!(
            gate.exited().is_none(),
            "the daemon exited; log:\n{}",
            gate.log_text()
        );
        gate.echo_roundtrip(echo.addr(), b"still serving").await;
    })
    .await;
}

/// `jumpgate check -c F` on the issue's type errors, typo and syntax error:
/// exit 78, and stderr names file:line, the key, the form it wants and an
/// example (or, for a syntax error, line:column and the quoted line).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_words_type_errors_typos_and_syntax_errors_per_key() {
    within(TEST_LIMIT, "check config errors", async {
        let cases: [(&str, &str, &[&str]); 4] = [
            (
                "port",
                "port = \"2222\"",
                &["port wants an integer such as 2222"],
            ),
            (
                "keepalive",
                "keepalive = { interval = 5, count_max = 3 }",
                &["interval wants a duration string such as \"15s\""],
            ),
            (
                "known_hosts",
                "known_host = \"/nonexistent/known_hosts\"",
                &["did you mean `known_hosts`?"],
            ),
            (
                "user",
                "user = \"root",
                &["TOML syntax error", "| user = \"root", "^"],
            ),
        ];
        for (prefix, line_text, mentions) in cases {
            let (toml, line) = config_with(prefix, line_text);
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("jumpgate.toml");
            std::fs::write(&path, &toml).expect("write config");
            let mut cmd = tokio::process::Command::from(crate::support::process::offline_command(
                dir.path(),
                crate::support::gate::JUMPGATE,
            ));
            cmd.arg("check").arg("-c").arg(&path).env("NO_COLOR", "1");
            let out = crate::support::process::run_for(&mut cmd, Duration::from_secs(30)).await;
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(EX_CONFIG), "{line_text}: {stderr}");
            let at = format!("{}:{line}:", path.display());
            assert!(stderr.contains(&at), "{line_text}: no {at} in:\n{stderr}");
            for m in mentions {
                assert!(stderr.contains(m), "{line_text}: no {m:?} in:\n{stderr}");
            }
        }
    })
    .await;
}
