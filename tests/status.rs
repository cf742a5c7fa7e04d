//! The status surface over a known workload (two finished tunnels, one open
//! tunnel, a refused CONNECT, a name that does not resolve and carries HTML):
//! `/status` JSON read back into `jumpgate::status::Status`; the page at `/`
//! rendered by a real headless Chromium (DOM and screenshot), with
//! the recent-errors column measured in a same-origin frame; and
//! `jumpgate status` against a ready gate, a gate without a session, a closed
//! port and a bad URL.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use jumpgate::status::Status;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::admin::{admin_addr, get};
use crate::support::socks::{self, Dest};
use crate::support::targets::{self, Server};
use crate::support::{gate, process, refused_addr, require, within, Gate, GateConfig, Sshd};

const TEST_LIMIT: Duration = Duration::from_secs(90);

/// How long one Chromium run may take before it is killed.
const BROWSER_LIMIT: Duration = Duration::from_secs(60);

/// Bytes sent (and echoed back) through the tunnel the scene keeps open.
const OPEN_BYTES: usize = 100_000;

/// A destination name that is also markup: it reaches the page through the
/// error message of its failed CONNECT and must show as text.
const HTML_NAME: &str = "<i id=\"xss\">jg</i>.invalid";

/// A gate with a known workload behind it, kept running while a test looks.
struct Scene {
    _sshd: Sshd,
    _echo: Server,
    gate: Gate,
    admin: SocketAddr,
    /// The tunnel that stays open: one session shows channels = 1.
    _open: TcpStream,
    /// The port of the refused CONNECT.
    refused: SocketAddr,
    /// Bytes the test sent up (and received back) over all tunnels.
    sent: u64,
}

impl Scene {
    async fn start() -> Scene {
        let sshd = Sshd::start().await;
        let echo = targets::echo().await;
        let mut cfg = GateConfig::new(&sshd).upstream_line("sessions = { min = 1, max = 1 }");
        cfg.extra_toml
            .push("[admin]\nbind = \"127.0.0.1:0\"".into());
        let mut gate = Gate::start(&cfg).await;
        let admin = admin_addr(&mut gate).await;

        for _ in 0..2 {
            gate.echo_roundtrip(echo.addr(), b"0123456789").await;
        }
        let mut open = gate.connect(echo.addr()).await;
        let data: Vec<u8> = (0..OPEN_BYTES).map(|i| (i % 251) as u8).collect();
        open.write_all(&data)
            .await
            .expect("send on the open tunnel");
        let mut back = vec![0; OPEN_BYTES];
        open.read_exact(&mut back)
            .await
            .expect("echo on the open tunnel");
        assert_eq!(back, data, "echo through the open tunnel");

        let refused = refused_addr();
        let code = gate.reply_code(socks::CONNECT, &Dest::from(refused)).await;
        assert_eq!(code, socks::CONNECTION_REFUSED);
        let code = gate
            .reply_code(socks::CONNECT, &Dest::Domain(HTML_NAME.into(), 1))
            .await;
        assert_eq!(code, socks::HOST_UNREACHABLE);

        Scene {
            _sshd: sshd,
            _echo: echo,
            gate,
            admin,
            _open: open,
            refused,
            sent: 20 + OPEN_BYTES as u64,
        }
    }

