//! Faults on a real network: a black-holed link, and a ProxyJump chain through
//! namespaces. Both run real sshds inside a network namespace the test creates
//! (198.18.0.0/15 addresses only). They need root, iproute2 and `tc`; without
//! them they fail and say so (`support::require`).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::support::live_echo::Echo;
use crate::support::netns::NetNs;
use crate::support::process::{run_for, run_ok, ChildGuard, Logs};
use crate::support::require;
use crate::support::socks;
use crate::support::{
    curl, is_session_lost, is_upstream_ready, wait_until, within, Gate, GateConfig, Sshd,
    SshdOptions,
};

const TEST_LIMIT: Duration = Duration::from_secs(150);

/// How long a helper command (tc, ip, ssh-keygen) may run.
const TOOL_LIMIT: Duration = Duration::from_secs(20);

/// Runs a short command synchronously with a deadline; Ok(stdout) or Err(stderr).
fn run_tool(program: &str, args: &[&str]) -> Result<String, String> {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    let started = Instant::now();
    // Bounded: TOOL_LIMIT / 10 ms polls at most.
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if started.elapsed() > TOOL_LIMIT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{program} {args:?} ran longer than {TOOL_LIMIT:?}"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(format!("waiting for {program}: {e}")),
        }
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

// === 1. A black-holed link ===

/// Makes every packet on the veth pair vanish (both directions, no RST, no ICMP), and
/// restores the link on `restore` or drop.
///
/// `tc qdisc ... netem loss 100%` when the kernel has netem; otherwise a `pfifo` qdisc
/// with `limit 0`, which drops every packet it is given (built into every kernel).
struct BlackHole {
    ns: String,
    host_dev: String,
    ns_dev: String,
    method: &'static str,
    active: bool,
}

const BLACK_HOLE_METHODS: &[(&str, &[&str])] = &[
    ("tc netem loss 100%", &["netem", "loss", "100%"]),
    ("tc pfifo limit 0", &["pfifo", "limit", "0"]),
];

impl BlackHole {
    /// The first method that this kernel supports, tried on both ends of the link.
    fn cut(ns: &NetNs, host_dev: &str, ns_dev: &str) -> Result<BlackHole, String> {
        let mut why = Vec::new();
        for (method, qdisc) in BLACK_HOLE_METHODS {
            let mut host_args = vec!["qdisc", "add", "dev", host_dev, "root"];
            host_args.extend_from_slice(qdisc);
            if let Err(e) = run_tool("tc", &host_args) {
                why.push(format!("{method}: {e}"));
                continue;
            }
            let mut ns_args = vec!["-n", ns.name(), "qdisc", "add", "dev", ns_dev, "root"];
            ns_args.extend_from_slice(qdisc);
            if let Err(e) = run_tool("tc", &ns_args) {
                let _ = run_tool("tc", &["qdisc", "del", "dev", host_dev, "root"]);
                why.push(format!("{method} (namespace side): {e}"));
                continue;
            }
            return Ok(BlackHole {
                ns: ns.name().to_string(),
                host_dev: host_dev.to_string(),
                ns_dev: ns_dev.to_string(),
                method,
                active: true,
            });
        }
        Err(why.join("; "))
    }

    fn restore(&mut self) -> Result<(), String> {
        self.active = false;
        let a = run_tool("tc", &["qdisc", "del", "dev", &self.host_dev, "root"]);
        let b = run_tool(
            "tc",
            &["-n", &self.ns, "qdisc", "del", "dev", &self.ns_dev, "root"],
        );
        a.and(b).map(|_| ())
    }
}

impl Drop for BlackHole {
    fn drop(&mut self) {
        if self.active {
            let _ = self.restore();
        }
    }
}

/// The device that carries `ip` (`ip -o -4 addr show to IP/32`), in `ns` or on the host.
fn device_with(ns: Option<&str>, ip: Ipv4Addr) -> String {
    let target = format!("{ip}/32");
    let mut args = Vec::new();
    if let Some(ns) = ns {
        args.extend(["-n", ns]);
    }
    args.extend(["-o", "-4", "addr", "show", "to", &target]);
    let out = run_tool("ip", &args).unwrap_or_else(|e| panic!("ip addr show: {e}"));
    // "5: jg123h0    inet 198.18.1.1/30 scope global jg123h0 ..."
    out.split_whitespace()
        .nth(1)
        .map(|d| d.split('@').next().unwrap_or(d).to_string())
        .unwrap_or_else(|| panic!("no device has {ip} ({ns:?}): {out:?}"))
}

