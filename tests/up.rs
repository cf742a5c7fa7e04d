//! `jumpgate up` end to end, as a CI job would use it: ssh's flags against a
//! real sshd, curl through the SOCKS5 port, `-J` through two sshd with the
//! hops' names, ports, users and keys taken from an ssh_config, readiness
//! by `--ready-file`, a clean exit on SIGTERM; and the errors: bad flags
//! (exit 2) and bad config lines (exit 78) reported as ssh reports them;
//! and a TOML upstream taken from ssh_config (`ssh_config =`, `host =`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::ssh_config::Home;
use crate::support::gate::{parse_addr, JUMPGATE};
use crate::support::process::{offline_command, ChildGuard, Logs};
use crate::support::{curl, free_port, targets, within, CertAuthority, KeyKind, Sshd, SshdOptions};

const LIMIT: Duration = Duration::from_secs(60);

/// A running `jumpgate up`, killed on drop.
struct Up {
    dir: tempfile::TempDir,
    logs: Logs,
    child: ChildGuard,
}

impl Up {
    /// Runs `jumpgate up ARGS` in `dir` (which holds the ready file).
    fn spawn(dir: tempfile::TempDir, args: &[String]) -> Up {
        Up::spawn_sub(dir, "up", args)
    }

    fn spawn_sub(dir: tempfile::TempDir, sub: &str, args: &[String]) -> Up {
        let mut cmd = offline_command(dir.path(), JUMPGATE);
        cmd.arg(sub).args(args).current_dir(dir.path());
        Up::spawn_cmd(dir, cmd)
    }

    /// Runs `cmd` (jumpgate with its arguments), logs captured.
    fn spawn_cmd(dir: tempfile::TempDir, mut cmd: Command) -> Up {
        cmd.env("NO_COLOR", "1")
            .env("RUST_LOG", "info")
            .env_remove("SSH_AUTH_SOCK")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = ChildGuard::spawn("jumpgate up", &mut cmd);
        let logs = Logs::default();
        if let Some(out) = child.take_stdout() {
            logs.pump("up stdout", out);
        }
        if let Some(err) = child.take_stderr() {
            logs.pump("up", err);
        }
        Up { dir, logs, child }
    }

    fn ready_file(&self) -> PathBuf {
        self.dir.path().join("ready")
    }

