//! The admin endpoint checked by real monitoring parts: `promtool check metrics` on a
//! live scrape, a real Prometheus server scraping the gate every second, `/readyz`
//! following the jump host's sshd as it dies and comes back. (That the session series
//! alert rules rely on exist before any session is checked in `admin`.)
//!
//! promtool and prometheus come from Debian's `prometheus` package
//! (scripts/test-all.sh installs it); without them these tests fail and say so
//! (`support::require`).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tempfile::TempDir;
use tokio::io::AsyncWriteExt;

use crate::support::admin::{admin_addr, get, known_workload, sample, try_get, ADMIN_TOML};
use crate::support::process::{offline_command, offline_tokio_command, ChildGuard, Logs};
use crate::support::sshd_life::{kill_sshd_tree, restart_sshd, sshd_pid};
use crate::support::{free_port, require, within, Gate, GateConfig, Sshd};

const TEST_LIMIT: Duration = Duration::from_secs(120);

const PROMTOOL: &str = "/usr/bin/promtool";
const PROMETHEUS: &str = "/usr/bin/prometheus";

/// How long Prometheus may take to show what the gate exports (1 s scrapes).
const PROM_LIMIT: Duration = Duration::from_secs(30);

/// A gate with the admin endpoint on an ephemeral port, and that port.
async fn gate_with_admin(cfg: GateConfig) -> (Gate, SocketAddr) {
    let mut cfg = cfg;
    cfg.extra_toml.push(ADMIN_TOML.into());
    let mut gate = Gate::start(&cfg).await;
    let admin = admin_addr(&mut gate).await;
    (gate, admin)
}

// === 1. promtool check metrics ===

/// A live scrape after a known workload (so that counters, gauges and the histogram
/// all have samples) passes `promtool check metrics`: it parses, and the linter finds
/// nothing (promtool exits 3 on lint problems, 1 on parse errors).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrape_passes_promtool_check_metrics() {
    require::program(PROMTOOL, "prometheus");
    within(TEST_LIMIT, "test", async {
        let sshd = Sshd::start().await;
        let (gate, admin) = gate_with_admin(GateConfig::new(&sshd)).await;
        known_workload(&gate, admin, 3, 1).await;
        let (status, text) = get(admin, "/metrics").await;
        assert_eq!(status, 200, "{text}");
        for series in [
            "jumpgate_connections_total{listener=\"socks\",result=\"ok\"}",
            "jumpgate_connect_duration_seconds_count{upstream=\"jump\"}",
            "jumpgate_sessions{state=\"ready\",upstream=\"jump\"}",
        ] {
            assert!(sample(&text, series).is_some(), "no {series} in:\n{text}");
        }

        let dir = TempDir::new().expect("temp dir");
        let mut cmd = offline_tokio_command(dir.path(), PROMTOOL);
        cmd.args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("start promtool");
        let mut stdin = child.stdin.take().expect("promtool stdin");
        stdin
            .write_all(text.as_bytes())
            .await
            .expect("write the scrape to promtool");
        drop(stdin);
        let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
            .await
            .expect("promtool finished within 30 s")
            .expect("run promtool");
        let report = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // Kept in the test output (shown with --nocapture) even when clean.
        println!(
            "promtool check metrics: {} ({} lines scraped){}{}",
            out.status,
            text.lines().count(),
            if report.trim().is_empty() { "" } else { ":\n" },
            report.trim_end()
        );
        assert!(
            out.status.success() && report.trim().is_empty(),
            "promtool check metrics: {}:\n{report}\nscrape:\n{text}",
            out.status
        );
    })
    .await;
}

// === 2. a real Prometheus server ===

/// A Prometheus server on loopback (ephemeral port, storage and config in a temp
/// dir, run with the offline resolver) scraping one target every second; killed by
/// PID on drop.
struct Prometheus {
    /// Dropped first: the server is killed before its files are removed.
    child: ChildGuard,
    logs: Logs,
    addr: SocketAddr,
    _dir: TempDir,
}

