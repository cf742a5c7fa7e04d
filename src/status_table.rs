//! `jumpgate status [--admin URL]`: fetches `/status` from a running
//! jumpgate's admin endpoint (one HTTP/1.1 GET over a plain TCP stream: the
//! endpoint is ours, serves `Content-Length` bodies and speaks nothing else)
//! and prints it as aligned terminal tables. Exit code: 0 ready, 1 not ready
//! or unreachable; `cli` turns a bad `--admin` URL into a usage error (2).
//! The types are `status::Status`, shared with the server.

use std::fmt;
use std::fmt::Write as _;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::status::Status;

/// Where `[admin] bind` listens by default.
pub const DEFAULT_ADMIN: &str = "http://127.0.0.1:9191";

/// Connect, request and response together; the endpoint answers from memory.
const FETCH_LIMIT: Duration = Duration::from_secs(5);

/// A `/status` document is a few KiB; this bounds a misbehaving peer.
const MAX_RESPONSE: u64 = 16 << 20;

/// `http://HOST:PORT` (a trailing `/` is allowed) or a bare `HOST:PORT`, the
/// form `jumpgate up --admin` binds, so one address works in both; nothing
/// else, so that a typo cannot send the request somewhere odd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminUrl {
    /// As written: a name, an IPv4 address or a bracketed IPv6 address.
    host: String,
    port: u16,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "{url:?} is not an admin URL: {why} (expected http://HOST:PORT or HOST:PORT, e.g. {DEFAULT_ADMIN})"
)]
pub struct UrlError {
    url: String,
    why: &'static str,
}

impl AdminUrl {
    pub fn parse(url: &str) -> Result<AdminUrl, UrlError> {
        let err = |why| UrlError {
            url: url.to_owned(),
            why,
        };
        let rest = match url.strip_prefix("http://") {
            Some(rest) => rest,
            None if url.contains("://") => return Err(err("only http:// is supported")),
            None => url,
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#', '@']) || rest.chars().any(char::is_whitespace) {
            return Err(err("no path, query or user part"));
        }
        let (host, port) = rest.rsplit_once(':').ok_or_else(|| err("no port"))?;
        let port: u16 = port.parse().map_err(|_| err("bad port"))?;
        if port == 0 {
            return Err(err("bad port"));
        }
        let bracketed = host.starts_with('[') && host.ends_with(']');
        if host.is_empty() || host == "[]" || (host.contains(':') && !bracketed) {
            return Err(err("bad host (write IPv6 addresses as [::1])"));
        }
        Ok(AdminUrl {
            host: host.to_owned(),
            port,
        })
    }

    /// The host as the resolver wants it (no brackets).
    fn connect_host(&self) -> &str {
        self.host.trim_start_matches('[').trim_end_matches(']')
    }
}

impl fmt::Display for AdminUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}:{}", self.host, self.port)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error(
        "cannot reach jumpgate admin at {url}: {why} \u{2014} is jumpgate running with \
         `[admin] bind` (run) or `--admin` (up) at this address?"
    )]
    Unreachable { url: AdminUrl, why: String },
    #[error("jumpgate admin at {url} did not answer within {}s", FETCH_LIMIT.as_secs())]
    Timeout { url: AdminUrl },
    #[error("jumpgate admin at {url}: {why}")]
    Http { url: AdminUrl, why: String },
    #[error("jumpgate admin at {url}: /status is not jumpgate status JSON: {source}")]
    Json {
        url: AdminUrl,
        source: serde_json::Error,
    },
}

/// `GET /status`, deserialised.
pub async fn fetch(url: &AdminUrl) -> Result<Status, FetchError> {
    let raw = tokio::time::timeout(FETCH_LIMIT, get(url, "/status"))
        .await
        .map_err(|_| FetchError::Timeout { url: url.clone() })??;
    let body = response_body(&raw).map_err(|why| FetchError::Http {
        url: url.clone(),
        why,
    })?;
    serde_json::from_slice(body).map_err(|source| FetchError::Json {
        url: url.clone(),
        source,
    })
}