    /// `/status`, once the workload shows in it: counters and byte counts
    /// are updated by the tunnels' tasks, so wait (bounded) for them to settle.
    async fn settled_status(&self) -> Status {
        let mut last = None;
        for _ in 0..100 {
            let (code, body) = get(self.admin, "/status").await;
            assert_eq!(code, 200, "{body}");
            let s: Status = serde_json::from_str(&body)
                .unwrap_or_else(|e| panic!("/status is not a Status: {e}\n{body}"));
            let settled = s.listeners.first().is_some_and(|l| {
                l.connections_active == 1 && l.connections_ok == 3 && l.connections_failed == 2
            }) && s.upstreams.first().is_some_and(|u| {
                u.sessions.first().is_some_and(|x| {
                    x.channels == 1 && x.bytes_up >= self.sent && x.bytes_down >= self.sent
                })
            });
            if settled {
                return s;
            }
            last = Some(body);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "/status did not show the workload within 10 s; last:\n{}\ngate log:\n{}",
            last.unwrap_or_default(),
            self.gate.log_text()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_json_shows_the_workload() {
    within(TEST_LIMIT, "test", async {
        let scene = Scene::start().await;
        let s = scene.settled_status().await;

        assert!(s.ready && !s.draining, "{s:?}");
        assert_eq!(s.version, env!("CARGO_PKG_VERSION"));
        assert_eq!(s.upstreams.len(), 1, "{s:?}");
        let u = &s.upstreams[0];
        assert_eq!(u.name, "jump");
        assert!(u.ready);
        assert_eq!((u.sessions_min, u.sessions_max, u.connecting), (1, 1, 0));
        assert_eq!(u.hosts.len(), 1, "{u:?}");
        assert_eq!((u.hosts[0].sessions, u.hosts[0].failures), (1, 0));
        assert_eq!(u.sessions.len(), 1, "{u:?}");
        let x = &u.sessions[0];
        assert_eq!(
            (x.state.as_str(), x.kind.as_str(), x.channels),
            ("ready", "slot", 1)
        );
        assert_eq!(x.host, u.hosts[0].address);
        assert!(x.age_seconds > 0.0 && x.age_seconds < s.uptime_seconds);
        // Payload bytes, exactly what the test moved: the session carries
        // nothing else.
        assert_eq!(
            (x.bytes_up, x.bytes_down),
            (scene.sent, scene.sent),
            "{x:?}"
        );

        assert_eq!(s.listeners.len(), 1);
        let l = &s.listeners[0];
        assert_eq!(
            (l.name.as_str(), l.kind.as_str(), l.via.as_str()),
            ("socks", "socks5", "jump")
        );
        assert_eq!(l.bind, scene.gate.socks_addr().to_string());
        assert_eq!(
            (
                l.connections_active,
                l.connections_ok,
                l.connections_failed,
                l.connections_rejected,
                l.connections_rate_limited
            ),
            (1, 3, 2, 0, 0)
        );
        assert_eq!(s.limits.connections, 1);
        assert_eq!(s.limits.rate_limited, 0);

        // Newest first: the unresolvable name came after the refused port.
        let messages: Vec<&str> = u.recent_errors.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(messages.len(), 2, "{messages:?}");
        assert!(messages[0].contains(HTML_NAME), "{messages:?}");
        assert!(
            messages[1].contains(&scene.refused.to_string()) && messages[1].contains("refused"),
            "{messages:?}"
        );
        assert!(u.recent_errors[0].age_seconds <= u.recent_errors[1].age_seconds);
    })
    .await;
}

/// Runs headless Chromium on `url` with `args` under the offline resolver and
/// a deadline (killed by PID when it passes); returns stdout.
async fn headless(browser: &Path, work: &Path, url: &str, args: &[String]) -> String {
    let profile = tempfile::Builder::new()
        .prefix("jg-chromium-")
        .tempdir()
        .expect("chromium profile dir");
    let mut cmd = process::offline_tokio_command(work, browser);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--virtual-time-budget=5000",
        // No name resolves: nothing the browser might want besides the page
        // (an IP literal on loopback) can be looked up, on top of the
        // offline resolver.
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()))
    .args(args)
    .arg(url)
    .env("HOME", profile.path());
    let out = process::run_for(&mut cmd, BROWSER_LIMIT).await;
    assert!(
        out.status.success(),
        "chromium failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The element that starts with `open` (e.g. `<tr data-session-id="3"`), up
/// to its closing `close` tag.
fn element<'a>(dom: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let start = dom.find(open)?;
    let len = dom[start..].find(close)?;
    Some(&dom[start..start + len])
}

/// The text of the cell with `data-field="name"` inside `row`.
fn field<'a>(row: &'a str, name: &str) -> Option<&'a str> {
    let at = row.find(&format!("data-field=\"{name}\""))?;
    let text = &row[at..];
    let text = &text[text.find('>')? + 1..];
    Some(&text[..text.find('<')?])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_page_in_headless_chromium() {
    let browser = require::on_path(&["chromium", "chromium-browser"], "chromium");
    within(TEST_LIMIT, "test", async {
        let scene = Scene::start().await;
        let s = scene.settled_status().await;
        let session = &s.upstreams[0].sessions[0];
        let url = format!("http://{}/", scene.admin);

        let dom = headless(&browser, scene.gate.dir(), &url, &["--dump-dom".into()]).await;
        let badge = element(&dom, "<span id=\"ready-badge\"", "</span>")
            .unwrap_or_else(|| panic!("no ready badge in:\n{dom}"));
        assert!(badge.contains("data-state=\"ready\""), "{badge}");
        let card = element(
            &dom,
            "<section class=\"upstream\" data-upstream=\"jump\"",
            "</section>",
        )
        .unwrap_or_else(|| panic!("no card for upstream jump in:\n{dom}"));
        assert!(card.contains("upstream jump"), "{card}");
        let row = element(
            card,
            &format!("<tr data-session-id=\"{}\"", session.id),
            "</tr>",
        )
        .unwrap_or_else(|| panic!("no row for session {} in:\n{card}", session.id));
        assert_eq!(field(row, "state"), Some("ready"), "{row}");
        assert_eq!(field(row, "kind"), Some("slot"), "{row}");
        assert_eq!(field(row, "channels"), Some("1"), "{row}");
        assert_eq!(field(row, "host"), Some(session.host.as_str()), "{row}");
        // 100,020 bytes.
        assert_eq!(field(row, "bytes-up"), Some("97.7 KiB"), "{row}");
        assert_eq!(field(row, "bytes-down"), Some("97.7 KiB"), "{row}");
        // The client reads everything: nothing is held for it.
        assert_eq!(field(row, "buffered"), Some("0 B"), "{row}");
        let listener = element(&dom, "<tr data-listener=\"socks\"", "</tr>")
            .unwrap_or_else(|| panic!("no listener row in:\n{dom}"));
        assert_eq!(field(listener, "active"), Some("1"), "{listener}");
        assert_eq!(field(listener, "failed"), Some("2"), "{listener}");
        // Both errors, and the markup in the name shown as text, not parsed.
        let errors = element(card, "<ul class=\"errors\"", "</ul>")
            .unwrap_or_else(|| panic!("no recent errors in:\n{card}"));
        assert_eq!(errors.matches("<li data-error").count(), 2, "{errors}");
        assert!(errors.contains(&scene.refused.to_string()), "{errors}");
        assert!(
            errors.contains("&lt;i id=\"xss\"&gt;jg&lt;/i&gt;.invalid"),
            "{errors}"
        );
        assert!(
            !dom.contains("<i id=\"xss\">"),
            "markup from data was parsed:\n{dom}"
        );
        let banner = element(&dom, "<p id=\"banner\"", "</p>").expect("banner element");
        assert!(!banner.contains("shown"), "{banner}");

        // The screenshot stays outside the repository, for people to look at.
        let shots = tempfile::Builder::new()
            .prefix("jg-status-page-")
            .tempdir()
            .expect("screenshot dir")
            .keep();
        let png = shots.join("status.png");
        headless(
            &browser,
            scene.gate.dir(),
            &url,
            &[
                format!("--screenshot={}", png.display()),
                "--window-size=1200,900".into(),
            ],
        )
        .await;
        let bytes = std::fs::read(&png).unwrap_or_else(|e| panic!("{}: {e}", png.display()));
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
        // IHDR: width and height, big-endian, at bytes 16..24.
        let dims = (
            u32::from_be_bytes([bytes[16], bytes[17], bytes[18], bytes[19]]),
            u32::from_be_bytes([bytes[20], bytes[21], bytes[22], bytes[23]]),
        );
        assert_eq!(dims, (1200, 900), "screenshot size");
        assert!(
            bytes.len() > 10_000,
            "a {} byte screenshot is blank",
            bytes.len()
        );
        eprintln!("status page screenshot: {}", png.display());

        // jumpgate goes away after the first poll: the page says so and keeps
        // showing what it had.
        let (_, page) = get(scene.admin, "/").await;
        let (_, json) = get(scene.admin, "/status").await;
        let vanishing = VanishingAdmin::start(page.clone(), json).await;
        let url = format!("http://{}/", vanishing.addr);
        let dom = headless(&browser, scene.gate.dir(), &url, &["--dump-dom".into()]).await;
        assert!(
            vanishing.polls() >= 2,
            "the page polled {} times",
            vanishing.polls()
        );
        let banner = element(&dom, "<p id=\"banner\"", "</p>").expect("banner element");
        assert!(
            banner.contains("class=\"shown\"") && banner.contains("Cannot reach jumpgate"),
            "{banner}"
        );
        assert!(banner.contains("Showing the last data"), "{banner}");
        // The header badge no longer claims what the page cannot know.
        let badge = element(&dom, "<span id=\"ready-badge\"", "</span>")
            .unwrap_or_else(|| panic!("no ready badge in:\n{dom}"));
        assert!(badge.contains("data-state=\"unreachable\""), "{badge}");
        assert!(!badge.contains(">ready"), "{badge}");
        let row = element(
            &dom,
            &format!("<tr data-session-id=\"{}\"", session.id),
            "</tr>",
        )
        .unwrap_or_else(|| panic!("the last data is gone:\n{dom}"));
        assert_eq!(field(row, "channels"), Some("1"), "{row}");
        drop(vanishing);

        // A session holding bytes for a slow client, parked at a cap: the
        // page shows the sum of both tiers, and each tier in the cell's title.
        let mut held = s.clone();
        let parked = &mut held.upstreams[0].sessions[0];
        parked.buffered_memory_bytes = 1_048_576;
        parked.buffered_disk_bytes = 2_621_440;
        parked.parked = true;
        let json = serde_json::to_string(&held).expect("status JSON");
        let holding = VanishingAdmin::serve(page.clone(), json, usize::MAX).await;
        let url = format!("http://{}/", holding.addr);
        let dom = headless(&browser, scene.gate.dir(), &url, &["--dump-dom".into()]).await;
        let row = element(
            &dom,
            &format!("<tr data-session-id=\"{}\"", session.id),
            "</tr>",
        )
        .unwrap_or_else(|| panic!("no row for session {} in:\n{dom}", session.id));
        assert_eq!(field(row, "buffered"), Some("3.50 MiB"), "{row}");
        assert!(
            row.contains("title=\"1048576 bytes in memory, 2621440 on disk; parked at a cap\""),
            "{row}"
        );
        drop(holding);

        // Recent errors of very different ages: the message column starts
        // at the same x in every row, whatever the width of the age text.
        let mut aged = s.clone();
        let errors = &mut aged.upstreams[0].recent_errors;
        let first = errors[0].clone();
        *errors = AGES
            .iter()
            .map(|a| jumpgate::status::ErrorStatus {
                age_seconds: *a,
                ..first.clone()
            })
            .collect();
        let json = serde_json::to_string(&aged).expect("status JSON");
        let steady = VanishingAdmin::serve(page, json, usize::MAX).await;
        let url = format!("http://{}/harness", steady.addr);
        let dom = headless(
            &browser,
            scene.gate.dir(),
            &url,
            &["--dump-dom".into(), "--window-size=1200,900".into()],
        )
        .await;
        let out = element(&dom, "<pre id=\"out\">", "</pre>")
            .unwrap_or_else(|| panic!("no harness output in:\n{dom}"));
        let cells: Vec<(&str, &str)> = out["<pre id=\"out\">".len()..]
            .split('|')
            .filter_map(|c| c.split_once('='))
            .collect();
        assert_eq!(cells.len(), AGES.len(), "{out}");
        let lefts: Vec<&str> = cells.iter().map(|(_, left)| *left).collect();
        assert!(
            lefts.windows(2).all(|w| w[0] == w[1]),
            "the message column moves with the age text: {cells:?}"
        );
    })
    .await;
}

/// Ages of the recent errors in the alignment check: "5s ago" to
/// "31d 6h ago".
const AGES: [f64; 5] = [5.0, 187.0, 7_500.0, 90_000.0, 2_700_000.0];

/// A page that loads the status page in a same-origin frame and, once it
/// shows every recent error, writes each row's age text and the left edge of
/// its message into `#out` as `AGE=X|AGE=X...`, for `--dump-dom` to read.
const HARNESS: &str = r#"<!doctype html>
<html><body>
<iframe id="f" src="/" width="1200" height="800"></iframe>
<pre id="out">waiting</pre>
<script>
function look() {
  var d = document.getElementById("f").contentDocument;
  var rows = d ? d.querySelectorAll("ul.errors li") : [];
  if (rows.length < 5) { setTimeout(look, 100); return; }
  document.getElementById("out").textContent = Array.prototype.map.call(rows, function (r) {
    return r.querySelector(".age").textContent + "=" +
      Math.round(r.querySelector(".msg").getBoundingClientRect().left);
  }).join("|");
}
look();
</script>
</body></html>
"#;

/// Serves the status page (and `HARNESS` at `/harness`), answers the first
/// `answered` `/status` polls with `json` and every later one with 503, like
/// a jumpgate that went away.
struct VanishingAdmin {
    addr: SocketAddr,
    polls: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl VanishingAdmin {
    async fn start(page: String, json: String) -> VanishingAdmin {
        VanishingAdmin::serve(page, json, 1).await
    }

    async fn serve(page: String, json: String, answered: usize) -> VanishingAdmin {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the stand-in admin");
        let addr = listener.local_addr().expect("local_addr");
        let polls = Arc::new(AtomicUsize::new(0));
        let counter = polls.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tcp.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head);
                let path = head.split_whitespace().nth(1).unwrap_or("/");
                let (code, kind, body) = match path {
                    "/status" if counter.fetch_add(1, Ordering::SeqCst) < answered => {
                        ("200 OK", "application/json", json.as_str())
                    }
                    "/status" => ("503 Service Unavailable", "text/plain", "gone\n"),
                    "/harness" => ("200 OK", "text/html; charset=utf-8", HARNESS),
                    _ => ("200 OK", "text/html; charset=utf-8", page.as_str()),
                };
                let reply = format!(
                    "HTTP/1.1 {code}\r\ncontent-type: {kind}\r\ncontent-length: {}\r\n\
                     connection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tcp.write_all(reply.as_bytes()).await;
            }
        });
        VanishingAdmin { addr, polls, task }
    }

    fn polls(&self) -> usize {
        self.polls.load(Ordering::SeqCst)
    }
}