impl Prometheus {
    /// Starts Prometheus scraping `target` as job "jumpgate" and waits (bounded)
    /// until it answers `/-/ready`. Retries with a new port if another process took
    /// the one we picked.
    async fn start(target: SocketAddr) -> Prometheus {
        let mut last = String::new();
        for _ in 0..3 {
            let dir = tempfile::Builder::new()
                .prefix("jg-prom-")
                .tempdir()
                .expect("create prometheus temp dir");
            let config = dir.path().join("prometheus.yml");
            std::fs::write(&config, scrape_config(target)).expect("write prometheus.yml");
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
            let mut cmd = offline_command(dir.path(), PROMETHEUS);
            cmd.arg(format!("--config.file={}", config.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.path().join("data").display()
                ))
                .arg(format!("--web.listen-address={addr}"))
                .arg("--log.level=warn")
                .current_dir(dir.path())
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            let mut child = ChildGuard::spawn("prometheus", &mut cmd);
            let logs = Logs::default();
            if let Some(out) = child.take_stdout() {
                logs.pump("prometheus stdout", out);
            }
            if let Some(err) = child.take_stderr() {
                logs.pump("prometheus", err);
            }
            let started = Instant::now();
            loop {
                if let Some(status) = child.exited() {
                    // Let the pumps deliver the last lines.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    last = format!("prometheus exited ({status}):\n{}", logs.text());
                    break;
                }
                if let Ok((200, _)) = try_get(addr, "/-/ready").await {
                    return Prometheus {
                        child,
                        logs,
                        addr,
                        _dir: dir,
                    };
                }
                assert!(
                    started.elapsed() < Duration::from_secs(20),
                    "prometheus not ready on {addr} within 20 s:\n{}",
                    logs.text()
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            if !last.contains("address already in use") {
                break;
            }
        }
        panic!("{last}");
    }

    /// An instant query through the HTTP API: each result's labels and value.
    async fn query(&self, promql: &str) -> Vec<(BTreeMap<String, String>, f64)> {
        let path = format!("/api/v1/query?query={}", percent_encode(promql));
        let (status, body) = get(self.addr, &path).await;
        assert_eq!(status, 200, "{path}: {body}");
        let json: serde_json::Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {body}"));
        assert_eq!(json["status"], "success", "{path}: {body}");
        assert_eq!(json["data"]["resultType"], "vector", "{path}: {body}");
        let results = json["data"]["result"]
            .as_array()
            .unwrap_or_else(|| panic!("{path}: no result array: {body}"));
        results
            .iter()
            .map(|r| {
                let labels = r["metric"]
                    .as_object()
                    .unwrap_or_else(|| panic!("{path}: no metric object: {body}"))
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect();
                // "value": [unix_time, "value as a string"]
                let value = r["value"][1]
                    .as_str()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| panic!("{path}: bad value in {r}"));
                (labels, value)
            })
            .collect()
    }

    /// Polls `promql` (bounded by [`PROM_LIMIT`]) until it returns exactly one
    /// result with value `want`; returns its labels and how long it took.
    async fn wait_value(&self, promql: &str, want: f64) -> (BTreeMap<String, String>, Duration) {
        let started = Instant::now();
        loop {
            let got = self.query(promql).await;
            if let [(labels, v)] = got.as_slice() {
                if *v == want {
                    return (labels.clone(), started.elapsed());
                }
            }
            assert!(
                started.elapsed() < PROM_LIMIT,
                "{promql}: want one result = {want}, still {got:?} after {PROM_LIMIT:?}\n\
                 targets: {}\nprometheus log:\n{}",
                get(self.addr, "/api/v1/targets").await.1,
                self.logs.text()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// The Prometheus config: one job, a 1 s scrape of `target`, nothing else (no
/// remote write, no alertmanager, no service discovery beyond the static target).
fn scrape_config(target: SocketAddr) -> String {
    format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
         scrape_configs:\n  - job_name: jumpgate\n    metrics_path: /metrics\n    \
         static_configs:\n      - targets: [\"{target}\"]\n"
    )
}

/// Percent-encodes a query string value (RFC 3986 unreserved characters kept).
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Prometheus scrapes the gate every second: its query API shows the target up and
/// the exact counts of a known workload (5 tunnels, 1 refused CONNECT, 1 BIND).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_gate() {
    require::program(PROMETHEUS, "prometheus");
    within(TEST_LIMIT, "test", async {
        let sshd = Sshd::start().await;
        let (gate, admin) = gate_with_admin(GateConfig::new(&sshd)).await;
        let prom = Prometheus::start(admin).await;
        println!("prometheus pid {} on {}", prom.child.pid(), prom.addr);

        let (labels, took) = prom.wait_value("up{job=\"jumpgate\"}", 1.0).await;
        assert_eq!(
            labels.get("instance").map(String::as_str),
            Some(admin.to_string().as_str()),
            "{labels:?}"
        );
        println!("up{{job=\"jumpgate\"}} = 1 after {took:?}");
        // Before any client: the session is up, no tunnel counted yet.
        prom.wait_value(
            "jumpgate_sessions{job=\"jumpgate\",upstream=\"jump\",state=\"ready\"}",
            1.0,
        )
        .await;

        const TUNNELS: usize = 5;
        known_workload(&gate, admin, TUNNELS, 1).await;
        let mut figures = Vec::new();
        for (promql, want) in [
            (
                "jumpgate_connections_total{job=\"jumpgate\",result=\"ok\"}",
                TUNNELS as f64,
            ),
            (
                "jumpgate_connections_total{job=\"jumpgate\",result=\"failed\"}",
                1.0,
            ),
            (
                "jumpgate_connections_total{job=\"jumpgate\",result=\"rejected\"}",
                1.0,
            ),
            (
                "jumpgate_transferred_bytes_total{job=\"jumpgate\",direction=\"up\"}",
                10.0 * TUNNELS as f64,
            ),
            (
                "jumpgate_connect_duration_seconds_count{job=\"jumpgate\"}",
                TUNNELS as f64 + 1.0,
            ),
        ] {
            let (labels, took) = prom.wait_value(promql, want).await;
            assert_eq!(
                labels.get("instance").map(String::as_str),
                Some(admin.to_string().as_str())
            );
            figures.push(format!("{promql} = {want} (after {took:?})"));
        }
        println!("prometheus saw:\n  {}", figures.join("\n  "));
        // The alert expression of deploy/prometheus/jumpgate.rules.yml finds nothing
        // down while the upstream is ready.
        let down = prom
            .query("max by (job, instance, upstream) (jumpgate_sessions{state=\"ready\"}) == 0")
            .await;
        assert!(down.is_empty(), "{down:?}");
    })
    .await;
}

// === 3. /readyz follows the jump host ===

/// `/readyz` turns 503 (naming the upstream) when the only jump host's sshd is
/// killed, and 200 again when sshd is back on the same port. Killing sshd closes its
/// TCP connections, so the gate notices at once; the short keepalive is a backstop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_follows_the_jump_host() {
    within(TEST_LIMIT, "test", async {
        let sshd = Sshd::start().await;
        let cfg = GateConfig::new(&sshd)
            .upstream_line(r#"keepalive = { interval = "1s", count_max = 2 }"#)
            .upstream_line(r#"reconnect = { initial = "100ms", max = "500ms" }"#);
        let (_gate, admin) = gate_with_admin(cfg).await;
        assert_eq!(get(admin, "/readyz").await, (200, "ready\n".to_string()));

        let addr = SocketAddr::new(sshd.host(), sshd.port());
        // Timed from the start of the kill: kill_sshd_tree stops the tree, kills it
        // and returns once the port refuses, by which time the gate may have noticed.
        let kill_began = Instant::now();
        let killed = kill_sshd_tree(sshd_pid(&sshd), addr).await;
        let kill_took = kill_began.elapsed();
        let (down_after, down_body) =
            poll_readyz(admin, 503, kill_began, Duration::from_secs(10)).await;
        assert!(
            down_body.contains("not ready") && down_body.contains("upstream jump"),
            "the 503 body names the upstream: {down_body:?}"
        );
        let (_, metrics) = get(admin, "/metrics").await;
        assert_eq!(
            sample(
                &metrics,
                "jumpgate_sessions{state=\"ready\",upstream=\"jump\"}"
            ),
            Some(0.0),
            "{metrics}"
        );

        // Timed from spawning sshd (restart_sshd returns once its banner is seen).
        let restart_began = Instant::now();
        let _restarted = restart_sshd(&sshd).await;
        let banner_after = restart_began.elapsed();
        let (up_after, body) =
            poll_readyz(admin, 200, restart_began, Duration::from_secs(15)).await;
        assert_eq!(body, "ready\n");
        println!(
            "/readyz: 503 {down_after:?} after the kill began (kill of {killed} sshd processes \
             done at {kill_took:?}); 200 {up_after:?} after sshd was started again (banner at \
             {banner_after:?}); 503 body: {down_body:?}"
        );
    })
    .await;
}

/// Polls `/readyz` every 10 ms until it answers `want`; returns the time since
/// `since` and the body. Panics after `limit`.
async fn poll_readyz(
    admin: SocketAddr,
    want: u16,
    since: Instant,
    limit: Duration,
) -> (Duration, String) {
    loop {
        let (status, body) = get(admin, "/readyz").await;
        if status == want {
            return (since.elapsed(), body);
        }
        assert!(
            since.elapsed() < limit,
            "/readyz still {status} {body:?}, not {want}, {limit:?} later"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// === 4. the dashboard and the rules name what the gate exports ===

/// Every `jumpgate_*` / `process_*` name written in `text` (PromQL, YAML, JSON).
fn metric_names(text: &str) -> BTreeSet<String> {
    let bytes = text.as_bytes();
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut names = BTreeSet::new();
    for (i, _) in text.char_indices() {
        if i > 0 && word(bytes[i - 1]) {
            continue;
        }
        let rest = &text[i..];
        if rest.starts_with("jumpgate_") || rest.starts_with("process_") {
            let len = rest.bytes().take_while(|b| word(*b)).count();
            names.insert(rest[..len].to_string());
        }
    }
    names
}

/// The matchers of each selector of `metric` in `expr` (the text between the
/// braces after its name; `None` for a selector without braces).
fn matchers_of<'a>(expr: &'a str, metric: &str) -> Vec<Option<&'a str>> {
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(at) = expr[from..].find(metric) {
        let start = from + at;
        let end = start + metric.len();
        from = end;
        let before_ok = start == 0 || !expr.as_bytes()[start - 1].is_ascii_alphanumeric();
        let after = expr[end..].chars().next();
        if !before_ok || after.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        found.push(
            expr[end..]
                .strip_prefix('{')
                .and_then(|m| m.split_once('}'))
                .map(|(m, _)| m),
        );
    }
    found
}

/// The panels' queries: (panel title, expr), over nested rows too.
fn dashboard_queries(dash: &serde_json::Value) -> Vec<(String, String)> {
    fn walk(panels: &serde_json::Value, out: &mut Vec<(String, String)>) {
        for p in panels.as_array().into_iter().flatten() {
            let title = p["title"].as_str().unwrap_or("?").to_string();
            for t in p["targets"].as_array().into_iter().flatten() {
                if let Some(e) = t["expr"].as_str() {
                    out.push((title.clone(), e.to_string()));
                }
            }
            walk(&p["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dash["panels"], &mut out);
    out
}

/// The monitoring files checked against a live gate, so that they cannot
/// drift from the code: every metric name the dashboard (panels and template
/// variables), the alert rules and the rules' unit tests write is exported by
/// a gate after a known workload (the process collector's `process_*`
/// included); every dashboard selector of a metric the gate exports with an
/// `upstream` label filters on `$upstream`. Then a real Prometheus scrapes
/// the gate and runs every panel query with the variables set: each returns
/// a series of this gate, and none returns one for an instance or upstream
/// that does not exist (the filters really filter). scripts/check-monitoring.sh
/// runs this test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_and_rules_use_what_the_gate_exports() {
    require::program(PROMETHEUS, "prometheus");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let read = |rel: &str| {
        std::fs::read_to_string(root.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    };
    let dash_text = read("dashboards/jumpgate.json");
    let dash: serde_json::Value = serde_json::from_str(&dash_text).expect("dashboard JSON");
    let queries = dashboard_queries(&dash);
    let rules = read("deploy/prometheus/jumpgate.rules.yml");
    let rule_tests = read("deploy/prometheus/jumpgate.rules.test.yml");
    within(TEST_LIMIT, "test", async {
        let sshd = Sshd::start().await;
        let (gate, admin) = gate_with_admin(GateConfig::new(&sshd)).await;
        known_workload(&gate, admin, 3, 1).await;
        let (status, scrape) = get(admin, "/metrics").await;
        assert_eq!(status, 200, "{scrape}");

        // Sample names (histograms as _bucket, _sum, _count) and their label names.
        let mut exported: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for line in scrape
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let name_end = line.find(['{', ' ']).unwrap_or(line.len());
            let labels = exported.entry(line[..name_end].to_string()).or_default();
            if let Some((inside, _)) = line[name_end..]
                .strip_prefix('{')
                .and_then(|l| l.split_once('}'))
            {
                for pair in inside.split(',') {
                    if let Some((k, _)) = pair.split_once('=') {
                        labels.insert(k.to_string());
                    }
                }
            }
        }
        for name in [
            "process_resident_memory_bytes",
            "process_cpu_seconds_total",
            "process_open_fds",
            "process_max_fds",
        ] {
            assert!(
                exported.contains_key(name),
                "the gate does not export {name}"
            );
        }

        let mut missing = Vec::new();
        let mut checked = BTreeSet::new();
        for (file, text) in [
            ("dashboards/jumpgate.json", dash_text.as_str()),
            ("deploy/prometheus/jumpgate.rules.yml", rules.as_str()),
            (
                "deploy/prometheus/jumpgate.rules.test.yml",
                rule_tests.as_str(),
            ),
        ] {
            let names = metric_names(text);
            assert!(!names.is_empty(), "{file} names no metric");
            for name in names {
                if !exported.contains_key(&name) {
                    missing.push(format!("{file}: {name}"));
                }
                checked.insert(name);
            }
        }
        assert!(
            missing.is_empty(),
            "named but not exported by the gate:\n  {}\nexported: {:?}",
            missing.join("\n  "),
            exported.keys().collect::<Vec<_>>()
        );
        for name in [
            "jumpgate_relay_buffered_bytes",
            "jumpgate_relay_spilled_bytes_total",
            "jumpgate_relay_cap_reached_total",
            "process_open_fds",
        ] {
            assert!(checked.contains(name), "no dashboard or rule uses {name}");
        }

        let mut unfiltered = Vec::new();
        let mut upstream_selectors = 0;
        for (title, expr) in &queries {
            for name in metric_names(expr) {
                let has_upstream = exported.get(&name).is_some_and(|l| l.contains("upstream"));
                for m in matchers_of(expr, &name) {
                    let m = m.unwrap_or_default();
                    let mut need = vec!["job=~\"$job\"", "instance=~\"$instance\""];
                    if has_upstream {
                        need.push("upstream=~\"$upstream\"");
                        upstream_selectors += 1;
                    }
                    for n in need.into_iter().filter(|n| !m.contains(n)) {
                        unfiltered.push(format!("{title}: {name}{{{m}}} lacks {n}"));
                    }
                }
            }
        }
        assert!(unfiltered.is_empty(), "{}", unfiltered.join("\n"));
        assert!(upstream_selectors > 0, "no selector of an upstream metric");

        // The panel queries through a real Prometheus scraping the gate.
        let prom = Prometheus::start(admin).await;
        prom.wait_value("up{job=\"jumpgate\"}", 1.0).await;
        // rate() and increase() need two samples in their window.
        prom.wait_value("count_over_time(up{job=\"jumpgate\"}[1m]) >= bool 3", 1.0)
            .await;
        let instance = admin.to_string();
        let with = |expr: &str, instance: &str, upstream: &str| {
            expr.replace("$__rate_interval", "1m")
                .replace("$job", "jumpgate")
                .replace("$instance", instance)
                .replace("$upstream", upstream)
        };
        assert!(queries.len() >= 10, "{} panel queries", queries.len());
        for (title, expr) in &queries {
            let q = with(expr, &instance, "jump");
            let got = prom.query(&q).await;
            assert!(!got.is_empty(), "{title}: no series for {q}");
            for (labels, _) in &got {
                if let Some(i) = labels.get("instance") {
                    assert_eq!(i, &instance, "{title}: {q}");
                }
            }
            let other = with(expr, "127.0.0.1:1", "jump");
            assert_eq!(prom.query(&other).await, vec![], "{title}: {other}");
            if expr.contains("$upstream") {
                let other = with(expr, &instance, "no-such-upstream");
                assert_eq!(prom.query(&other).await, vec![], "{title}: {other}");
            }
        }
        println!(
            "{} names checked against the scrape; {} panel queries answered by prometheus",
            checked.len(),
            queries.len()
        );
    })
    .await;
}
