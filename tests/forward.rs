//! Port forwarding: `forward` listeners (LocalForward, `ssh -L`) with a fixed destination
//! reached over direct-tcpip, and `remote_forwards` (RemoteForward, `ssh -R`) where the
//! jump host's sshd listens and jumpgate connects each connection to a local target;
//! the remote forwards come back after sshd is killed and restarted, and
//! `exit_on_forward_failure` ends the daemon when sshd refuses one.

use std::net::{SocketAddr, TcpListener as StdListener};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use crate::support::admin::{admin_addr, get, sample};
use crate::support::pattern;
use crate::support::process::{offline_tokio_command, run_for};
use crate::support::sshd_life::{kill_sshd_tree, restart_sshd, sshd_pid};
use crate::support::{free_port, gate, refused_addr, targets, within, Gate, GateConfig};
use crate::support::{Sshd, SshdOptions};

const TEST_LIMIT: Duration = Duration::from_secs(120);
const MIB: u64 = 1024 * 1024;

/// A `[[listener]]` of kind forward named `name`, on 127.0.0.1:0, to `to`.
fn forward_listener(name: &str, to: &str) -> String {
    format!(
        "\n[[listener]]\nname = \"{name}\"\nkind = \"forward\"\nbind = \"127.0.0.1:0\"\n\
         via = \"jump\"\nto = \"{to}\"\nconnect_timeout = \"5s\""
    )
}

/// The address of listener `name` from its `listening` log line.
async fn listener_addr(gate: &mut Gate, name: &str) -> SocketAddr {
    let want = format!("listener={name} ");
    let line = gate
        .wait_log(Duration::from_secs(10), |l| {
            l.contains("listening") && format!("{l} ").contains(&want)
        })
        .await
        .unwrap_or_else(|| panic!("no `listening {want}` line; log:\n{}", gate.log_text()));
    gate::parse_addr(&line).unwrap_or_else(|| panic!("no addr= in {line:?}"))
}

/// Sends `payload` to an echo server at `addr`, half-closes, and returns all it read
/// back until EOF (bounded).
async fn echo_exchange(addr: SocketAddr, payload: &[u8]) -> std::io::Result<Vec<u8>> {
    let exchange = async {
        let mut s = TcpStream::connect(addr).await?;
        let (mut r, mut w) = s.split();
        let send = async {
            w.write_all(payload).await?;
            w.shutdown().await
        };
        let mut back = Vec::with_capacity(payload.len());
        let recv = r.read_to_end(&mut back);
        let (sent, got) = tokio::join!(send, recv);
        sent?;
        got?;
        Ok(back)
    };
    tokio::time::timeout(Duration::from_secs(20), exchange)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "echo exchange"))?
}

/// `n` bytes that differ per `seed`.
fn payload(seed: u64, n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    pattern::fill(seed * 7919, &mut v);
    v
}

/// What the client of a failed forward sees: how its connection ended.
async fn read_end(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect(addr)
        .await
        .expect("connect forward port");
    let mut buf = [0u8; 64];
    match tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await {
        Ok(Ok(0)) => "EOF".into(),
        Ok(Ok(n)) => panic!("a failed forward sent {n} bytes"),
        Ok(Err(e)) => format!("error {e}"),
        Err(_) => panic!("a failed forward left the client connection open for 10 s"),
    }
}

// === forward listeners (LocalForward) ===

