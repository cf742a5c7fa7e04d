//! The demo's HTTP page: a channel to [`DEMO_HOST`] is answered in-process, so
//! `jumpgate demo` shows a page through the tunnel with no network. Reads one HTTP/1.x
//! request head from the channel, answers 200 (or 400/431 for what is not a sane
//! request), sends EOF and closes. Talks to russh (the channel) only; chosen by the
//! channel dispatch in `handler.rs`.

use std::time::Duration;

use russh::server::Msg;
use russh::Channel;
use tokio::io::AsyncWriteExt;
use tokio::time::timeout;
use tracing::debug;

use super::channel_io::{close, next_incoming, Incoming};
use super::DEMO_HOST;

/// The page reads at most this much request head...
const MAX_REQUEST_HEAD: usize = 16 * 1024;
/// ...within this time; a client that says nothing gets the channel closed.
const REQUEST_HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// After the page and our EOF, how long we wait for the client's EOF before closing.
/// Closing first is legal but leaves an entry in russh's server session (see `close`).
const CLOSE_LINGER: Duration = Duration::from_secs(5);

/// Whether `host` names the page: [`DEMO_HOST`] in any case, with or without the
/// trailing dot of a fully qualified name.
pub(super) fn is_demo_host(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    host.eq_ignore_ascii_case(DEMO_HOST)
}

/// Serves [`DEMO_HOST`]: reads one request head, answers it, sends EOF and closes.
pub(super) async fn serve_hello_page(channel: Channel<Msg>) {
    let (mut read, write) = channel.split();
    let mut head = Vec::new();
    let mut client_done = None; // Some(closed?) once the client sent EOF or closed
    let scan = timeout(REQUEST_HEAD_TIMEOUT, async {
        loop {
            match scan_request_head(&head) {
                Head::Incomplete if head.len() < MAX_REQUEST_HEAD => {}
                Head::Incomplete => return Some(Head::TooLarge),
                done => return Some(done),
            }
            match next_incoming(&mut read).await {
                Incoming::Data(data) => head.extend_from_slice(&data),
                Incoming::Eof => {
                    client_done = Some(false);
                    return match scan_request_head(&head) {
                        Head::Incomplete if trim_leading_newlines(&head).is_empty() => None,
                        Head::Incomplete => Some(Head::NotHttp),
                        done => Some(done),
                    };
                }
                Incoming::Closed => {
                    client_done = Some(true);
                    return None;
                }
            }
        }
    })
    .await;
    let response = match scan {
        Ok(Some(head)) => hello_response(&head),
        Ok(None) => None,
        Err(_) => {
            debug!(timeout = ?REQUEST_HEAD_TIMEOUT, "no request head in time");
            None
        }
    };
    if client_done == Some(true) {
        debug!("client closed the channel before a request");
        return;
    }
    if let Some(response) = response {
        let status = response.status;
        let mut out = write.make_writer();
        let sent = async {
            out.write_all(&response.bytes).await?;
            out.shutdown().await // EOF
        }
        .await;
        match sent {
            Ok(()) => debug!(status, bytes = response.bytes.len(), "hello page sent"),
            Err(e) => debug!(error = %e, "hello page not sent"),
        }
    } else if let Err(e) = write.eof().await {
        debug!(error = %e, "EOF not sent");
    }
    let mut client_closed = client_done == Some(true);
    if client_done.is_none() {
        // Let the client send its EOF (or close) first, within reason; ignore its data.
        let linger = timeout(CLOSE_LINGER, async {
            loop {
                match next_incoming(&mut read).await {
                    Incoming::Data(_) => {}
                    Incoming::Eof => return false,
                    Incoming::Closed => return true,
                }
            }
        })
        .await;
        client_closed = linger.unwrap_or(false);
    }
    close(&write, client_closed).await;
}

/// How far the request head has come.
#[derive(Debug, PartialEq, Eq)]
enum Head {
    /// More bytes needed.
    Incomplete,
    /// A complete head with this method.
    Complete { head_only: bool },
    /// Not an HTTP/1.x request (a TLS hello, SSH, binary, a bad request line).
    NotHttp,
    /// No end of head within [`MAX_REQUEST_HEAD`].
    TooLarge,
}

/// Looks at what arrived so far. Judges the request line as soon as it is complete and
/// rejects non-text early, so a TLS ClientHello gets its 400 without waiting.
fn scan_request_head(buf: &[u8]) -> Head {
    // RFC 9112 2.2: ignore empty lines before the request line.
    let buf = trim_leading_newlines(buf);
    let line_end = buf.iter().position(|&b| b == b'\n');
    let line = &buf[..line_end.unwrap_or(buf.len())];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if !line.iter().all(|&b| (0x20..0x7f).contains(&b)) {
        return Head::NotHttp;
    }
    let Some(line_end) = line_end else {
        return Head::Incomplete;
    };
    let Some(head_only) = parse_request_line(line) else {
        return Head::NotHttp;
    };
    // From the request line's LF on: an empty line ends the head.
    let rest = &buf[line_end..];
    if rest.windows(2).any(|w| w == b"\n\n") || rest.windows(3).any(|w| w == b"\n\r\n") {
        Head::Complete { head_only }
    } else {
        Head::Incomplete
    }
}