async fn get(url: &AdminUrl, path: &str) -> Result<Vec<u8>, FetchError> {
    let io_err = |e: std::io::Error, connecting: bool| {
        let why = match e.kind() {
            std::io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
            _ => e.to_string(),
        };
        if connecting {
            FetchError::Unreachable {
                url: url.clone(),
                why,
            }
        } else {
            FetchError::Http {
                url: url.clone(),
                why,
            }
        }
    };
    let mut tcp = TcpStream::connect((url.connect_host(), url.port))
        .await
        .map_err(|e| io_err(e, true))?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {}:{}\r\nAccept: application/json\r\nConnection: close\r\n\r\n",
        url.host, url.port
    );
    tcp.write_all(request.as_bytes())
        .await
        .map_err(|e| io_err(e, false))?;
    let mut raw = Vec::new();
    tcp.take(MAX_RESPONSE)
        .read_to_end(&mut raw)
        .await
        .map_err(|e| io_err(e, false))?;
    Ok(raw)
}

/// The body of a complete HTTP/1.1 response read to EOF, if its status is 200.
fn response_body(raw: &[u8]) -> Result<&[u8], String> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("the answer is not an HTTP response")?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let body = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let code = status_line
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.get(2..5))
        .ok_or_else(|| format!("not an HTTP response: {status_line:?}"))?;
    if code != "200" {
        let text = String::from_utf8_lossy(body);
        return Err(format!("/status answered {code}: {}", clean(text.trim())));
    }
    let mut length = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(format!("unexpected transfer-encoding {value:?}"));
        }
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(value.parse::<usize>().map_err(|_| "bad content-length")?);
        }
    }
    match length {
        Some(n) if n > body.len() => Err(format!(
            "the answer ended after {} of {n} bytes",
            body.len()
        )),
        Some(n) => Ok(&body[..n]),
        None => Ok(body),
    }
}

/// Why `status` is not ready, for people; None when it is.
pub fn not_ready_reason(status: &Status) -> Option<String> {
    if status.draining {
        return Some("jumpgate is shutting down (draining)".to_owned());
    }
    let down: Vec<&str> = status
        .upstreams
        .iter()
        .filter(|u| !u.ready)
        .map(|u| u.name.as_str())
        .collect();
    match down.as_slice() {
        [] if status.ready => None,
        [] => Some("not ready".to_owned()),
        [one] => Some(format!("upstream {} has no live SSH session", clean(one))),
        many => Some(format!(
            "upstreams {} have no live SSH session",
            clean(&many.join(", "))
        )),
    }
}

/// `jumpgate status`: prints the tables; returns the exit code.
pub async fn run(url: &AdminUrl) -> u8 {
    match fetch(url).await {
        Ok(status) => {
            {
                use std::io::Write as _;
                let _ = write!(std::io::stdout(), "{}", render(&status));
            }
            match not_ready_reason(&status) {
                None => 0,
                Some(why) => {
                    crate::say_err!("jumpgate: not ready: {why}");
                    crate::exit::EXIT_RUNTIME
                }
            }
        }
        Err(e) => {
            crate::say_err!("jumpgate: {e}");
            crate::exit::EXIT_RUNTIME
        }
    }
}