/// curl fetches a page through a `forward` listener (no proxy settings: the listener is
/// the destination), and 8 MiB go up byte-exact to a sink that answers with their
/// digest. Both connections are counted as ok for their listener.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_listener_carries_a_page_and_exact_bytes() {
    within(TEST_LIMIT, "test", async {
        let sshd = Sshd::start().await;
        let token = format!("forwarded-page-{}", std::process::id());
        let web = targets::http(format!("<p>{token}</p>\n")).await;
        let sink = targets::sink().await;
        let mut cfg = GateConfig::new(&sshd);
        cfg.extra_toml.push(forward_listener(
            "web",
            &format!("localhost:{}", web.port()),
        ));
        cfg.extra_toml
            .push(forward_listener("up", &sink.addr().to_string()));
        cfg.extra_toml
            .push("\n[admin]\nbind = \"127.0.0.1:0\"".into());
        let mut gate = Gate::start(&cfg).await;
        let web_fwd = listener_addr(&mut gate, "web").await;
        let up_fwd = listener_addr(&mut gate, "up").await;
        assert!(
            gate.log_text()
                .contains(&format!("to=localhost:{}", web.port())),
            "the listening line names the destination:\n{}",
            gate.log_text()
        );

        let mut cmd = offline_tokio_command(gate.dir(), "curl");
        cmd.args(["-sS", "--max-time", "20"])
            .arg(format!("http://{web_fwd}/"));
        let out = run_for(&mut cmd, Duration::from_secs(30)).await;
        let body = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && body.contains(&token),
            "curl through the forward listener: {:?} {body:?} {}\ngate log:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            gate.log_text()
        );

        let mut s = TcpStream::connect(up_fwd).await.expect("connect forward");
        let sent = pattern::write_pattern(&mut s, 8 * MIB)
            .await
            .expect("upload");
        s.shutdown().await.expect("half-close");
        let mut digest = [0u8; 16];
        tokio::time::timeout(Duration::from_secs(20), s.read_exact(&mut digest))
            .await
            .expect("digest within 20 s")
            .expect("read digest");
        assert_eq!(
            pattern::Digest::from_bytes(digest),
            sent,
            "the sink got other bytes than we sent"
        );
        drop(s);

        let admin = admin_addr(&mut gate).await;
        let started = Instant::now();
        loop {
            let (_, metrics) = get(admin, "/metrics").await;
            let ok = |l: &str| {
                sample(
                    &metrics,
                    &format!("jumpgate_connections_total{{listener=\"{l}\",result=\"ok\"}}"),
                )
            };
            if ok("web") == Some(1.0) && ok("up") == Some(1.0) {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "connections_total for web/up not 1/1:\n{metrics}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
}

/// With `PermitOpen` listing the echo server and a closed port: the echo forward works,
/// the closed port's forward closes the client and logs sshd's "Connection refused",
/// and a destination outside PermitOpen is logged as administratively prohibited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_forwards_close_the_client_and_say_why() {
    within(TEST_LIMIT, "test", async {
        let echo = targets::echo().await;
        let closed = refused_addr();
        let sshd = Sshd::start_with(SshdOptions {
            permit_open: Some(format!("{} {}", echo.addr(), closed)),
            ..SshdOptions::default()
        })
        .await;
        let elsewhere = SocketAddr::from(([127, 0, 0, 1], 1));
        let mut cfg = GateConfig::new(&sshd);
        cfg.extra_toml
            .push(forward_listener("echo", &echo.addr().to_string()));
        cfg.extra_toml
            .push(forward_listener("closed", &closed.to_string()));
        cfg.extra_toml
            .push(forward_listener("denied", &elsewhere.to_string()));
        let mut gate = Gate::start(&cfg).await;
        let echo_fwd = listener_addr(&mut gate, "echo").await;
        let closed_fwd = listener_addr(&mut gate, "closed").await;
        let denied_fwd = listener_addr(&mut gate, "denied").await;

        let data = payload(1, 100_000);
        let back = echo_exchange(echo_fwd, &data).await.expect("echo forward");
        assert!(back == data, "echo through the forward differs");

        for (addr, text) in [
            (closed_fwd, "Connection refused"),
            (denied_fwd, "administratively prohibited"),
        ] {
            let how = read_end(addr).await;
            eprintln!("forward to a bad destination: client saw {how}");
            let line = gate
                .wait_log(Duration::from_secs(5), |l| {
                    l.contains("forward failed") && l.contains(text)
                })
                .await;
            assert!(
                line.is_some(),
                "no `forward failed ... {text}` in the log:\n{}",
                gate.log_text()
            );
        }
        // The good forward still works after the failures.
        let back = echo_exchange(echo_fwd, b"again").await.expect("echo again");
        assert_eq!(back, b"again");
    })
    .await;
}

/// 200 tunnels through one forward listener at once (two sessions' worth of channels
/// with max_channels_per_session = 100), each echoing its own 64 KiB byte-exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_tunnels_through_a_forward_listener() {
    within(TEST_LIMIT, "test", async {
        let sshd = Sshd::start().await;
        let echo = targets::echo().await;
        let mut cfg = GateConfig::new(&sshd)
            .upstream_line("sessions = { min = 1, max = 4 }")
            .upstream_line("max_channels_per_session = 100");
        cfg.extra_toml
            .push(forward_listener("echo", &echo.addr().to_string()));
        let mut gate = Gate::start(&cfg).await;
        let fwd = listener_addr(&mut gate, "echo").await;
        let started = Instant::now();
        let mut set = JoinSet::new();
        for i in 0..200u64 {
            set.spawn(async move {
                let data = payload(i, 64 * 1024);
                let back = echo_exchange(fwd, &data).await;
                (i, back.map(|b| b == data))
            });
        }
        let mut ok = 0;
        while let Some(r) = set.join_next().await {
            match r.expect("task") {
                (_, Ok(true)) => ok += 1,
                (i, Ok(false)) => panic!("tunnel {i}: echo differs"),
                (i, Err(e)) => panic!("tunnel {i}: {e}\ngate log:\n{}", gate.log_text()),
            }
        }
        assert_eq!(ok, 200);
        eprintln!(
            "200 concurrent 64 KiB echoes through a forward listener in {:?}",
            started.elapsed()
        );
    })
    .await;
}

