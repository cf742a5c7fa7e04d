//! The small string forms config values use: endpoints (`host:port`,
//! `[v6]:port`), remote-forward binds, listener binds, durations and `~`
//! in paths. Pure functions over text (only `~` reads `$HOME`, through
//! `config::home`); used by validation and by `up`'s flags.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::home::home_dir;
use super::model::Endpoint;

/// `host`, `host:port`, `[v6]:port`, or a bare IPv6 address.
pub fn parse_endpoint(text: &str, default_port: u16) -> Option<Endpoint> {
    let t = text.trim();
    if t.is_empty() || t.contains(char::is_whitespace) {
        return None;
    }
    if let Some(rest) = t.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok().filter(|p| *p != 0)?,
            None if after.is_empty() => default_port,
            None => return None,
        };
        return Some(Endpoint {
            host: host.to_owned(),
            port,
        });
    }
    if t.parse::<std::net::Ipv6Addr>().is_ok() {
        return Some(Endpoint {
            host: t.to_owned(),
            port: default_port,
        });
    }
    match t.split_once(':') {
        Some((h, p)) if !h.is_empty() => Some(Endpoint {
            host: h.to_owned(),
            port: p.parse().ok().filter(|p| *p != 0)?,
        }),
        Some(_) => None,
        None => Some(Endpoint {
            host: t.to_owned(),
            port: default_port,
        }),
    }
}

/// A remote forward's `bind`: `port`, `host:port`, `[v6]:port`; port 0
/// means "the jump host picks". No host means "localhost" (ssh -R).
pub fn parse_remote_bind(text: &str) -> Option<(String, u16)> {
    let t = text.trim();
    if let Ok(port) = t.parse::<u16>() {
        return Some(("localhost".to_owned(), port));
    }
    let (host, port) = match t.strip_prefix('[') {
        Some(rest) => {
            let (h, after) = rest.split_once(']')?;
            (h, after.strip_prefix(':')?)
        }
        None => t.rsplit_once(':')?,
    };
    if host.is_empty() || host.contains(char::is_whitespace) || host.contains(['[', ']']) {
        return None;
    }
    if !t.starts_with('[') && host.contains(':') {
        return None; // a bare IPv6 address needs brackets here
    }
    Some((host.to_owned(), port.parse().ok()?))
}

/// How a duration is written, for messages (also for a duration key given
/// a number: `config::toml_errors`).
pub const DURATION_HINT: &str = "use e.g. \"15s\" or \"250ms\"";
/// How a size is written, for messages.
pub const SIZE_HINT: &str = "use e.g. \"256KiB\", \"64MiB\" or \"2GiB\"";

/// `"15s"`, `"250ms"`, `"1m 30s"` (humantime syntax).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("not a duration ({e}); {DURATION_HINT}"))
}

/// A size in bytes: `"1024"`, `"256KiB"`, `"64MiB"`, `"2GiB"` (binary
/// units; `KB`/`MB`/`GB` are taken as the same binary units, as most
/// people mean them for buffers; a space before the unit is fine).
pub fn parse_size(s: &str) -> Result<u64, String> {
    const HINT: &str = SIZE_HINT;
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(digits);
    let n: u64 = num.parse().map_err(|_| format!("not a size; {HINT}"))?;
    let shift = match unit.trim() {
        "" | "B" => 0,
        "K" | "KB" | "KiB" | "k" | "kB" => 10,
        "M" | "MB" | "MiB" => 20,
        "G" | "GB" | "GiB" => 30,
        "T" | "TB" | "TiB" => 40,
        u => return Err(format!("unknown unit {u:?}; {HINT}")),
    };
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| "too large".to_owned())
}

/// `IP:PORT`, or a bare port meaning 127.0.0.1 (as `ssh -D 1080`).
pub fn parse_bind(s: &str) -> Option<SocketAddr> {
    let s = s.trim();
    if let Ok(port) = s.parse::<u16>() {
        return Some(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    if let Some(rest) = s.strip_prefix("localhost:") {
        return rest
            .parse::<u16>()
            .ok()
            .map(|p| SocketAddr::from(([127, 0, 0, 1], p)));
    }
    s.parse().ok()
}

/// `~` and `~/...` under the home directory; anything else as written.
pub fn expand_tilde(p: &str) -> PathBuf {
    if p == "~" {
        return home_dir();
    }
    match p.strip_prefix("~/") {
        Some(rest) => home_dir().join(rest),
        None => PathBuf::from(p),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_forms() {
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("256KiB"), Ok(256 * 1024));
        assert_eq!(parse_size(" 64 MiB "), Ok(64 << 20));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("0"), Ok(0));
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("5 furlongs").is_err());
        assert!(parse_size("99999999999TiB").is_err());
    }

    #[test]
    fn endpoint_forms() {
        assert_eq!(parse_endpoint("h:0", 22), None);
        assert_eq!(parse_endpoint("::1", 22).map(|e| e.port), Some(22));
    }

    #[test]
    fn remote_bind_forms() {
        let b = |s: &str| parse_remote_bind(s);
        assert_eq!(b("8080"), Some(("localhost".into(), 8080)));
        assert_eq!(b("0"), Some(("localhost".into(), 0)));
        assert_eq!(b("127.0.0.1:22"), Some(("127.0.0.1".into(), 22)));
        assert_eq!(b("[::1]:22"), Some(("::1".into(), 22)));
        assert_eq!(b("*:22"), Some(("*".into(), 22)));
        assert_eq!(b("::1:22"), None);
        assert_eq!(b(":22"), None);
        assert_eq!(b("host:70000"), None);
        assert_eq!(b("host"), None);
    }

    #[test]
    fn bind_forms() {
        assert_eq!(
            parse_bind("1080"),
            Some("127.0.0.1:1080".parse().expect("a"))
        );
        assert_eq!(
            parse_bind("[::1]:1080"),
            Some("[::1]:1080".parse().expect("a"))
        );
        assert_eq!(
            parse_bind("localhost:9"),
            Some("127.0.0.1:9".parse().expect("a"))
        );
        assert_eq!(parse_bind("nonsense"), None);
    }
}