impl Drop for VanishingAdmin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `jumpgate ARGS`, run to its exit: (code, stdout, stderr).
async fn jumpgate(work: &Path, args: &[&str]) -> (i32, String, String) {
    let mut cmd = process::offline_tokio_command(work, gate::JUMPGATE);
    cmd.args(args).env("NO_COLOR", "1");
    let out = process::run_for(&mut cmd, Duration::from_secs(20)).await;
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_command_prints_the_live_session() {
    within(TEST_LIMIT, "test", async {
        let scene = Scene::start().await;
        let s = scene.settled_status().await;
        let session = &s.upstreams[0].sessions[0];
        let admin = format!("http://{}", scene.admin);
        let (code, out, err) = jumpgate(scene.gate.dir(), &["status", "--admin", &admin]).await;
        assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
        assert!(
            out.starts_with(&format!("jumpgate {}, up ", s.version)),
            "{out}"
        );
        assert!(
            out.lines().next().is_some_and(|l| l.ends_with(", ready")),
            "{out}"
        );
        let sessions: Vec<&str> = out
            .lines()
            .skip_while(|l| *l != "SESSIONS")
            .skip(1)
            .take_while(|l| !l.is_empty())
            .collect();
        assert_eq!(sessions.len(), 2, "header and one session:\n{out}");
        let cells: Vec<&str> = sessions[1].split_whitespace().collect();
        assert_eq!(
            (cells[0], cells[1], cells[2], cells[3], cells[4]),
            (
                "jump",
                session.id.to_string().as_str(),
                session.host.as_str(),
                "slot",
                "ready"
            ),
            "{}",
            sessions[1]
        );
        // AGE (one or two words), then CHANNELS, UP, DOWN, BUFFERED (nothing held
        // for a client that reads): "1 97.7 KiB 97.7 KiB 0 B".
        assert!(
            sessions[1].ends_with("  1  97.7 KiB  97.7 KiB       0 B"),
            "{}",
            sessions[1]
        );
        // Aligned: the header's CHANNELS ends where the row's channel count
        // does, and BUFFERED where the row does (numbers are right-aligned).
        let tail = "  97.7 KiB  97.7 KiB       0 B".len();
        assert_eq!(
            sessions[0].find("CHANNELS").map(|i| i + "CHANNELS".len()),
            Some(sessions[1].len() - tail),
            "{out}"
        );
        assert_eq!(sessions[0].len(), sessions[1].len(), "{out}");
        assert!(out.contains(&scene.refused.to_string()), "{out}");
        assert!(out.contains(HTML_NAME), "{out}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_command_fails_when_not_ready_or_unreachable() {
    within(TEST_LIMIT, "test", async {
        let sshd = Sshd::start().await;
        let mut cfg = GateConfig::new(&sshd);
        cfg.port = refused_addr().port();
        cfg.extra_toml
            .push("[admin]\nbind = \"127.0.0.1:0\"".into());
        let mut gate = Gate::start_unready(&cfg).await;
        let admin = format!("http://{}", admin_addr(&mut gate).await);
        let (code, out, err) = jumpgate(gate.dir(), &["status", "--admin", &admin]).await;
        assert_eq!(code, 1, "stdout:\n{out}\nstderr:\n{err}");
        assert!(
            out.lines().next().is_some_and(|l| l.ends_with("NOT READY")),
            "{out}"
        );
        assert!(
            err.contains("not ready: upstream jump has no live SSH session"),
            "{err}"
        );

        let closed = format!("http://{}", refused_addr());
        let (code, out, err) = jumpgate(gate.dir(), &["status", "--admin", &closed]).await;
        assert_eq!(code, 1, "stdout:\n{out}\nstderr:\n{err}");
        assert!(out.is_empty(), "{out}");
        assert!(
            err.contains(&format!(
                "cannot reach jumpgate admin at {closed}: connection refused \u{2014} is jumpgate \
                 running with `[admin] bind` (run) or `--admin` (up) at this address?"
            )),
            "{err}"
        );

        // The bare IP:PORT that `jumpgate up --admin` takes works here too.
        let bare = admin.trim_start_matches("http://");
        let (code, out, err) = jumpgate(gate.dir(), &["status", "--admin", bare]).await;
        assert_eq!(code, 1, "{bare}: stdout:\n{out}\nstderr:\n{err}");
        assert!(
            out.lines().next().is_some_and(|l| l.ends_with("NOT READY")),
            "{out}"
        );

        for bad in ["https://127.0.0.1:9191", "9191", "http://127.0.0.1"] {
            let (code, out, err) = jumpgate(gate.dir(), &["status", "--admin", bad]).await;
            assert_eq!(code, 2, "{bad}: stdout:\n{out}\nstderr:\n{err}");
            assert!(err.contains("is not an admin URL"), "{bad}: {err}");
        }
    })
    .await;
}
