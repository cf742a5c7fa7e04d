//! What a user sees working: curl fetching pages through the gate, byte-exact
//! transfers both ways, half-close, many tunnels at once, every key kind and known_hosts
//! mode, and `jumpgate demo`.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinSet;

use crate::support::pattern::{self, Digest};
use crate::support::socks::{self, Dest};
use crate::support::{curl, targets, within, Gate, GateConfig, KeyKind, Sshd};

const TEST_LIMIT: Duration = Duration::from_secs(120);

const MIB: u64 = 1024 * 1024;

/// A page with a token that only this test knows.
async fn page_server(token: &str) -> targets::Server {
    targets::http(format!(
        "<!doctype html><title>jumpgate test</title><p>{token}</p>\n"
    ))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_fetches_a_page_by_ip() {
    within(TEST_LIMIT, "test", async {
        let sshd = Sshd::start().await;
        let token = format!("token-by-ip-{}", std::process::id());
        let web = page_server(&token).await;
        let gate = Gate::start(&GateConfig::new(&sshd)).await;
        let url = format!("http://127.0.0.1:{}/", web.port());
        let got = curl(gate.dir(), "--socks5-hostname", gate.socks_addr(), &url).await;
        assert_eq!(
            got.code,
            0,
            "curl failed: {}\ngate log:\n{}",
            got.stderr,
            gate.log_text()
        );
        assert!(
            got.body.contains(&token),
            "page without the token: {}",
            got.body
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_fetches_a_page_by_name_resolved_on_the_jump_host() {
    within(TEST_LIMIT, "test", async {
        let sshd = Sshd::start().await;
        let token = format!("token-by-name-{}", std::process::id());
        let web = page_server(&token).await;
        let gate = Gate::start(&GateConfig::new(&sshd)).await;
        let url = format!("http://localhost:{}/", web.port());
        let got = curl(gate.dir(), "--socks5-hostname", gate.socks_addr(), &url).await;
        assert_eq!(
            got.code,
            0,
            "curl failed: {}\ngate log:\n{}",
            got.stderr,
            gate.log_text()
        );
        assert!(
            got.body.contains(&token),
            "page without the token: {}",
            got.body
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_by_ipv4_ipv6_and_domain() {
    within(TEST_LIMIT, "test", async {
        let sshd = Sshd::start().await;
        let echo4 = targets::echo().await;
        let echo6 = targets::echo_v6().await;
        let gate = Gate::start(&GateConfig::new(&sshd)).await;
        gate.echo_roundtrip(echo4.addr(), b"over ipv4").await;
        gate.echo_roundtrip(echo6.addr(), b"over ipv6").await;
        let by_name = Dest::Domain("localhost".into(), echo4.port());
        if let Err(e) = socks::echo_roundtrip(gate.socks_addr(), by_name, b"by name").await {
            panic!("CONNECT localhost: {e:#}\ngate log:\n{}", gate.log_text());
        }
    })
    .await;
}

/// Sends `len` pattern bytes to the sink, half-closes, and checks the sink's digest.
async fn upload(gate: &Gate, sink: SocketAddr, len: u64) {
    let mut s = gate.connect(sink).await;
    let sent = pattern::write_pattern(&mut s, len).await.expect("upload");
    s.shutdown().await.expect("half-close");
    let mut reply = [0u8; 16];
    s.read_exact(&mut reply)
        .await
        .expect("sink digest after half-close");
    assert_eq!(
        Digest::from_bytes(reply),
        sent,
        "the sink received different bytes"
    );
}

/// Reads the source's `len` pattern bytes to EOF and checks them.
async fn download(gate: &Gate, source: SocketAddr, len: u64) {
    let mut s = gate.connect(source).await;
    let got = pattern::read_check(&mut s).await.expect("download");
    got.assert_exact(len, "download");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_mib_both_directions_byte_exact() {
    within(TEST_LIMIT, "test", async {
        let sshd = Sshd::start().await;
        let sink = targets::sink().await;
        let source = targets::source(MIB).await;
        let gate = Gate::start(&GateConfig::new(&sshd)).await;
        upload(&gate, sink.addr(), MIB).await;
        download(&gate, source.addr(), MIB).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_mib_both_directions_byte_exact() {
    within(Duration::from_secs(300), "test", async {
        let sshd = Sshd::start().await;
        let sink = targets::sink().await;
        let source = targets::source(100 * MIB).await;
        let gate = Gate::start(&GateConfig::new(&sshd)).await;
        upload(&gate, sink.addr(), 100 * MIB).await;
        download(&gate, source.addr(), 100 * MIB).await;
        // Both at once, on one session.
        tokio::join!(
            upload(&gate, sink.addr(), 100 * MIB),
            download(&gate, source.addr(), 100 * MIB)
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_close_still_delivers_the_whole_response() {
    within(TEST_LIMIT, "test", async {
        let sshd = Sshd::start().await;
        let sink = targets::sink().await;
        let echo = targets::echo().await;
        let gate = Gate::start(&GateConfig::new(&sshd)).await;

        // A server that answers only after the request's EOF (the sink's digest).
        let mut s = gate.connect(sink.addr()).await;
        s.write_all(b"request then EOF").await.expect("write");
        s.shutdown().await.expect("half-close");
        let mut reply = Vec::new();
        s.read_to_end(&mut reply)
            .await
            .expect("read reply after half-close");
        assert_eq!(reply, Digest::of(b"request then EOF").to_bytes());

        // A server that keeps sending after our EOF: echo returns all 4 MiB, then EOF.
        let len = 4 * MIB;
        let s = gate.connect(echo.addr()).await;
        let (mut r, mut w) = s.into_split();
        let writer = tokio::spawn(async move {
            let d = pattern::write_pattern(&mut w, len).await?;
            w.shutdown().await?;
            Ok::<_, std::io::Error>(d)
        });
        let back = pattern::read_check(&mut r)
            .await
            .expect("read echo after half-close");
        writer
            .await
            .expect("writer task")
            .expect("write then half-close");
        back.assert_exact(len, "echo after half-close");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_tunnels() {
    within(TEST_LIMIT, "test", async {
        let sshd = Sshd::start().await;
        let echo = targets::echo().await;
        let gate = Gate::start(&GateConfig::new(&sshd)).await;
        let proxy = gate.socks_addr();
        // Open all 200 first, so that they are all alive at the same time.
        let mut opening = JoinSet::new();
        for i in 0..200u32 {
            let dest = echo.addr();
            opening.spawn(async move { (i, socks::connect(proxy, dest).await) });
        }
        let mut tunnels = Vec::new();
        let mut failures = Vec::new();
        while let Some(r) = opening.join_next().await {
            match r.expect("connect task") {
                (i, Ok(s)) => tunnels.push((i, s)),
                (i, Err(e)) => failures.push(format!("tunnel {i}: {e:#}")),
            }
        }
        assert!(
            failures.is_empty(),
            "{} of 200 CONNECTs failed: {:?}\ngate log:\n{}",
            failures.len(),
            failures,
            gate.log_text()
        );
        let mut talking = JoinSet::new();
        for (i, mut s) in tunnels {
            talking.spawn(async move {
                let msg = format!("tunnel {i} says hello").into_bytes();
                s.write_all(&msg).await?;
                let mut back = vec![0u8; msg.len()];
                s.read_exact(&mut back).await?;
                anyhow::ensure!(back == msg, "tunnel {i}: echo differs");
                Ok(())
            });
        }
        let mut ok = 0;
        while let Some(r) = talking.join_next().await {
            match r.expect("echo task") {
                Ok(()) => ok += 1,
                Err(e) => failures.push(format!("{e:#}")),
            }
        }
        assert_eq!(ok, 200, "failures: {failures:?}");
        assert_eq!(echo.accepted(), 200);
    })
    .await;
}

/// Starts a gate that logs in with `cfg` and proves it with one echo round trip.
async fn login_and_echo(cfg: &GateConfig) {
    let echo = targets::echo().await;
    let gate = Gate::start(cfg).await;
    gate.echo_roundtrip(echo.addr(), b"logged in").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ed25519_key_logs_in() {
    within(TEST_LIMIT, "test", async {
        let sshd = Sshd::start().await;
        let key = sshd.new_client_key(KeyKind::Ed25519, None);
        login_and_echo(&GateConfig::new(&sshd).identity(&key)).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ecdsa_key_logs_in() {
    within(TEST_LIMIT, "test", async {
        let sshd = Sshd::start().await;
        let key = sshd.new_client_key(KeyKind::Ecdsa, None);
        login_and_echo(&GateConfig::new(&sshd).identity(&key)).await;
    })
    .await;
}

/// P-384 and P-521 keys, each checked in sshd's log by its curve.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ecdsa_p384_and_p521_keys_log_in() {
    within(TEST_LIMIT, "test", async {
        let sshd = Sshd::start().await;
        for (kind, bits) in [(KeyKind::EcdsaP384, "384"), (KeyKind::EcdsaP521, "521")] {
            let key = sshd.new_client_key(kind, None);
            let before = sshd.logins();
            login_and_echo(&GateConfig::new(&sshd).identity(&key)).await;
            // `384 SHA256:... comment (ECDSA)`: the key's size and fingerprint.
            let listing = crate::support::process::run_ok(
                std::process::Command::new("ssh-keygen")
                    .arg("-l")
                    .arg("-f")
                    .arg(&key),
                Duration::from_secs(10),
            );
            assert!(listing.starts_with(bits), "{listing}");
            let fingerprint = listing.split_whitespace().nth(1).unwrap_or("-").to_owned();
            let log = sshd.log();
            let accepted: Vec<&str> = log
                .lines()
                .filter(|l| l.contains("Accepted publickey for"))
                .collect();
            assert!(
                accepted.len() > before
                    && accepted[before..]
                        .iter()
                        .all(|l| l.contains(&format!("ECDSA {fingerprint}"))),
                "no login with the P-{bits} key {fingerprint} in sshd log:\n{log}"
            );
        }
    })
    .await;
}

/// OpenSSH 9.2 refuses ssh-rsa (SHA-1) signatures: this passes only with rsa-sha2-256
/// or rsa-sha2-512.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsa_key_logs_in_with_sha2_signatures() {
    within(TEST_LIMIT, "test", async {
        let sshd = Sshd::start().await;
        let key = sshd.new_client_key(KeyKind::Rsa, None);
        login_and_echo(&GateConfig::new(&sshd).identity(&key)).await;
        let log = sshd.log();
        assert!(
            log.contains("Accepted publickey for") && log.contains("RSA SHA256:"),
            "sshd did not log an RSA login:\n{log}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_key_with_passphrase_env() {
    within(TEST_LIMIT, "test", async {
        let sshd = Sshd::start().await;
        let key = sshd.new_client_key(KeyKind::Ed25519, Some("correct horse"));
        let cfg = GateConfig::new(&sshd)
            .identity(&key)
            .passphrase_env("JG_TEST_KEY_PASSPHRASE", "correct horse");
        login_and_echo(&cfg).await;
    })
    .await;
}

/// The file is written like `echo PASSPHRASE > file`: one trailing newline, which is
/// not part of the passphrase.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_key_with_passphrase_file() {
    within(TEST_LIMIT, "test", async {
        let sshd = Sshd::start().await;
        let key = sshd.new_client_key(KeyKind::Ed25519, Some("battery staple"));
        let file = sshd.dir().join("passphrase");
        std::fs::write(&file, "battery staple\n").expect("write passphrase file");
        std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .expect("chmod 600 passphrase file");
        login_and_echo(&GateConfig::new(&sshd).identity(&key).passphrase_file(&file)).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hashed_known_hosts_entry_is_accepted() {
    within(TEST_LIMIT, "test", async {
        let sshd = Sshd::start().await;
        let hashed = sshd.hashed_known_hosts();
        login_and_echo(&GateConfig::new(&sshd).known_hosts(Some(&hashed))).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_new_records_the_host_key_and_strict_then_accepts_it() {
    within(TEST_LIMIT, "test", async {
        let sshd = Sshd::start().await;
        let kh = sshd.empty_known_hosts();
        let cfg = GateConfig::new(&sshd)
            .known_hosts(Some(&kh))
            .host_key_check("accept-new");
        login_and_echo(&cfg).await;
        assert!(
            sshd.known_hosts_has_host_key(&kh),
            "accept-new did not record the host key; known_hosts now:\n{}",
            std::fs::read_to_string(&kh).unwrap_or_default()
        );
        // What it wrote is a valid entry: a strict gate accepts it.
        login_and_echo(
            &GateConfig::new(&sshd)
                .known_hosts(Some(&kh))
                .host_key_check("strict"),
        )
        .await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_key_check_off_needs_no_known_hosts_file() {
    within(TEST_LIMIT, "test", async {
        let sshd = Sshd::start().await;
        let cfg = GateConfig::new(&sshd)
            .known_hosts(None)
            .host_key_check("off");
        login_and_echo(&cfg).await;
    })
    .await;
}

/// `jumpgate demo` as a user runs it: start it, take the address it logs, curl the
/// page it names. It binds 1080 or the next free port, so the port is read, not assumed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_serves_the_hello_page_to_curl() {
    within(TEST_LIMIT, "test", async {
        let mut demo = Gate::demo().await;
        let addr = demo.socks_addr();
        let port = addr.port().to_string();
        let hint = demo
            .wait_log(Duration::from_secs(5), |l| {
                l.contains("--socks5-hostname") && l.contains(&port)
            })
            .await;
        assert!(
            hint.is_some(),
            "demo did not print the curl command for its port; output:\n{}",
            demo.log_text()
        );
        let got = curl(
            demo.dir(),
            "--socks5-hostname",
            addr,
            "http://hello.jumpgate/",
        )
        .await;
        assert_eq!(
            got.code,
            0,
            "curl failed: {}\ndemo log:\n{}",
            got.stderr,
            demo.log_text()
        );
        assert!(
            got.body.contains("jumpgate"),
            "unexpected page: {}",
            got.body
        );
    })
    .await;
}

/// `agent = true` with no identity files: the key is only in a real ssh-agent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_key_logs_in() {
    within(TEST_LIMIT, "test", async {
        let sshd = Sshd::start().await;
        let key = sshd.new_client_key(KeyKind::Ed25519, None);
        let dir = tempfile::tempdir().expect("tempdir");
        let sock = dir.path().join("agent.sock");
        // -D: foreground, so the guard can kill it by PID.
        let _agent = crate::support::process::ChildGuard::spawn(
            "ssh-agent",
            std::process::Command::new("ssh-agent")
                .arg("-D")
                .arg("-a")
                .arg(&sock)
                .stdout(std::process::Stdio::null()),
        );
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !sock.exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "ssh-agent did not create {sock:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let added = std::process::Command::new("ssh-add")
            .arg(&key)
            .env("SSH_AUTH_SOCK", &sock)
            .output()
            .expect("run ssh-add");
        assert!(
            added.status.success(),
            "ssh-add: {}",
            String::from_utf8_lossy(&added.stderr)
        );
        let mut cfg = GateConfig::new(&sshd);
        cfg.identity_files = vec![];
        cfg.env = vec![("SSH_AUTH_SOCK".into(), sock.display().to_string())];
        cfg.extra_upstream.push("agent = true".into());
        login_and_echo(&cfg).await;
    })
    .await;
}

/// A client that sends its greeting, request and first data in one write (no
/// waiting for the replies) must have that data forwarded, not lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_request_and_data_are_forwarded() {
    within(TEST_LIMIT, "test", async {
        let sshd = Sshd::start().await;
        let echo = targets::echo().await;
        let gate = Gate::start(&GateConfig::new(&sshd)).await;
        let std::net::IpAddr::V4(ip) = echo.addr().ip() else {
            panic!("echo target is not IPv4");
        };
        let mut wire = vec![5u8, 1, 0, 5, 1, 0, 1];
        wire.extend_from_slice(&ip.octets());
        wire.extend_from_slice(&echo.addr().port().to_be_bytes());
        wire.extend_from_slice(b"early bird");
        let mut s = tokio::net::TcpStream::connect(gate.socks_addr())
            .await
            .expect("connect to gate");
        s.write_all(&wire).await.expect("write all at once");
        let mut replies = [0u8; 12];
        s.read_exact(&mut replies).await.expect("both replies");
        assert_eq!(&replies[..2], &[5, 0], "method reply");
        assert_eq!(&replies[2..4], &[5, 0], "CONNECT reply");
        let mut back = [0u8; 10];
        tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut back))
            .await
            .expect("echo within 10 s")
            .expect("read echo");
        assert_eq!(&back, b"early bird");
    })
    .await;
}