    /// Waits for the ready file; returns the SOCKS5 address in it.
    async fn wait_ready(&mut self) -> SocketAddr {
        let started = Instant::now();
        loop {
            if let Ok(text) = std::fs::read_to_string(self.ready_file()) {
                let addr = text
                    .lines()
                    .find_map(|l| l.strip_prefix("socks5 "))
                    .and_then(|a| a.parse().ok());
                match addr {
                    Some(a) => return a,
                    None => panic!("ready file without `socks5 ADDR`: {text:?}"),
                }
            }
            if let Some(status) = self.child.exited() {
                tokio::time::sleep(Duration::from_millis(200)).await;
                panic!(
                    "jumpgate up exited ({status}) before ready:\n{}",
                    self.logs.text()
                );
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "no ready file within 20 s:\n{}",
                self.logs.text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGTERM (by our child's PID) and the exit code.
    async fn terminate(&mut self) -> Option<i32> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
        let started = Instant::now();
        loop {
            if let Some(s) = self.child.exited() {
                return s.code();
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "jumpgate up did not stop after SIGTERM:\n{}",
                self.logs.text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn s(v: &str) -> String {
    v.to_string()
}

fn p(v: &Path) -> String {
    v.display().to_string()
}

/// The flags that point jumpgate at a test sshd without any ssh_config.
fn direct_args(sshd: &Sshd, socks_port: u16, ready: &Path) -> Vec<String> {
    vec![
        s("-F"),
        s("none"),
        s("-N"),
        format!("-D127.0.0.1:{socks_port}"),
        s("-p"),
        sshd.port().to_string(),
        s("-i"),
        p(sshd.client_key()),
        s("-o"),
        format!("UserKnownHostsFile={}", sshd.known_hosts().display()),
        s("-oStrictHostKeyChecking=yes"),
        s("--ready-file"),
        p(ready),
        format!("{}@{}", sshd.user(), sshd.host()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_dash_d_serves_socks_and_signals_readiness() {
    within(LIMIT, "up -D", async {
        let sshd = Sshd::start().await;
        let web = targets::http("hello through jumpgate up".into()).await;
        let port = free_port();
        let dir = tempfile::tempdir().expect("tempdir");
        let ready = dir.path().join("ready");
        let args = direct_args(&sshd, port, &ready);
        let mut up = Up::spawn(dir, &args);
        let addr = up.wait_ready().await;
        assert_eq!(addr, SocketAddr::from(([127, 0, 0, 1], port)));
        let line = up
            .logs
            .find(|l| l.contains("jumpgate up: ready: socks5 "))
            .unwrap_or_else(|| panic!("no ready line on stderr:\n{}", up.logs.text()));
        assert!(line.contains(&format!("127.0.0.1:{port}")), "{line}");
        // By name, resolved on the jump host (curl sends the name).
        let url = format!("http://localhost:{}/", web.port());
        let got = curl(up.dir.path(), "--socks5-hostname", addr, &url).await;
        assert_eq!(got.code, 0, "curl: {}\n{}", got.stderr, up.logs.text());
        assert_eq!(got.body, "hello through jumpgate up");
        // ssh logs in once: the first login's session is the one the pool
        // serves with, not checked, closed and dialed again.
        assert_eq!(sshd.logins(), 1, "sshd log:\n{}", sshd.log());
        assert_eq!(up.terminate().await, Some(0), "{}", up.logs.text());
        assert!(
            !up.ready_file().exists(),
            "the ready file outlived the process"
        );
    })
    .await;
}

/// The promise: `ssh -N -D PORT -J outer target` becomes `jumpgate up -D
/// PORT -J outer target` with the user's own ~/.ssh/config and ~/.ssh/known_hosts
/// (no -F: the home comes from the password database, as for ssh; an isolated one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_dash_j_goes_through_two_sshd_named_in_ssh_config() {
    within(LIMIT, "up -J", async {
        // The target is reachable only through the inner sshd: the outer one
        // may open channels to the inner sshd and nowhere else.
        let inner = Sshd::start().await;
        let outer = Sshd::start_with(SshdOptions {
            permit_open: Some(format!("127.0.0.1:{}", inner.port())),
            ..SshdOptions::default()
        })
        .await;
        let web = targets::http("two hops".into()).await;
        let home = Home::new();
        let both = std::fs::read_to_string(outer.known_hosts()).expect("read")
            + &std::fs::read_to_string(inner.known_hosts()).expect("read");
        home.write("home/.ssh/known_hosts", &both);
        // Each sshd only knows its own client key: the hop's key comes from
        // the hop's Host block, the target's from the target's.
        home.write(
            "home/.ssh/config",
            &format!(
                "Host outer\n  HostName 127.0.0.1\n  Port {}\n  IdentityFile {}\n\
                 Host target\n  HostName 127.0.0.1\n  Port {}\n  IdentityFile {}\n\
                 Host *\n  User {}\n  IdentitiesOnly yes\n  ServerAliveInterval 5\n",
                outer.port(),
                outer.client_key().display(),
                inner.port(),
                inner.client_key().display(),
                inner.user(),
            ),
        );
        // The same command line works for ssh itself (checked with -G).
        let port = free_port();
        let line = |extra: &[String]| -> Vec<String> {
            let mut v = vec![s("-N"), s("-D"), port.to_string(), s("-J"), s("outer")];
            v.extend(extra.iter().cloned());
            v.push(s("target"));
            v
        };
        let ssh_g = home
            .std_command("ssh", &[&[s("-G")][..], &line(&[])].concat())
            .output()
            .expect("ssh -G");
        assert!(
            ssh_g.status.success(),
            "{}",
            String::from_utf8_lossy(&ssh_g.stderr)
        );
        let ready = home.root().join("ready");
        let mut args = vec![s("up")];
        args.extend(line(&[s("--ready-file"), p(&ready)]));
        let cmd = home.std_command(JUMPGATE, &args);
        let dir = tempfile::tempdir().expect("tempdir");
        let mut up = Up::spawn_cmd(dir, cmd);
        let addr = wait_file(&mut up, &ready).await;
        let url = format!("http://127.0.0.1:{}/", web.port());
        let got = curl(up.dir.path(), "--socks5-hostname", addr, &url).await;
        assert_eq!(
            got.code,
            0,
            "curl: {}\nup:\n{}\nouter:\n{}\ninner:\n{}",
            got.stderr,
            up.logs.text(),
            outer.log(),
            inner.log()
        );
        assert_eq!(got.body, "two hops");
        // One login per hop, as ssh: the first login's session is kept.
        assert_eq!(outer.logins(), 1, "outer sshd log:\n{}", outer.log());
        assert_eq!(inner.logins(), 1, "inner sshd log:\n{}", inner.log());
        assert_eq!(up.terminate().await, Some(0), "{}", up.logs.text());
        assert!(!ready.exists(), "the ready file outlived the process");
    })
    .await;
}

/// Waits for `ready` to name a SOCKS5 address.
async fn wait_file(up: &mut Up, ready: &Path) -> SocketAddr {
    let started = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(ready) {
            if let Some(a) = text.lines().find_map(|l| l.strip_prefix("socks5 ")) {
                return a.parse().expect("socks5 address");
            }
        }
        if let Some(status) = up.child.exited() {
            tokio::time::sleep(Duration::from_millis(200)).await;
            panic!(
                "jumpgate up exited ({status}) before ready:\n{}",
                up.logs.text()
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no ready file within 20 s:\n{}",
            up.logs.text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn toml_upstream_from_ssh_config_alias() {
    within(LIMIT, "run with ssh_config", async {
        let sshd = Sshd::start().await;
        let web = targets::http("via ssh_config".into()).await;
        let dir = tempfile::tempdir().expect("tempdir");
        let sc = dir.path().join("ssh_config");
        std::fs::write(
            &sc,
            format!(
                "Host jump-alias\n  HostName {}\n  Port {}\n  User {}\n  IdentityFile {}\n\
                 \x20 UserKnownHostsFile {}\n  StrictHostKeyChecking yes\n",
                sshd.host(),
                sshd.port(),
                sshd.user(),
                sshd.client_key().display(),
                sshd.known_hosts().display()
            ),
        )
        .expect("write ssh_config");
        let toml = dir.path().join("jumpgate.toml");
        std::fs::write(
            &toml,
            format!(
                "[[upstream]]\nname = \"corp\"\nssh_config = \"{}\"\nhost = \"jump-alias\"\n\n\
                 [[listener]]\nname = \"socks\"\nbind = \"127.0.0.1:0\"\n",
                sc.display()
            ),
        )
        .expect("write toml");
        let args = vec![s("-c"), p(&toml)];
        let mut up = Up::spawn_sub(dir, "run", &args);
        let started = Instant::now();
        let addr = loop {
            let ready = up.logs.find(|l| l.contains("upstream ready"));
            let listening = up
                .logs
                .find(|l| l.contains("listening") && parse_addr(l).is_some());
            if let (Some(_), Some(l)) = (ready, listening) {
                break parse_addr(&l).expect("addr");
            }
            if up.child.exited().is_some() || started.elapsed() > Duration::from_secs(20) {
                panic!("jumpgate run did not become ready:\n{}", up.logs.text());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let url = format!("http://localhost:{}/", web.port());
        let got = curl(up.dir.path(), "--socks5-hostname", addr, &url).await;
        assert_eq!(got.code, 0, "curl: {}\n{}", got.stderr, up.logs.text());
        assert_eq!(got.body, "via ssh_config");
        assert!(sshd.logins() >= 1, "sshd log:\n{}", sshd.log());
    })
    .await;
}

/// `jumpgate up ARGS` run to its exit (bounded), in `dir`.
async fn up_exit(dir: &Path, args: &[String]) -> (Option<i32>, String) {
    let mut cmd = tokio::process::Command::from(offline_command(dir, JUMPGATE));
    cmd.arg("up")
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("SSH_AUTH_SOCK")
        .current_dir(dir);
    let out = crate::support::process::run_for(&mut cmd, Duration::from_secs(30)).await;
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_flags_exit_2_with_ssh_wording() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases: &[(&[&str], &str)] = &[
        (
            &["-D", "abc", "h"],
            "Bad dynamic forwarding specification 'abc'",
        ),
        (
            &["-L", "8080", "h"],
            "Bad local forwarding specification '8080'",
        ),
        (&["-p", "70000", "h"], "Bad port '70000'"),
        (&["-o", "Port=x", "h"], "command-line line 0: Bad port 'x'."),
        (
            &["-o", "Frobnicate=1", "h"],
            "command-line: line 0: Bad configuration option: frobnicate",
        ),
        (
            &["-J", "a", "-J", "b", "h"],
            "Only a single -J option is permitted",
        ),
        (&["-Z", "h"], "unknown option -- Z"),
        (&["-D"], "option requires an argument -- D"),
        (&["-D", "1080"], "no destination given"),
        (&["-D", "1080", "h", "uptime"], "runs no remote command"),
    ];
    for (args, want) in cases {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let (code, err) = up_exit(dir.path(), &args).await;
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: want {want:?} in:\n{err}");
        assert!(
            err.contains("usage: jumpgate up"),
            "{args:?}: no usage line:\n{err}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_config_lines_exit_78_and_read_like_ssh() {
    let dir = tempfile::tempdir().expect("tempdir");
    let configs = [
        "Host *\n  LocalForward 14 h:1 extra\n  Port abc\n  Compression maybe\n  ServerAliveCountMax x\n",
        "Host a\n  Ciphers bogus-cipher\nHost *\n  ConnectTimeout 5q\n  DynamicForward 0\n  RemoteForward\n",
        "Match all host x\n  User y\nHost *\n  User \"unterminated\n  ProxyJump a,@b\n  LocalForward 1\n",
        // An unknown keyword is only a warning, until the file has a bad
        // line: then ssh counts it among them.
        "Bogus x\nHost *\n  Port abc\n  AlsoBogus y\n",
    ];
    for (i, text) in configs.iter().enumerate() {
        let file = dir.path().join(format!("bad{i}.conf"));
        std::fs::write(&file, text).expect("write");
        let out = Command::new("ssh")
            .args(["-G", "-F"])
            .arg(&file)
            .arg("h")
            .output()
            .expect("run ssh -G");
        let ssh_err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(255), "ssh accepted {text:?}");
        let shown = file.display().to_string();
        let ssh_lines: Vec<&str> = ssh_err.lines().filter(|l| l.starts_with(&shown)).collect();
        assert!(ssh_lines.len() >= 3, "ssh said: {ssh_err}");
        for mode in [&["-G"][..], &["-D", "1080"][..]] {
            let mut args: Vec<String> = mode.iter().map(|a| a.to_string()).collect();
            args.extend([s("-F"), p(&file), s("h")]);
            let (code, err) = up_exit(dir.path(), &args).await;
            assert_eq!(code, Some(78), "{args:?}: {err}");
            for line in &ssh_lines {
                assert!(
                    err.lines().any(|l| l == *line),
                    "{args:?}: ssh's line {line:?} is missing from:\n{err}"
                );
            }
        }
    }
    // A config file that is not there.
    let (code, err) = up_exit(dir.path(), &[s("-F"), s("/no/such/config"), s("h")]).await;
    assert_eq!(code, Some(78), "{err}");
    assert!(
        err.contains(
            "jumpgate up: Can't open user config file /no/such/config: No such file or directory"
        ),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_up_cannot_do_fails_with_78() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases: &[(&[&str], &str)] = &[
        (&["-F", "none", "h"], "nothing to serve: give -D"),
        (
            &["-F", "none", "-D", "myhost:1080", "h"],
            "must be an IP address",
        ),
    ];
    for (args, want) in cases {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let (code, err) = up_exit(dir.path(), &args).await;
        assert_eq!(code, Some(78), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: want {want:?} in:\n{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_host_key_and_wrong_key_fail_at_once() {
    within(LIMIT, "up login failures", async {
        let sshd = Sshd::start().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port().to_string();
        let base = |kh: &Path, key: &Path| {
            vec![
                s("-F"),
                s("none"),
                s("-D"),
                port.clone(),
                s("-p"),
                sshd.port().to_string(),
                s("-i"),
                p(key),
                s("-o"),
                format!("UserKnownHostsFile={}", kh.display()),
                format!("{}@{}", sshd.user(), sshd.host()),
            ]
        };
        let empty = sshd.empty_known_hosts();
        let (code, err) = up_exit(dir.path(), &base(&empty, sshd.client_key())).await;
        assert_eq!(code, Some(78), "{err}");
        assert!(err.contains(&sshd.host_key_fingerprint()), "{err}");
        let stranger = dir.path().join("stranger");
        let out = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&stranger)
            .output()
            .expect("ssh-keygen");
        assert!(out.status.success());
        let (code, err) = up_exit(dir.path(), &base(sshd.known_hosts(), &stranger)).await;
        assert_eq!(code, Some(78), "{err}");
        assert!(err.contains("Permission denied"), "{err}");
    })
    .await;
}

/// `ssh -N -D PORT -i KEY` logs in with `KEY-cert.pub` beside the key against an
/// sshd that trusts only a user CA (no key in authorized_keys); so must `jumpgate
/// up -i KEY`, whose first login used to load the keys without their
/// certificates and failed with "Permission denied (publickey)".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_dash_i_uses_the_certificate_next_to_the_key() {
    within(LIMIT, "up -i with a certificate", async {
        let ca = CertAuthority::new();
        let sshd = Sshd::start_with(SshdOptions {
            extra_config: vec![ca.sshd_line()],
            ..SshdOptions::default()
        })
        .await;
        let key = sshd.new_unlisted_key(KeyKind::Ed25519);
        let dir = tempfile::tempdir().expect("tempdir");
        let ready = dir.path().join("ready");
        let args = |port: u16| {
            let mut a = direct_args(&sshd, port, &ready);
            let i = a.iter().position(|x| x == "-i").expect("-i in direct_args");
            a[i + 1] = p(&key);
            a
        };

        // The fixture: without a certificate the key is not enough.
        let (code, err) = up_exit(dir.path(), &args(free_port())).await;
        assert_eq!(code, Some(78), "{err}");
        assert!(err.contains("Permission denied (publickey)"), "{err}");

        ca.sign(&key, "jg-up", sshd.user(), None);
        // The reference: ssh itself logs in with the certificate beside the key.
        let mut ssh = Command::new("ssh");
        ssh.args(sshd.ssh_args(&key, sshd.known_hosts()))
            .arg("true");
        crate::support::process::run_ok(&mut ssh, Duration::from_secs(20));

        let web = targets::http("certified up".into()).await;
        let mut up = Up::spawn(dir, &args(free_port()));
        let addr = up.wait_ready().await;
        let url = format!("http://localhost:{}/", web.port());
        let got = curl(up.dir.path(), "--socks5-hostname", addr, &url).await;
        assert_eq!(got.code, 0, "curl: {}\n{}", got.stderr, up.logs.text());
        assert_eq!(got.body, "certified up");
        let cert_logins = sshd
            .log()
            .lines()
            .filter(|l| l.contains("Accepted publickey for") && l.contains("ID jg-up "))
            .count();
        // ssh's, then jumpgate's one login (its pool serves with it).
        assert_eq!(cert_logins, 2, "sshd log:\n{}", sshd.log());
        assert_eq!(up.terminate().await, Some(0), "{}", up.logs.text());
    })
    .await;
}

/// One HTTP GET straight to `addr` (no proxy), the body back.
async fn http_get(addr: SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("write request");
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .expect("response in time")
        .expect("read response");
    let text = String::from_utf8_lossy(&buf).into_owned();
    text.split("\r\n\r\n").nth(1).unwrap_or("").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_dash_l_and_dash_r_and_algorithm_options_work() {
    within(LIMIT, "up -L -R", async {
        // The sshd offers one cipher, one MAC and one key exchange, and the
        // -o lists (mapped onto russh's) include them.
        let sshd = Sshd::start_with(SshdOptions {
            extra_config: vec![
                "Ciphers aes256-ctr".into(),
                "MACs hmac-sha2-512".into(),
                "KexAlgorithms diffie-hellman-group14-sha256".into(),
            ],
            ..SshdOptions::default()
        })
        .await;
        let web = targets::http("forwarded".into()).await;
        let (lport, rport) = (free_port(), free_port());
        let dir = tempfile::tempdir().expect("tempdir");
        let ready = dir.path().join("ready");
        let mut args = direct_args(&sshd, free_port(), &ready);
        let dest = args.pop().expect("destination");
        args.extend([
            s("-L"),
            format!("127.0.0.1:{lport}:localhost:{}", web.port()),
            s("-R"),
            format!("127.0.0.1:{rport}:127.0.0.1:{}", web.port()),
            s("-oExitOnForwardFailure=yes"),
            s("-o"),
            s("Ciphers=aes256-ctr"),
            s("-o"),
            s("MACs=^hmac-sha2-512"),
            s("-o"),
            s("KexAlgorithms=+diffie-hellman-group14-sha256"),
            dest,
        ]);
        let mut up = Up::spawn(dir, &args);
        up.wait_ready().await;
        let text = std::fs::read_to_string(up.ready_file()).expect("ready file");
        assert!(
            text.contains(&format!("forward 127.0.0.1:{lport}")),
            "{text}"
        );
        // -L: a connection to the local port reaches the target via sshd.
        let body = http_get(SocketAddr::from(([127, 0, 0, 1], lport))).await;
        assert_eq!(body, "forwarded", "{}", up.logs.text());
        // -R: sshd listens on rport and hands connections back to us.
        let started = Instant::now();
        while up
            .logs
            .find(|l| l.contains("remote forward listening"))
            .is_none()
        {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "no remote forward:\n{}",
                up.logs.text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The first login's session serves -R (one login, as with ssh).
        let body = http_get(SocketAddr::from(([127, 0, 0, 1], rport))).await;
        assert_eq!(body, "forwarded", "{}", up.logs.text());
        assert_eq!(sshd.logins(), 1, "sshd log:\n{}", sshd.log());

        // That session lost (its sshd processes killed; the sshd listener
        // lives on): the pool logs in again and -R is bound again there.
        let ours =
            crate::support::sshd_life::descendants(crate::support::sshd_life::sshd_pid(&sshd));
        let mut victims: Vec<u32> = crate::forward::listeners_of(rport)
            .into_iter()
            .filter(|p| ours.contains(p))
            .collect();
        assert!(
            !victims.is_empty(),
            "no process of our sshd listens on {rport}"
        );
        for h in victims.clone() {
            if let Some(parent) = crate::support::sshd_life::ppid_of(h) {
                if parent != crate::support::sshd_life::sshd_pid(&sshd) && ours.contains(&parent) {
                    victims.push(parent);
                }
            }
        }
        let _ = Command::new("kill")
            .arg("-KILL")
            .args(victims.iter().map(|p| p.to_string()))
            .status();
        let started = Instant::now();
        while up.logs.count(|l| l.contains("remote forward listening")) < 2 {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "-R not bound again after its session was lost:\n{}",
                up.logs.text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let body = http_get(SocketAddr::from(([127, 0, 0, 1], rport))).await;
        assert_eq!(body, "forwarded", "{}", up.logs.text());
        assert_eq!(sshd.logins(), 2, "sshd log:\n{}", sshd.log());
        assert_eq!(up.terminate().await, Some(0), "{}", up.logs.text());

        // A Ciphers list without the sshd's only cipher is what russh
        // offers: the login fails with OpenSSH's wording.
        let dir = tempfile::tempdir().expect("tempdir");
        let mut args = direct_args(&sshd, free_port(), &dir.path().join("ready"));
        let dest = args.pop().expect("destination");
        args.extend([
            s("-oCiphers=aes128-ctr,aes128-gcm@openssh.com"),
            s("-oConnectTimeout=5"),
            dest,
        ]);
        let (code, err) = up_exit(dir.path(), &args).await;
        assert_ne!(code, Some(0), "{err}");
        assert!(err.contains("no matching cipher"), "{err}");
    })
    .await;
}

/// ProxyCommand from ssh_config (here: OpenSSH's own `ssh -W %h:%p` through
/// the same sshd, tokens and all) carries the session, as with ssh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_with_proxy_command_from_ssh_config() {
    within(LIMIT, "up ProxyCommand", async {
        let sshd = Sshd::start().await;
        let web = targets::http("over ProxyCommand".into()).await;
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("config");
        let mut w = sshd.ssh_args(sshd.client_key(), sshd.known_hosts());
        w.pop(); // the destination: given as %r@%h below
        std::fs::write(
            &config,
            format!(
                "Host via-command\n  HostName {}\n  Port {}\n  User {}\n  IdentityFile {}\n\
                 \x20 UserKnownHostsFile {}\n  StrictHostKeyChecking yes\n\
                 \x20 ProxyCommand ssh {} -W %h:%p %r@%h\n",
                sshd.host(),
                sshd.port(),
                sshd.user(),
                sshd.client_key().display(),
                sshd.known_hosts().display(),
                w.join(" ")
            ),
        )
        .expect("write config");
        let ready = dir.path().join("ready");
        let args = vec![
            s("-F"),
            p(&config),
            s("-D"),
            free_port().to_string(),
            s("--ready-file"),
            p(&ready),
            s("via-command"),
        ];
        let mut up = Up::spawn(dir, &args);
        let addr = up.wait_ready().await;
        let url = format!("http://127.0.0.1:{}/", web.port());
        let got = curl(up.dir.path(), "--socks5-hostname", addr, &url).await;
        assert_eq!(got.code, 0, "curl: {}\n{}", got.stderr, up.logs.text());
        assert_eq!(got.body, "over ProxyCommand");
        // ssh -W logs in, and jumpgate logs in again inside its stream.
        assert!(sshd.logins() >= 2, "sshd log:\n{}", sshd.log());
        assert_eq!(up.terminate().await, Some(0), "{}", up.logs.text());
    })
    .await;
}

/// `-o GlobalKnownHostsFile=FILE -o UserKnownHostsFile=/dev/null`: the host
/// key is only in FILE, as with ssh; and `-o IdentityAgent=SOCKET`: the key
/// only in an agent that SSH_AUTH_SOCK (removed) does not name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_reads_global_known_hosts_and_identity_agent() {
    within(LIMIT, "up global known_hosts", async {
        let sshd = Sshd::start().await;
        let key = sshd.new_client_key(crate::support::KeyKind::Ed25519, None);
        let agent = crate::known_hosts::Agent::start(&key).await;
        let port = free_port();
        let dir = tempfile::tempdir().expect("tempdir");
        let ready = dir.path().join("ready");
        let args = vec![
            s("-F"),
            s("none"),
            s("-N"),
            format!("-D127.0.0.1:{port}"),
            s("-p"),
            sshd.port().to_string(),
            s("-o"),
            format!("GlobalKnownHostsFile={}", sshd.known_hosts().display()),
            s("-o"),
            s("UserKnownHostsFile=/dev/null"),
            s("-oStrictHostKeyChecking=yes"),
            s("-o"),
            format!("IdentityAgent={}", agent.socket.display()),
            s("--ready-file"),
            p(&ready),
            format!("{}@{}", sshd.user(), sshd.host()),
        ];
        let mut up = Up::spawn(dir, &args);
        let addr = up.wait_ready().await;
        let web = targets::http("known globally".into()).await;
        let url = format!("http://127.0.0.1:{}/", web.port());
        let got = curl(up.dir.path(), "--socks5-hostname", addr, &url).await;
        assert_eq!(got.code, 0, "curl: {}\n{}", got.stderr, up.logs.text());
        assert_eq!(got.body, "known globally");
        assert_eq!(up.terminate().await, Some(0), "{}", up.logs.text());
    })
    .await;
}

/// As ssh: `-D PORT`, `-D localhost:PORT` and `-L PORT:host:port` listen on
/// both loopbacks, 127.0.0.1 and ::1, so a client that resolves `localhost`
/// to ::1 (or is pointed at `[::1]:PORT`) gets through too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_dash_d_port_listens_on_both_loopbacks() {
    within(LIMIT, "up -D PORT on ::1", async {
        let sshd = Sshd::start().await;
        let web = targets::http("both loopbacks".into()).await;
        let (dport, lport_d, lport) = (free_port(), free_port(), free_port());
        let dir = tempfile::tempdir().expect("tempdir");
        let ready = dir.path().join("ready");
        let mut args = direct_args(&sshd, free_port(), &ready);
        let dest = args.pop().expect("destination");
        args.extend([
            s("-D"),
            dport.to_string(),
            format!("-Dlocalhost:{lport_d}"),
            s("-L"),
            format!("{lport}:localhost:{}", web.port()),
            dest,
        ]);
        let mut up = Up::spawn(dir, &args);
        up.wait_ready().await;
        let url = format!("http://localhost:{}/", web.port());
        for port in [dport, lport_d] {
            for ip in ["127.0.0.1", "::1"] {
                let addr = SocketAddr::new(ip.parse().expect("ip"), port);
                let got = curl(up.dir.path(), "--socks5-hostname", addr, &url).await;
                assert_eq!(
                    got.code,
                    0,
                    "curl via {addr}: {}\n{}",
                    got.stderr,
                    up.logs.text()
                );
                assert_eq!(got.body, "both loopbacks");
            }
        }
        for ip in ["127.0.0.1", "::1"] {
            let addr = SocketAddr::new(ip.parse().expect("ip"), lport);
            assert_eq!(http_get(addr).await, "both loopbacks", "{}", up.logs.text());
        }
        let text = std::fs::read_to_string(up.ready_file()).expect("ready file");
        assert!(text.contains(&format!("socks5 [::1]:{dport}")), "{text}");
        assert_eq!(up.terminate().await, Some(0), "{}", up.logs.text());
    })
    .await;
}

/// A ready file left by an earlier run is removed at start, so that a run
/// that then fails (a wrong key: exit 78) does not leave a script believing
/// it is ready; and a ready file that cannot be written is a startup error
/// (78) instead of a log line and a script that waits forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_or_unwritable_ready_file_fails_at_start() {
    within(LIMIT, "up ready file", async {
        let sshd = Sshd::start().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let stranger = dir.path().join("stranger");
        let out = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&stranger)
            .output()
            .expect("ssh-keygen");
        assert!(out.status.success());
        let ready = dir.path().join("ready");
        std::fs::write(&ready, "socks5 127.0.0.1:1\n").expect("stale ready file");
        let mut args = direct_args(&sshd, free_port(), &ready);
        let i = args.iter().position(|a| a == "-i").expect("-i");
        args[i + 1] = p(&stranger);
        let (code, err) = up_exit(dir.path(), &args).await;
        assert_eq!(code, Some(78), "{err}");
        assert!(
            !ready.exists(),
            "a failed run left the stale ready file in place:\n{err}"
        );

        let unwritable = dir.path().join("no-such-dir").join("ready");
        let args = direct_args(&sshd, free_port(), &unwritable);
        let (code, err) = up_exit(dir.path(), &args).await;
        assert_eq!(code, Some(78), "{err}");
        assert!(
            err.contains("ready file") && err.contains(&p(&unwritable)),
            "{err}"
        );
    })
    .await;
}

/// SIGHUP and SIGUSR1 used to kill the process at once (exit 129, no drain,
/// no log line, the ready file left behind). Until reload exists SIGHUP is
/// logged and changes nothing; SIGUSR1 dumps `/status` to the log. And an
/// ordinary SIGTERM is not a warning: the upstream going down at shutdown is
/// expected, so no `upstream NOT ready` line at WARN.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_and_sigusr1_are_not_fatal_and_sigterm_is_quiet() {
    within(LIMIT, "up signals", async {
        let sshd = Sshd::start().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let ready = dir.path().join("ready");
        let args = direct_args(&sshd, free_port(), &ready);
        let mut up = Up::spawn(dir, &args);
        up.wait_ready().await;
        for sig in ["-HUP", "-USR1"] {
            let status = Command::new("kill")
                .args([sig, &up.child.pid().to_string()])
                .status()
                .expect("run kill");
            assert!(status.success(), "kill {sig} failed");
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert!(
                up.child.exited().is_none(),
                "kill {sig} ended the process:\n{}",
                up.logs.text()
            );
        }
        let logged = |what: &str| up.logs.find(|l| l.contains(what)).is_some();
        assert!(logged("SIGHUP"), "no SIGHUP line:\n{}", up.logs.text());
        assert!(
            logged("\"upstreams\""),
            "no status dump on SIGUSR1:\n{}",
            up.logs.text()
        );
        assert!(ready.exists(), "the ready file is gone while running");
        assert_eq!(up.terminate().await, Some(0), "{}", up.logs.text());
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            !up.logs
                .text()
                .lines()
                .any(|l| l.contains("WARN") && l.contains("NOT ready")),
            "SIGTERM logged a warning:\n{}",
            up.logs.text()
        );
    })
    .await;
}