fn trim_leading_newlines(buf: &[u8]) -> &[u8] {
    let start = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    &buf[start..]
}

/// `METHOD SP target SP HTTP/1.x`; returns whether it is a HEAD request.
fn parse_request_line(line: &[u8]) -> Option<bool> {
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    let is_token_char = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    let ok = parts.next().is_none()
        && !method.is_empty()
        && method.chars().all(is_token_char)
        && !target.is_empty()
        && matches!(version, "HTTP/1.0" | "HTTP/1.1");
    ok.then_some(method == "HEAD")
}

struct Response {
    status: u16,
    bytes: Vec<u8>,
}

pub(super) const HELLO_BODY: &str = "<!DOCTYPE html>
<html lang=\"en\">
<head><meta charset=\"utf-8\"><title>It works: jumpgate</title></head>
<body>
<h1>It works</h1>
<p>It works: this page came through jumpgate's SSH tunnel from the demo jump host hello.jumpgate.</p>
<p>Your client spoke SOCKS5 to jumpgate on this machine; jumpgate carried the connection
over an SSH <code>direct-tcpip</code> channel to its built-in demo jump host, which served
this page itself. Point jumpgate at your own bastion to reach your private network the same way.</p>
</body>
</html>
";

fn hello_response(head: &Head) -> Option<Response> {
    let (status, reason, content_type, body, head_only) = match *head {
        Head::Complete { head_only } => {
            (200, "OK", "text/html; charset=utf-8", HELLO_BODY, head_only)
        }
        Head::NotHttp => (
            400,
            "Bad Request",
            "text/plain; charset=utf-8",
            "400 Bad Request: hello.jumpgate speaks HTTP/1.1 only\n",
            false,
        ),
        Head::TooLarge => (
            431,
            "Request Header Fields Too Large",
            "text/plain; charset=utf-8",
            "431 Request Header Fields Too Large\n",
            false,
        ),
        Head::Incomplete => return None,
    };
    let mut bytes = format!(
        "HTTP/1.1 {status} {reason}\r\n\
         Content-Type: {content_type}\r\n\
         Content-Length: {}\r\n\
         Cache-Control: no-store\r\n\
         Server: jumpgate-demo\r\n\
         Connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        bytes.extend_from_slice(body.as_bytes());
    }
    Some(Response { status, bytes })
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// Splits a response into its head (as text) and its body.
    pub(in super::super) fn split_response(response: &[u8]) -> (String, Vec<u8>) {
        let text = String::from_utf8_lossy(response);
        let (head, body) = text.split_once("\r\n\r\n").expect("no end of head");
        (head.to_owned(), body.as_bytes().to_vec())
    }

    /// The value of header `name` (any case) in a response head.
    pub(in super::super) fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
        head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    #[test]
    fn request_head_scanning() {
        use Head::*;
        assert_eq!(scan_request_head(b""), Incomplete);
        assert_eq!(scan_request_head(b"GET / HT"), Incomplete);
        assert_eq!(
            scan_request_head(b"GET / HTTP/1.1\r\nHost: x\r\n"),
            Incomplete
        );
        assert_eq!(
            scan_request_head(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
            Complete { head_only: false }
        );
        assert_eq!(
            scan_request_head(b"\r\nHEAD / HTTP/1.0\n\n"),
            Complete { head_only: true }
        );
        assert_eq!(
            scan_request_head(b"GET / HTTP/1.1\nA: b\n\r\n"),
            Complete { head_only: false }
        );
        assert_eq!(scan_request_head(b"\x16\x03\x01"), NotHttp);
        assert_eq!(scan_request_head(b"SSH-2.0-OpenSSH_9.2\r\n"), NotHttp);
        assert_eq!(scan_request_head(b"PRI * HTTP/2.0\r\n\r\n"), NotHttp);
        assert_eq!(scan_request_head(b"GET  / HTTP/1.1\r\n\r\n"), NotHttp);
        assert_eq!(scan_request_head(b"G\xc3\xa9T / HTTP/1.1"), NotHttp);
    }

    #[test]
    fn responses_are_well_formed() {
        let ok = hello_response(&Head::Complete { head_only: false }).unwrap();
        assert_eq!(ok.status, 200);
        let (head, body) = split_response(&ok.bytes);
        assert_eq!(body, HELLO_BODY.as_bytes());
        assert!(body.windows(8).any(|w| w == b"jumpgate"));
        assert_eq!(
            header(&head, "Content-Length"),
            Some(HELLO_BODY.len().to_string().as_str())
        );
        let too_large = hello_response(&Head::TooLarge).unwrap();
        assert_eq!(too_large.status, 431);
        assert!(hello_response(&Head::Incomplete).is_none());
    }

    #[test]
    fn demo_host_names() {
        assert!(is_demo_host("hello.jumpgate"));
        assert!(is_demo_host("Hello.JumpGate."));
        assert!(!is_demo_host("hello.jumpgate.example"));
        assert!(!is_demo_host("xhello.jumpgate"));
    }
}