/// The whole status as text: a summary line, then one table per section.
pub fn render(s: &Status) -> String {
    let mut out = String::new();
    let state = if s.draining {
        "draining"
    } else if s.ready {
        "ready"
    } else {
        "NOT READY"
    };
    let _ = writeln!(
        out,
        "jumpgate {}, up {}, {state}",
        clean(&s.version),
        age(s.uptime_seconds)
    );

    let mut t = Table::new(&[
        ("UPSTREAM", L),
        ("READY", L),
        ("SESSIONS", R),
        ("MIN", R),
        ("MAX", R),
        ("CONNECTING", R),
        ("CHANNELS/SESSION", R),
    ]);
    for u in &s.upstreams {
        t.row(vec![
            clean(&u.name),
            yes_no(u.ready),
            u.sessions.len().to_string(),
            u.sessions_min.to_string(),
            u.sessions_max.to_string(),
            u.connecting.to_string(),
            u.max_channels_per_session.to_string(),
        ]);
    }
    t.section(&mut out, "UPSTREAMS");

    let mut t = Table::new(&[
        ("UPSTREAM", L),
        ("HOST", L),
        ("SESSIONS", R),
        ("CONNECTING", R),
        ("FAILURES", R),
        ("RETRY IN", R),
        ("LAST ERROR", L),
    ]);
    for u in &s.upstreams {
        for h in &u.hosts {
            t.row(vec![
                clean(&u.name),
                clean(&h.address),
                h.sessions.to_string(),
                h.connecting.to_string(),
                h.failures.to_string(),
                h.retry_in_seconds
                    .map_or_else(|| "-".to_owned(), |r| age(r.ceil())),
                h.last_error
                    .as_deref()
                    .map_or_else(|| "-".to_owned(), clean),
            ]);
        }
    }
    t.section(&mut out, "HOSTS");

    let mut t = Table::new(&[
        ("UPSTREAM", L),
        ("ID", R),
        ("HOST", L),
        ("KIND", L),
        ("STATE", L),
        ("AGE", R),
        ("CHANNELS", R),
        ("UP", R),
        ("DOWN", R),
        ("BUFFERED", R),
    ]);
    for u in &s.upstreams {
        for x in &u.sessions {
            t.row(vec![
                clean(&u.name),
                x.id.to_string(),
                clean(&x.host),
                clean(&x.kind),
                clean(&x.state),
                age(x.age_seconds),
                x.channels.to_string(),
                bytes(x.bytes_up),
                bytes(x.bytes_down),
                bytes(x.buffered_memory_bytes + x.buffered_disk_bytes),
            ]);
        }
    }
    t.section(&mut out, "SESSIONS");

    let mut t = Table::new(&[
        ("LISTENER", L),
        ("KIND", L),
        ("BIND", L),
        ("VIA", L),
        ("ACTIVE", R),
        ("OK", R),
        ("FAILED", R),
        ("REJECTED", R),
        ("RATE LIMITED", R),
    ]);
    for l in &s.listeners {
        t.row(vec![
            clean(&l.name),
            clean(&l.kind),
            clean(&l.bind),
            clean(&l.via),
            l.connections_active.to_string(),
            l.connections_ok.to_string(),
            l.connections_failed.to_string(),
            l.connections_rejected.to_string(),
            l.connections_rate_limited.to_string(),
        ]);
    }
    t.section(&mut out, "LISTENERS");

    let l = &s.limits;
    let mut t = Table::new(&[
        ("PER-CLIENT RATE", R),
        ("MAX CONNECTIONS", R),
        ("CONNECTIONS", R),
        ("REFUSED BY LIMITS", R),
    ]);
    t.row(vec![
        l.connections_per_second_per_client
            .map_or_else(|| "unlimited".to_owned(), |n| format!("{n}/s")),
        l.max_connections
            .map_or_else(|| "unlimited".to_owned(), |n| n.to_string()),
        l.connections.to_string(),
        l.rate_limited.to_string(),
    ]);
    t.section(&mut out, "LIMITS");

    // Newest first over all upstreams (each upstream's list already is).
    let mut errors: Vec<(&str, &crate::status::ErrorStatus)> = s
        .upstreams
        .iter()
        .flat_map(|u| u.recent_errors.iter().map(move |e| (u.name.as_str(), e)))
        .collect();
    errors.sort_by(|a, b| a.1.age_seconds.total_cmp(&b.1.age_seconds));
    let mut t = Table::new(&[("UPSTREAM", L), ("AGE", R), ("ERROR", L)]);
    for (name, e) in errors {
        t.row(vec![clean(name), age(e.age_seconds), clean(&e.message)]);
    }
    t.section(&mut out, "RECENT ERRORS (newest first)");
    out
}

#[derive(Clone, Copy)]
enum Align {
    Left,
    Right,
}
use Align::{Left as L, Right as R};