// === remote forwards (RemoteForward) ===

/// The `bind=` port of the n-th (1-based) `remote forward listening` log line.
async fn nth_remote_listening(gate: &mut Gate, n: usize, limit: Duration) -> Option<u16> {
    let started = Instant::now();
    loop {
        let lines: Vec<String> = gate
            .log_text()
            .lines()
            .filter(|l| l.contains("remote forward listening"))
            .map(str::to_owned)
            .collect();
        if let Some(l) = lines.get(n - 1) {
            return l
                .split_whitespace()
                .find_map(|w| w.strip_prefix("bind="))
                .and_then(|v| v.trim_matches('"').rsplit_once(':'))
                .and_then(|(_, p)| p.parse().ok());
        }
        if started.elapsed() > limit || gate.exited().is_some() {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// sshd listens on 127.0.0.1:P for us; a connection there reaches a local echo server
/// through jumpgate, byte-exact. Then sshd (listener and session processes) is killed
/// and restarted on the same port: the forward is requested again on the new session
/// and new connections work again within 10 s of the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_forward_reaches_a_local_target_and_survives_an_sshd_restart() {
    within(TEST_LIMIT, "test", async {
        let sshd = Sshd::start().await;
        let echo = targets::echo().await;
        let port = free_port();
        let cfg = GateConfig::new(&sshd)
            .upstream_line(r#"reconnect = { initial = "100ms", max = "1s" }"#)
            .upstream_line(&format!(
                "remote_forwards = [{{ bind = \"127.0.0.1:{port}\", to = \"{}\" }}]",
                echo.addr()
            ));
        let mut gate = Gate::start(&cfg).await;
        let bound = nth_remote_listening(&mut gate, 1, Duration::from_secs(10)).await;
        assert_eq!(
            bound,
            Some(port),
            "no `remote forward listening` for port {port}:\n{}",
            gate.log_text()
        );
        let remote = SocketAddr::from(([127, 0, 0, 1], port));
        let data = payload(2, 2 * MIB as usize);
        let back = echo_exchange(remote, &data).await.unwrap_or_else(|e| {
            panic!("echo through the remote forward: {e}\n{}", gate.log_text())
        });
        assert!(back == data, "echo through the remote forward differs");
        assert!(echo.accepted() >= 1);

        let addr = SocketAddr::new(sshd.host(), sshd.port());
        let killed = kill_sshd_tree(sshd_pid(&sshd), addr).await;
        assert!(
            gate.wait_log(Duration::from_secs(10), |l| l
                .contains("remote forwards lost with their session"))
                .await
                .is_some(),
            "no `remote forwards lost` after killing {killed} sshd processes:\n{}",
            gate.log_text()
        );
        // The port is gone with sshd.
        assert!(
            TcpStream::connect(remote).await.is_err(),
            "127.0.0.1:{port} still accepts after sshd was killed"
        );

        let _sshd2 = restart_sshd(&sshd).await;
        let restarted = Instant::now();
        let again = nth_remote_listening(&mut gate, 2, Duration::from_secs(10)).await;
        assert_eq!(
            again,
            Some(port),
            "the remote forward was not requested again within 10 s:\n{}",
            gate.log_text()
        );
        let back = echo_exchange(remote, b"after the restart")
            .await
            .unwrap_or_else(|e| panic!("echo after the restart: {e}\n{}", gate.log_text()));
        assert_eq!(back, b"after the restart");
        eprintln!(
            "remote forward back {:?} after sshd restarted ({killed} processes killed)",
            restarted.elapsed()
        );
    })
    .await;
}

/// `bind = "127.0.0.1:0"`: sshd picks the port, the log names it, and it works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_forward_on_a_server_allocated_port() {
    within(TEST_LIMIT, "test", async {
        let sshd = Sshd::start().await;
        let echo = targets::echo().await;
        let mut cfg = GateConfig::new(&sshd).upstream_line(&format!(
            "remote_forwards = [{{ bind = \"127.0.0.1:0\", to = \"{}\" }}]",
            echo.addr()
        ));
        cfg.extra_toml
            .push("\n[admin]\nbind = \"127.0.0.1:0\"".into());
        let mut gate = Gate::start(&cfg).await;
        let port = nth_remote_listening(&mut gate, 1, Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("no allocated port logged:\n{}", gate.log_text()));
        assert_ne!(port, 0, "the log shows port 0, not the allocated one");
        let back = echo_exchange(SocketAddr::from(([127, 0, 0, 1], port)), b"allocated")
            .await
            .unwrap_or_else(|e| panic!("echo via allocated port {port}: {e}\n{}", gate.log_text()));
        assert_eq!(back, b"allocated");

        // Counted under the forward's own listener label, and listed in /status.
        let admin = admin_addr(&mut gate).await;
        let series = "jumpgate_connections_total{listener=\"jump:R127.0.0.1:0\",result=\"ok\"}";
        let started = Instant::now();
        loop {
            let (_, metrics) = get(admin, "/metrics").await;
            if sample(&metrics, series) == Some(1.0) {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{series} is not 1:\n{metrics}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (code, status) = get(admin, "/status").await;
        assert_eq!(code, 200);
        let v: serde_json::Value = serde_json::from_str(&status).expect("status JSON");
        let listeners = v["listeners"].as_array().expect("listeners array");
        assert!(
            listeners.iter().any(|l| l["name"] == "jump:R127.0.0.1:0"
                && l["kind"] == "remote_forward"
                && l["connections_ok"] == 1),
            "no remote_forward entry with 1 ok connection in /status: {status}"
        );
    })
    .await;
}

/// A remote forward whose local target refuses: sshd's client sees its connection
/// closed (the channel is refused), and the refused channel leaves no relay buffer
/// behind on its session (`/status` `relay_buffers` back to 0; before, each refusal
/// left one registered for the session's life).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_forward_to_a_closed_local_port_refuses_the_channel() {
    within(TEST_LIMIT, "test", async {
        let sshd = Sshd::start().await;
        let target = refused_addr();
        let port = free_port();
        let mut cfg = GateConfig::new(&sshd).upstream_line(&format!(
            "remote_forwards = [{{ bind = \"127.0.0.1:{port}\", to = \"{target}\" }}]"
        ));
        cfg.extra_toml
            .push(crate::support::admin::ADMIN_TOML.into());
        let mut gate = Gate::start(&cfg).await;
        let admin = admin_addr(&mut gate).await;
        assert_eq!(
            nth_remote_listening(&mut gate, 1, Duration::from_secs(10)).await,
            Some(port),
            "{}",
            gate.log_text()
        );
        for _ in 0..3 {
            let how = read_end(SocketAddr::from(([127, 0, 0, 1], port))).await;
            eprintln!("connection to a remote forward with a closed target: {how}");
        }
        assert!(
            gate.wait_log(Duration::from_secs(5), |l| l
                .contains("remote forward: cannot connect to the target"))
                .await
                .is_some(),
            "{}",
            gate.log_text()
        );
        // The refusals are logged before the open failure goes out; give the
        // session a moment, then its buffers must all be gone.
        let started = Instant::now();
        let buffers = loop {
            let (_, json) = get(admin, "/status").await;
            let status: jumpgate::status::Status =
                serde_json::from_str(&json).expect("status JSON");
            let n: usize = status.upstreams[0]
                .sessions
                .iter()
                .map(|s| s.relay_buffers)
                .sum();
            if n == 0 || started.elapsed() > Duration::from_secs(5) {
                break n;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(
            buffers, 0,
            "three refused forwarded channels left relay buffers registered"
        );
    })
    .await;
}

/// sshd cannot listen on a port this test holds: with `exit_on_forward_failure = true`
/// jumpgate exits 1 and names the forward; without it, it logs the refusal, keeps
/// serving SOCKS, and establishes the forward once the port is free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_remote_forward_exits_or_is_retried() {
    within(TEST_LIMIT, "test", async {
        let sshd = Sshd::start().await;
        let echo = targets::echo().await;
        let taken = StdListener::bind("127.0.0.1:0").expect("bind a port to block");
        let port = taken.local_addr().expect("addr").port();
        let forward = format!(
            "remote_forwards = [{{ bind = \"127.0.0.1:{port}\", to = \"{}\" }}]",
            echo.addr()
        );

        let cfg = GateConfig::new(&sshd)
            .upstream_line("exit_on_forward_failure = true")
            .upstream_line(&forward);
        let mut gate = Gate::spawn(&cfg);
        let started = Instant::now();
        let status = loop {
            if let Some(s) = gate.exited() {
                break s;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "jumpgate still runs 20 s after its remote forward was refused:\n{}",
                gate.log_text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        tokio::time::sleep(Duration::from_millis(200)).await; // last log lines
        let log = gate.log_text();
        assert_eq!(status.code(), Some(1), "exit status {status}; log:\n{log}");
        if let Some(l) = log.lines().find(|l| l.contains("jumpgate: ")) {
            eprintln!("exit 1 with: {l}");
        }
        let want = format!("remote forward 127.0.0.1:{port} -> {}", echo.addr());
        assert!(
            log.contains(&want) && log.contains("refused to listen on"),
            "no `{want} ... refused to listen on` in:\n{log}"
        );

        // Without the option: logged, SOCKS keeps working, retried until it binds.
        let cfg = GateConfig::new(&sshd)
            .upstream_line(r#"reconnect = { initial = "100ms", max = "500ms" }"#)
            .upstream_line(&forward);
        let mut gate = Gate::start(&cfg).await;
        assert!(
            gate.wait_log(Duration::from_secs(10), |l| l
                .contains("remote forward refused"))
                .await
                .is_some(),
            "{}",
            gate.log_text()
        );
        gate.echo_roundtrip(echo.addr(), b"socks still works").await;
        assert!(gate.exited().is_none(), "exited:\n{}", gate.log_text());
        drop(taken);
        assert_eq!(
            nth_remote_listening(&mut gate, 1, Duration::from_secs(10)).await,
            Some(port),
            "not established within 10 s of the port becoming free:\n{}",
            gate.log_text()
        );
        let back = echo_exchange(SocketAddr::from(([127, 0, 0, 1], port)), b"late")
            .await
            .unwrap_or_else(|e| panic!("echo via the late forward: {e}\n{}", gate.log_text()));
        assert_eq!(back, b"late");
    })
    .await;
}

/// The PIDs of the processes that listen on 127.0.0.1:`port`, as `ss -ltnp` shows them.
pub(crate) fn listeners_of(port: u16) -> Vec<u32> {
    let out = std::process::Command::new("ss")
        .args(["-Hltnp", &format!("sport = :{port}")])
        .output()
        .expect("run ss (iproute2)");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut pids: Vec<u32> = text
        .split("pid=")
        .skip(1)
        .filter_map(|s| s.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok())
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// With two sessions, the one holding the remote forward dies (its sshd process is
/// killed, the other session and the sshd listener live on): the forward is requested
/// again on the surviving session at once, without waiting for a reconnect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_forward_moves_to_another_session_when_its_session_dies() {
    within(TEST_LIMIT, "test", async {
        let sshd = Sshd::start().await;
        let echo = targets::echo().await;
        let port = free_port();
        let cfg = GateConfig::new(&sshd)
            .upstream_line("sessions = { min = 2, max = 2 }")
            // A slow reconnect: the move must not wait for it.
            .upstream_line(r#"reconnect = { initial = "20s", max = "20s" }"#)
            .upstream_line(&format!(
                "remote_forwards = [{{ bind = \"127.0.0.1:{port}\", to = \"{}\" }}]",
                echo.addr()
            ));
        let mut gate = Gate::start(&cfg).await;
        assert_eq!(
            nth_remote_listening(&mut gate, 1, Duration::from_secs(10)).await,
            Some(port),
            "{}",
            gate.log_text()
        );
        crate::support::sshd_life::until(Duration::from_secs(10), "two sessions ready", || {
            gate.count_log(|l| l.contains("session ready")) >= 2
        })
        .await;
        let remote = SocketAddr::from(([127, 0, 0, 1], port));
        assert_eq!(
            echo_exchange(remote, b"first").await.expect("echo"),
            b"first"
        );

        // Only processes of our own sshd: the holder of the port and its monitor.
        let ours = crate::support::sshd_life::descendants(sshd_pid(&sshd));
        let holders: Vec<u32> = listeners_of(port)
            .into_iter()
            .filter(|p| ours.contains(p))
            .collect();
        assert!(
            !holders.is_empty(),
            "no process of our sshd listens on {port} (ss: {:?})",
            listeners_of(port)
        );
        let mut victims = holders.clone();
        for h in &holders {
            if let Some(parent) = crate::support::sshd_life::ppid_of(*h) {
                if parent != sshd_pid(&sshd) && ours.contains(&parent) {
                    victims.push(parent);
                }
            }
        }
        let _ = std::process::Command::new("kill")
            .arg("-KILL")
            .args(victims.iter().map(|p| p.to_string()))
            .status();
        let killed = Instant::now();
        assert_eq!(
            nth_remote_listening(&mut gate, 2, Duration::from_secs(5)).await,
            Some(port),
            "the forward did not move to the other session within 5 s:\n{}",
            gate.log_text()
        );
        let moved = killed.elapsed();
        let lines: Vec<String> = gate
            .log_text()
            .lines()
            .filter(|l| l.contains("remote forward listening"))
            .map(str::to_owned)
            .collect();
        let session = |l: &str| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("session="))
                .map(str::to_owned)
        };
        assert_ne!(
            session(&lines[0]),
            session(&lines[1]),
            "the forward was requested again on the same session: {lines:?}"
        );
        let back = echo_exchange(remote, b"moved")
            .await
            .unwrap_or_else(|e| panic!("echo after the move: {e}\n{}", gate.log_text()));
        assert_eq!(back, b"moved");
        eprintln!(
            "remote forward moved to the other session {moved:?} after its session's sshd \
             processes {victims:?} were killed"
        );
    })
    .await;
}
