//! The reason jumpgate exists: a private network behind a bastion. The jump host's
//! sshd runs in a network namespace with an intranet address the host cannot reach and
//! a name only the namespace can resolve; curl reaches it by name through the gate.
//!
//! Needs root and iproute2; without them the test fails and says so
//! (`support::require`).

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::netns::NetNs;
use crate::support::process::{offline_command, run_for, ChildGuard, Logs};
use crate::support::require;
use crate::support::{curl, within, Gate, GateConfig, Sshd, SshdOptions};

const INTRANET_NAME: &str = "intranet.jumpgate.test";
const HTTP_PORT: u16 = 8080;

/// `python3 -m http.server` inside the namespace, on the intranet address.
struct IntranetWeb {
    _dir: tempfile::TempDir,
    _child: ChildGuard,
}

impl IntranetWeb {
    async fn start(ns: &NetNs, token: &str) -> IntranetWeb {
        let dir = tempfile::Builder::new()
            .prefix("jg-www-")
            .tempdir()
            .expect("temp dir");
        std::fs::write(
            dir.path().join("index.html"),
            format!("<!doctype html><title>intranet</title><p>{token}</p>\n"),
        )
        .expect("write index.html");
        let mut cmd = ns.command("python3");
        cmd.args(["-u", "-m", "http.server", &HTTP_PORT.to_string(), "--bind"])
            .arg(ns.intranet_ip().to_string())
            .arg("--directory")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = ChildGuard::spawn("python3 http.server", &mut cmd);
        let logs = Logs::default();
        if let Some(p) = child.take_stdout() {
            logs.pump("intranet http", p);
        }
        if let Some(p) = child.take_stderr() {
            logs.pump("intranet http", p);
        }
        // Ready when it serves the page inside its own namespace.
        let url = format!("http://{INTRANET_NAME}:{HTTP_PORT}/");
        let started = Instant::now();
        loop {
            let mut probe = tokio::process::Command::from({
                let mut c = ns.command("curl");
                c.args(["-sS", "--max-time", "2", &url]);
                c
            });
            let out = run_for(&mut probe, Duration::from_secs(10)).await;
            if out.status.success() && String::from_utf8_lossy(&out.stdout).contains(token) {
                break;
            }
            assert!(
                child.exited().is_none(),
                "http.server exited:\n{}",
                logs.text()
            );
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "http.server in the namespace not ready within 20 s:\n{}",
                logs.text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        IntranetWeb {
            _dir: dir,
            _child: child,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_name_behind_the_jump_host_resolves_only_there() {
    require::netns();
    within(Duration::from_secs(180), "test", async {
        // Dropped in reverse order: gate, web server, sshd, then the namespace.
        let ns = NetNs::create(&[INTRANET_NAME])
            .unwrap_or_else(|e| panic!("create network namespace: {e:#}"));
        let sshd = Sshd::start_with(SshdOptions {
            netns: Some((ns.name().to_string(), ns.ns_ip())),
            ..SshdOptions::default()
        })
        .await;
        let token = format!("intranet-token-{}-{}", std::process::id(), ns.name());
        let _web = IntranetWeb::start(&ns, &token).await;
        let gate = Gate::start(&GateConfig::new(&sshd)).await;

        // Through the gate, by name: resolved and reached on the jump side.
        let url = format!("http://{INTRANET_NAME}:{HTTP_PORT}/");
        let got = curl(gate.dir(), "--socks5-hostname", gate.socks_addr(), &url).await;
        assert_eq!(
            got.code,
            0,
            "curl failed: {}\ngate log:\n{}\nsshd log:\n{}",
            got.stderr,
            gate.log_text(),
            sshd.log()
        );
        assert!(got.body.contains(&token), "wrong page: {}", got.body);

        // The host itself cannot resolve the name ...
        let out = run_for(
            &mut tokio::process::Command::from({
                let mut c = offline_command(gate.dir(), "getent");
                c.args(["hosts", INTRANET_NAME]);
                c
            }),
            Duration::from_secs(10),
        )
        .await;
        assert!(
            !out.status.success(),
            "the host resolves {INTRANET_NAME}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        // ... so local resolution (`--socks5`) fails, before anything is sent.
        let local = curl(gate.dir(), "--socks5", gate.socks_addr(), &url).await;
        // curl 7.88: "curl: (97) Could not resolve host: intranet.jumpgate.test"
        assert!(
            local.code != 0 && local.stderr.contains("Could not resolve host"),
            "curl --socks5 should fail to resolve the name locally: {local:?}"
        );
        // And the intranet address is unreachable from the host (the route says so).
        let direct = std::net::TcpStream::connect_timeout(
            &(ns.intranet_ip(), HTTP_PORT).into(),
            Duration::from_secs(2),
        );
        assert!(
            direct.is_err(),
            "the host reached the intranet address directly"
        );
    })
    .await;
}