/// Keepalive 1 s x 2: a silent link must be declared dead within 2 s (+1 s slack, the
/// issue's bound), then the pool must come back once the link returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn black_holed_link_is_detected_and_recovered() {
    require::netns();
    require::on_path(&["tc"], "iproute2");
    within(TEST_LIMIT, "test", async {
        // Dropped in reverse order: black hole, gate, echo, sshd, then the namespace.
        let ns = NetNs::create(&[]).unwrap_or_else(|e| panic!("create network namespace: {e:#}"));
        // The host's end of the veth pair is the namespace's address minus one (/30).
        let host_ip = Ipv4Addr::from(u32::from(ns.ns_ip()) - 1);
        let host_dev = device_with(None, host_ip);
        let ns_dev = device_with(Some(ns.name()), ns.ns_ip());
        let sshd = Sshd::start_with(SshdOptions {
            netns: Some((ns.name().to_string(), ns.ns_ip())),
            ..SshdOptions::default()
        })
        .await;
        // The target is on the host's end of the link, so tunnels cross the veth twice.
        let echo = Echo::start(SocketAddr::from((host_ip, 0))).await;
        let cfg = GateConfig::new(&sshd)
            .upstream_line("keepalive = { interval = \"1s\", count_max = 2 }")
            .upstream_line("reconnect = { initial = \"100ms\", max = \"500ms\" }")
            .upstream_line("connect_timeout = \"2s\"")
            .connect_timeout("2s");
        let mut gate = Gate::start(&cfg).await;
        gate.echo_roundtrip(echo.addr(), b"before the black hole")
            .await;
        assert_eq!(gate.count_log(is_session_lost), 0, "{}", gate.log_text());

        // Packets vanish from here on; the clock starts before the first tc runs.
        let cut_at = Instant::now();
        let mut hole = match BlackHole::cut(&ns, &host_dev, &ns_dev) {
            Ok(h) => h,
            Err(why) => require::missing(
                &format!("cannot black-hole a veth with tc: {why}"),
                "run as root with iproute2's tc on a kernel with the netem or pfifo qdisc",
            ),
        };
        let lost = gate
            .wait_log(Duration::from_secs(15), is_session_lost)
            .await;
        let detected = cut_at.elapsed();
        eprintln!(
            "black hole by {}: session lost after {detected:?}",
            hole.method
        );
        assert!(
            lost.is_some(),
            "no `session lost` within 15 s of black-holing the link ({}); gate log:\n{}",
            hole.method,
            gate.log_text()
        );
        // interval x count_max = 2 s, +1 s.
        assert!(
            detected <= Duration::from_secs(3),
            "the dead session was detected after {detected:?}, want <= 3 s ({}); gate log:\n{}",
            hole.method,
            gate.log_text()
        );
        // Not an instant error: the packets really vanished (no RST, no ICMP), so only
        // the keepalives can have found it, after at least one silent interval.
        assert!(
            detected >= Duration::from_millis(800),
            "the session died {detected:?} after the cut: faster than one keepalive \
             interval, so something answered; gate log:\n{}",
            gate.log_text()
        );

        // While the link is dead a CONNECT waits for a session, then answers 0x04.
        let t = Instant::now();
        let code = gate.reply_code(socks::CONNECT, &echo.addr().into()).await;
        let waited = t.elapsed();
        assert_eq!(
            code,
            socks::HOST_UNREACHABLE,
            "CONNECT while the link is black-holed; gate log:\n{}",
            gate.log_text()
        );
        assert!(
            waited <= Duration::from_millis(3500),
            "CONNECT without a session took {waited:?} (listener connect_timeout 2 s)"
        );

        // Restore: a new session within one dial (connect_timeout 2 s) plus the
        // largest backoff (0.5 s) plus a handshake, generously 6 s.
        hole.restore()
            .unwrap_or_else(|e| panic!("restore the link: {e}"));
        let restored_at = Instant::now();
        let ready_again = wait_until(Duration::from_secs(20), || {
            gate.count_log(is_upstream_ready) >= 2
        })
        .await;
        let recovery = restored_at.elapsed();
        eprintln!("upstream ready again {recovery:?} after the link returned");
        assert!(
            ready_again,
            "no second `upstream ready` within 20 s of restoring the link; gate log:\n{}",
            gate.log_text()
        );
        assert!(
            recovery <= Duration::from_secs(6),
            "the pool took {recovery:?} to recover (want <= 6 s); gate log:\n{}",
            gate.log_text()
        );
        let t = Instant::now();
        within(
            Duration::from_secs(5),
            "CONNECT and round trip after recovery",
            gate.echo_roundtrip(echo.addr(), b"after the black hole"),
        )
        .await;
        eprintln!("round trip after recovery took {:?}", t.elapsed());
        assert!(
            gate.exited().is_none(),
            "jumpgate exited; log:\n{}",
            gate.log_text()
        );
    })
    .await;
}