/// Columns padded to their widest cell, two spaces apart, no trailing blanks.
struct Table {
    columns: Vec<(&'static str, Align)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(columns: &[(&'static str, Align)]) -> Table {
        Table {
            columns: columns.to_vec(),
            rows: Vec::new(),
        }
    }

    fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// `TITLE`, then the table or `(none)`, then a blank line.
    fn section(&self, out: &mut String, title: &str) {
        let _ = writeln!(out, "\n{title}");
        if self.rows.is_empty() {
            out.push_str("(none)\n");
            return;
        }
        let widths: Vec<usize> = self
            .columns
            .iter()
            .enumerate()
            .map(|(i, (head, _))| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(i))
                    .map(|c| c.chars().count())
                    .chain([head.len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let heads: Vec<String> = self.columns.iter().map(|(h, _)| (*h).to_owned()).collect();
        for cells in std::iter::once(&heads).chain(&self.rows) {
            let mut line = String::new();
            for (i, ((_, align), width)) in self.columns.iter().zip(&widths).enumerate() {
                let cell = cells.get(i).map_or("", String::as_str);
                let pad = " ".repeat(width.saturating_sub(cell.chars().count()));
                if i > 0 {
                    line.push_str("  ");
                }
                match align {
                    Align::Left => {
                        line.push_str(cell);
                        line.push_str(&pad);
                    }
                    Align::Right => {
                        line.push_str(&pad);
                        line.push_str(cell);
                    }
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
    }
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.to_owned()
}

/// Text from the server with control characters escaped: error messages carry
/// destination names that SOCKS clients choose, and a terminal must not
/// interpret them.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// `512 B`, `1.50 KiB`, `12.3 MiB`, `942 MiB` (binary units, as the page).
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    let digits = if v < 10.0 {
        2
    } else if v < 100.0 {
        1
    } else {
        0
    };
    format!("{v:.digits$} {}", UNITS[unit])
}

/// `42s`, `3m 7s`, `2h 5m`, `4d 1h` (as the page).
pub fn age(seconds: f64) -> String {
    let s = if seconds.is_finite() && seconds > 0.0 {
        seconds as u64
    } else {
        0
    };
    let (m, h) = (s / 60, s / 3600);
    if s < 60 {
        format!("{s}s")
    } else if m < 60 {
        format!("{m}m {}s", s % 60)
    } else if h < 24 {
        format!("{h}h {}m", m % 60)
    } else {
        format!("{}d {}h", h / 24, h % 24)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::{
        ErrorStatus, HostStatus, LimitsStatus, ListenerStatus, SessionStatus, UpstreamStatus,
    };

    fn sample() -> Status {
        Status {
            version: "0.1.0".into(),
            uptime_seconds: 3725.4,
            ready: false,
            draining: false,
            upstreams: vec![
                UpstreamStatus {
                    name: "corp".into(),
                    ready: true,
                    sessions_min: 1,
                    sessions_max: 4,
                    max_channels_per_session: 64,
                    connecting: 0,
                    hosts: vec![HostStatus {
                        address: "ci@bastion:22".into(),
                        sessions: 2,
                        connecting: 0,
                        failures: 0,
                        retry_in_seconds: None,
                        key_refused: false,
                        last_error: None,
                    }],
                    sessions: vec![
                        SessionStatus {
                            id: 3,
                            host: "ci@bastion:22".into(),
                            kind: "slot".into(),
                            state: "ready".into(),
                            age_seconds: 3700.9,
                            channels: 1,
                            bytes_up: 123_456,
                            bytes_down: 987_654_321,
                            buffered_memory_bytes: 0,
                            buffered_disk_bytes: 0,
                            parked: false,
                            relay_buffers: 1,
                        },
                        SessionStatus {
                            id: 12,
                            host: "ci@bastion:22".into(),
                            kind: "extra".into(),
                            state: "stalled".into(),
                            age_seconds: 12.3,
                            channels: 64,
                            bytes_up: 10,
                            bytes_down: 0,
                            buffered_memory_bytes: 256 * 1024,
                            buffered_disk_bytes: 64 << 20,
                            parked: true,
                            relay_buffers: 64,
                        },
                    ],
                    recent_errors: vec![ErrorStatus {
                        unix_time: 1.79e9,
                        age_seconds: 30.0,
                        message: "open db.internal:5432: connection refused".into(),
                    }],
                },
                UpstreamStatus {
                    name: "lab".into(),
                    ready: false,
                    sessions_min: 1,
                    sessions_max: 1,
                    max_channels_per_session: 64,
                    connecting: 1,
                    hosts: vec![HostStatus {
                        address: "ops@10.0.0.2:22 via ops@outer:22".into(),
                        sessions: 0,
                        connecting: 1,
                        failures: 3,
                        retry_in_seconds: Some(4.2),
                        key_refused: false,
                        last_error: Some("Connection refused".into()),
                    }],
                    sessions: vec![],
                    recent_errors: vec![ErrorStatus {
                        unix_time: 1.79e9,
                        age_seconds: 2.0,
                        message: "open evil\u{1b}[2J.example:1: refused".into(),
                    }],
                },
            ],
            listeners: vec![ListenerStatus {
                name: "socks".into(),
                kind: "socks5".into(),
                bind: "127.0.0.1:1080".into(),
                via: "corp".into(),
                connections_active: 1,
                connections_ok: 1234,
                connections_failed: 2,
                connections_rejected: 0,
                connections_rate_limited: 5,
            }],
            limits: LimitsStatus {
                connections_per_second_per_client: Some(50),
                max_connections: None,
                connections: 1,
                rate_limited: 5,
            },
            capacity: None,
            relay: Default::default(),
        }
    }

    /// The lines of `section` in `text`, header first, up to the blank line.
    fn section<'a>(text: &'a str, title: &str) -> Vec<&'a str> {
        let mut lines = text.lines().skip_while(|l| *l != title).skip(1);
        lines.by_ref().take_while(|l| !l.is_empty()).collect()
    }

    #[test]
    fn sessions_table_is_aligned_with_real_values() {
        let text = render(&sample());
        assert_eq!(
            section(&text, "SESSIONS"),
            [
                "UPSTREAM  ID  HOST           KIND   STATE      AGE  CHANNELS       UP     DOWN  BUFFERED",
                "corp       3  ci@bastion:22  slot   ready    1h 1m         1  121 KiB  942 MiB       0 B",
                "corp      12  ci@bastion:22  extra  stalled    12s        64     10 B      0 B  64.2 MiB",
            ]
        );
    }

    #[test]
    fn every_section_is_there() {
        let text = render(&sample());
        assert!(
            text.starts_with("jumpgate 0.1.0, up 1h 2m, NOT READY\n"),
            "{text}"
        );
        assert_eq!(
            section(&text, "UPSTREAMS"),
            [
                "UPSTREAM  READY  SESSIONS  MIN  MAX  CONNECTING  CHANNELS/SESSION",
                "corp      yes           2    1    4           0                64",
                "lab       no            0    1    1           1                64",
            ]
        );
        assert_eq!(
            section(&text, "HOSTS"),
            [
                "UPSTREAM  HOST                              SESSIONS  CONNECTING  FAILURES  RETRY IN  LAST ERROR",
                "corp      ci@bastion:22                            2           0         0         -  -",
                "lab       ops@10.0.0.2:22 via ops@outer:22         0           1         3        5s  Connection refused",
            ]
        );
        assert_eq!(
            section(&text, "LISTENERS"),
            [
                "LISTENER  KIND    BIND            VIA   ACTIVE    OK  FAILED  REJECTED  RATE LIMITED",
                "socks     socks5  127.0.0.1:1080  corp       1  1234       2         0             5",
            ]
        );
        assert_eq!(
            section(&text, "LIMITS"),
            [
                "PER-CLIENT RATE  MAX CONNECTIONS  CONNECTIONS  REFUSED BY LIMITS",
                "           50/s        unlimited            1                  5",
            ]
        );
    }

    #[test]
    fn errors_are_newest_first_over_upstreams_and_escaped() {
        let text = render(&sample());
        assert_eq!(
            section(&text, "RECENT ERRORS (newest first)"),
            [
                "UPSTREAM  AGE  ERROR",
                "lab        2s  open evil\\u{1b}[2J.example:1: refused",
                "corp      30s  open db.internal:5432: connection refused",
            ]
        );
        assert!(!text.contains('\u{1b}'));
    }

    #[test]
    fn empty_sections_say_none() {
        let mut s = sample();
        s.upstreams.clear();
        let text = render(&s);
        assert_eq!(section(&text, "SESSIONS"), ["(none)"]);
        assert_eq!(section(&text, "RECENT ERRORS (newest first)"), ["(none)"]);
    }

    #[test]
    fn not_ready_names_the_upstream() {
        let mut s = sample();
        assert_eq!(
            not_ready_reason(&s).as_deref(),
            Some("upstream lab has no live SSH session")
        );
        s.upstreams[1].ready = true;
        s.ready = true;
        assert_eq!(not_ready_reason(&s), None);
        s.draining = true;
        assert!(not_ready_reason(&s).is_some_and(|r| r.contains("draining")));
    }

    #[test]
    fn units() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.50 KiB");
        assert_eq!(bytes(15 << 20), "15.0 MiB");
        assert_eq!(bytes(3 << 40), "3.00 TiB");
        assert_eq!(age(-1.0), "0s");
        assert_eq!(age(59.9), "59s");
        assert_eq!(age(187.0), "3m 7s");
        assert_eq!(age(7500.0), "2h 5m");
        assert_eq!(age(90_000.0), "1d 1h");
    }

    #[test]
    fn admin_urls() {
        let u = AdminUrl::parse("http://127.0.0.1:9191").unwrap();
        assert_eq!((u.connect_host(), u.port), ("127.0.0.1", 9191));
        assert_eq!(u.to_string(), "http://127.0.0.1:9191");
        let u = AdminUrl::parse("http://[::1]:9191/").unwrap();
        assert_eq!((u.connect_host(), u.port), ("::1", 9191));
        assert_eq!(u.to_string(), "http://[::1]:9191");
        assert!(AdminUrl::parse("http://localhost:80").is_ok());
        // The bare form `jumpgate up --admin` takes works here too.
        let u = AdminUrl::parse("127.0.0.1:9191").unwrap();
        assert_eq!(u.to_string(), "http://127.0.0.1:9191");
        let u = AdminUrl::parse("[::1]:9191").unwrap();
        assert_eq!((u.connect_host(), u.port), ("::1", 9191));
        for bad in [
            "https://127.0.0.1:9191",
            "ftp://127.0.0.1:9191",
            "9191",
            "http://127.0.0.1",
            "http://127.0.0.1:0",
            "http://127.0.0.1:99999",
            "http://:9191",
            "http://::1:9191",
            "http://127.0.0.1:9191/status",
            "http://u@127.0.0.1:9191",
            "127.0.0.1:9191/status",
        ] {
            let e = AdminUrl::parse(bad).unwrap_err();
            assert!(
                e.to_string()
                    .contains("expected http://HOST:PORT or HOST:PORT"),
                "{e}"
            );
        }
    }

    #[test]
    fn unreachable_names_both_ways_to_set_the_address() {
        let e = FetchError::Unreachable {
            url: AdminUrl::parse(DEFAULT_ADMIN).unwrap(),
            why: "connection refused".into(),
        };
        let text = e.to_string();
        assert!(
            text.contains("`--admin`") && text.contains("`[admin] bind`"),
            "{text}"
        );
    }

    #[test]
    fn responses() {
        let ok =
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: application/json\r\n\r\n{}";
        assert_eq!(response_body(ok).unwrap(), b"{}");
        let short = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}";
        assert!(response_body(short).unwrap_err().contains("2 of 10"));
        let missing = b"HTTP/1.1 404 Not Found\r\ncontent-length: 10\r\n\r\nnot found\n";
        assert_eq!(
            response_body(missing).unwrap_err(),
            "/status answered 404: not found"
        );
        assert!(response_body(b"SSH-2.0-OpenSSH_9.2\r\n").is_err());
    }
}
