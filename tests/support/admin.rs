//! Talking to the gate's admin endpoint (`[admin] bind`): its address from the log, a
//! plain HTTP/1.1 GET over a tokio socket, and reading one sample out of a
//! Prometheus text scrape. Used by the `admin` and `observability` tests.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::gate::{self, Gate};

/// The `[admin]` table that makes the gate serve its admin endpoint on an ephemeral
/// loopback port (for `GateConfig::extra_toml`).
pub const ADMIN_TOML: &str = "[admin]\nbind = \"127.0.0.1:0\"";

/// The admin address from the `listening listener=admin ... addr=` line.
pub async fn admin_addr(gate: &mut Gate) -> SocketAddr {
    let line = gate
        .wait_log(Duration::from_secs(10), |l| {
            l.contains("listening") && l.contains("listener=admin")
        })
        .await
        .unwrap_or_else(|| panic!("no admin listening line; log:\n{}", gate.log_text()));
    gate::parse_addr(&line).unwrap_or_else(|| panic!("no addr= in {line:?}"))
}

/// A plain HTTP/1.1 GET of `path` on `addr` (any loopback HTTP server): (status, body).
/// Panics if the server does not answer within 10 s.
pub async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    match try_get(addr, path).await {
        Ok(r) => r,
        Err(e) => panic!("GET http://{addr}{path}: {e}"),
    }
}

/// Like [`get`], but a refused or broken connection is an error instead of a panic
/// (for polling a server that is still starting).
pub async fn try_get(addr: SocketAddr, path: &str) -> Result<(u16, String), String> {
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes())
            .await
            .map_err(|e| format!("send request: {e}"))?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw)
            .await
            .map_err(|e| format!("read response: {e}"))?;
        Ok::<_, String>(raw)
    };
    let raw = tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .map_err(|_| "no answer within 10 s".to_string())??;
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("no end of headers in {:?}", String::from_utf8_lossy(&raw)))?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no status line in {head:?}"))?;
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    let body = &raw[end + 4..];
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_vec()
    };
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// Decodes a `Transfer-Encoding: chunked` body (Prometheus' API may send one).
fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("no CRLF after a chunk size")?;
        let size = String::from_utf8_lossy(&rest[..eol]);
        let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|e| format!("bad chunk size {size:?}: {e}"))?;
        if size == 0 {
            return Ok(out);
        }
        let after = &rest[eol + 2..];
        let chunk = after
            .get(..size)
            .ok_or_else(|| format!("chunk of {size} bytes is cut short"))?;
        out.extend_from_slice(chunk);
        rest = after[size..]
            .strip_prefix(b"\r\n")
            .ok_or("no CRLF after a chunk")?;
    }
}

/// The value of the sample whose line starts with `series` (name and labels, as the
/// prometheus crate renders them: labels sorted by name).
pub fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Runs `echoes` echo round trips through `gate`, `refused` CONNECTs to a
/// refused port and one BIND; then waits (bounded) until every tunnel has
/// ended and been counted.
pub async fn known_workload(gate: &Gate, admin: SocketAddr, echoes: usize, refused: usize) {
    use super::socks::{self, Dest};
    let echo = super::targets::echo().await;
    for _ in 0..echoes {
        gate.echo_roundtrip(echo.addr(), b"0123456789").await;
    }
    for _ in 0..refused {
        let code = gate
            .reply_code(socks::CONNECT, &Dest::from(super::refused_addr()))
            .await;
        assert_eq!(code, socks::CONNECTION_REFUSED);
    }
    let code = gate.reply_code(socks::BIND, &Dest::from(echo.addr())).await;
    assert_eq!(code, socks::COMMAND_NOT_SUPPORTED);
    let started = std::time::Instant::now();
    loop {
        let (_, text) = get(admin, "/metrics").await;
        if sample(&text, "jumpgate_connections_active{listener=\"socks\"}") == Some(0.0) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "tunnels still active 10 s after the workload:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn dechunks_a_body() {
        assert_eq!(
            dechunk(b"5\r\nhello\r\n1\r\n!\r\n0\r\n\r\n").unwrap(),
            b"hello!"
        );
        assert!(dechunk(b"5\r\nhel").is_err());
    }

    #[test]
    fn reads_a_sample() {
        let text = "a_total{x=\"1\"} 3\na_total{x=\"12\"} 4\n";
        assert_eq!(sample(text, "a_total{x=\"1\"}"), Some(3.0));
        assert_eq!(sample(text, "a_total{x=\"12\"}"), Some(4.0));
        assert_eq!(sample(text, "a_total"), None);
    }
}