// === 2. A two-hop ProxyJump chain ===

/// An OpenSSH sshd inside a namespace on an address that only the namespace can reach
/// (so readiness comes from its log, not from a probe of ours). It authorizes one
/// public key.
struct HiddenSshd {
    dir: TempDir,
    host_pub: String,
    log: PathBuf,
    _child: ChildGuard,
}

impl HiddenSshd {
    async fn start(ns: &NetNs, addr: Ipv4Addr, authorized_pub: &str) -> HiddenSshd {
        let dir = tempfile::Builder::new()
            .prefix("jg-sshd2-")
            .tempdir()
            .expect("create sshd temp dir");
        let host_key = dir.path().join("ssh_host_ed25519_key");
        run_ok(
            Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C", "jumpgate-test", "-f"])
                .arg(&host_key),
            TOOL_LIMIT,
        );
        let host_pub = std::fs::read_to_string(dir.path().join("ssh_host_ed25519_key.pub"))
            .expect("read host key .pub")
            .trim()
            .to_string();
        std::fs::write(
            dir.path().join("authorized_keys"),
            format!("{authorized_pub}\n"),
        )
        .expect("write authorized_keys");
        let d = dir.path().display();
        let config = dir.path().join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "ListenAddress {addr}\nPort 22\nHostKey {d}/ssh_host_ed25519_key\n\
                 AuthorizedKeysFile {d}/authorized_keys\nPidFile {d}/sshd.pid\n\
                 UsePAM no\nStrictModes no\nAllowTcpForwarding yes\n\
                 PermitRootLogin prohibit-password\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nLogLevel VERBOSE\n\
                 ClientAliveInterval 5\nClientAliveCountMax 3\n"
            ),
        )
        .expect("write sshd_config");
        std::fs::create_dir_all("/run/sshd").expect("create /run/sshd");
        let log = dir.path().join("sshd.log");
        let logfile = std::fs::File::create(&log).expect("create sshd.log");
        let mut cmd = ns.command(crate::support::sshd::SSHD);
        cmd.arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(logfile);
        let mut child = ChildGuard::spawn("sshd (hidden)", &mut cmd);
        let listening = format!("Server listening on {addr} port 22");
        let started = Instant::now();
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains(&listening) {
                break;
            }
            if let Some(status) = child.exited() {
                panic!("hidden sshd exited ({status}):\n{text}");
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "hidden sshd did not log `{listening}` within 10 s:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        HiddenSshd {
            dir,
            host_pub,
            log,
            _child: child,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// `python3 -m http.server` inside the namespace on `addr`, serving a page with `token`;
/// ready when the namespace itself can fetch it.
struct NsWeb {
    _dir: TempDir,
    _child: ChildGuard,
}

impl NsWeb {
    async fn start(ns: &NetNs, addr: Ipv4Addr, port: u16, token: &str) -> NsWeb {
        let dir = tempfile::Builder::new()
            .prefix("jg-www-")
            .tempdir()
            .expect("temp dir");
        std::fs::write(
            dir.path().join("index.html"),
            format!("<!doctype html><title>behind two hops</title><p>{token}</p>\n"),
        )
        .expect("write index.html");
        let mut cmd = ns.command("python3");
        cmd.args(["-u", "-m", "http.server", &port.to_string(), "--bind"])
            .arg(addr.to_string())
            .arg("--directory")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = ChildGuard::spawn("python3 http.server", &mut cmd);
        let logs = Logs::default();
        if let Some(p) = child.take_stdout() {
            logs.pump("ns http", p);
        }
        if let Some(p) = child.take_stderr() {
            logs.pump("ns http", p);
        }
        let url = format!("http://{addr}:{port}/");
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
        NsWeb {
            _dir: dir,
            _child: child,
        }
    }
}

const HIDDEN_NAME: &str = "hidden.faults.jumpgate.test";
const HIDDEN_HTTP_PORT: u16 = 8081;

/// sshd #1 on the namespace's veth address (reachable from the host), sshd #2 on the
/// namespace's intranet address (unreachable from the host), the page on that address
/// too. The gate reaches the page only through both hops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hop_proxy_jump_reaches_a_host_only_the_first_can_see() {
    require::netns();
    within(TEST_LIMIT, "test", async {
        let ns = NetNs::create(&[HIDDEN_NAME])
            .unwrap_or_else(|e| panic!("create network namespace: {e:#}"));
        let host_ip = Ipv4Addr::from(u32::from(ns.ns_ip()) - 1);
        let hidden = ns.intranet_ip();
        let sshd1 = Sshd::start_with(SshdOptions {
            netns: Some((ns.name().to_string(), ns.ns_ip())),
            ..SshdOptions::default()
        })
        .await;
        // sshd #2 lets in the same client key as sshd #1.
        let client_pub = std::fs::read_to_string(sshd1.client_key().with_extension("pub"))
            .expect("read client .pub");
        let sshd2 = HiddenSshd::start(&ns, hidden, client_pub.trim()).await;
        let token = format!("two-hops-{}-{}", std::process::id(), ns.name());
        let _web = NsWeb::start(&ns, hidden, HIDDEN_HTTP_PORT, &token).await;

        // The host cannot reach sshd #2 (nor the page) itself.
        for port in [22, HIDDEN_HTTP_PORT] {
            let direct = std::net::TcpStream::connect_timeout(
                &SocketAddr::from((hidden, port)),
                Duration::from_secs(2),
            );
            assert!(
                direct.is_err(),
                "the host reached {hidden}:{port} directly; the test proves nothing"
            );
        }

        // known_hosts with both host keys (port 22: the bare address, as ssh writes it).
        let known_hosts = sshd2.dir().join("known_hosts.both");
        let first = std::fs::read_to_string(sshd1.known_hosts()).expect("read known_hosts");
        std::fs::write(
            &known_hosts,
            format!("{}{hidden} {}\n", first, sshd2.host_pub),
        )
        .expect("write known_hosts");
        let mut cfg = GateConfig::new(&sshd1)
            .proxy_jump(&[format!("{}@{}:{}", sshd1.user(), ns.ns_ip(), sshd1.port())])
            .known_hosts(Some(&known_hosts));
        cfg.host = hidden.to_string();
        cfg.port = 22;
        let mut gate = Gate::start(&cfg).await;
        // Logged just after `upstream ready`, so it may still be in the pipe.
        let want = format!("{hidden}:22 (via {}:22)", ns.ns_ip());
        let ready = gate
            .wait_log(Duration::from_secs(5), |l| {
                l.contains("session ready") && l.contains(&want)
            })
            .await;
        assert!(
            ready.is_some(),
            "no `session ready` naming {want}; gate log:\n{}",
            gate.log_text()
        );

        // By name, resolved by sshd #2 inside the namespace.
        let url = format!("http://{HIDDEN_NAME}:{HIDDEN_HTTP_PORT}/");
        let got = curl(gate.dir(), "--socks5-hostname", gate.socks_addr(), &url).await;
        assert_eq!(
            got.code,
            0,
            "curl failed: {}\ngate log:\n{}\nsshd #1 log:\n{}\nsshd #2 log:\n{}",
            got.stderr,
            gate.log_text(),
            sshd1.log(),
            sshd2.log()
        );
        assert!(got.body.contains(&token), "wrong page: {}", got.body);

        // The chain was used: sshd #1 saw the gate (from the host's veth address),
        // sshd #2 saw a login from inside the namespace (never from the host).
        let user = sshd1.user();
        assert!(
            sshd1
                .log()
                .contains(&format!("Accepted publickey for {user} from {host_ip} ")),
            "sshd #1 has no login from {host_ip}:\n{}",
            sshd1.log()
        );
        let log2 = sshd2.log();
        let login2 = log2
            .lines()
            .find(|l| l.contains(&format!("Accepted publickey for {user} from ")))
            .unwrap_or_else(|| panic!("sshd #2 has no login:\n{log2}"));
        eprintln!("sshd #2: {login2}");
        // sshd #1 connects from inside the namespace: the source is the local address
        // that routes to sshd #2 (the intranet address itself, on lo).
        assert!(
            login2.contains(&format!("from {hidden} ")),
            "sshd #2's login did not come from inside the namespace: {login2}"
        );
        drop(gate);

        // Every hop's host key is checked: without sshd #2's key the chain stops there.
        let mut cfg_unknown = cfg.clone();
        cfg_unknown.known_hosts = Some(sshd1.known_hosts().to_path_buf());
        let mut gate = Gate::start_unready(&cfg_unknown).await;
        let err = gate
            .wait_log(Duration::from_secs(15), |l| {
                l.contains("cannot open SSH session") && l.contains("is not known")
            })
            .await;
        let err = err.unwrap_or_else(|| {
            panic!(
                "no host key error for the second hop within 15 s; gate log:\n{}",
                gate.log_text()
            )
        });
        assert!(
            err.contains(&format!("host key for {hidden} is not known")),
            "the host key error does not name the second hop {hidden}: {err}"
        );
        assert_eq!(
            gate.count_log(is_upstream_ready),
            0,
            "ready despite an unknown second-hop key; gate log:\n{}",
            gate.log_text()
        );
    })
    .await;
}
