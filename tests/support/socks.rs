//! A small SOCKS5 client (RFC 1928) written as raw bytes, so that tests see exactly
//! what the proxy sends: the reply code of CONNECT, BIND and UDP ASSOCIATE, and
//! whether the proxy closed without replying. No-auth only. Every read has a deadline.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long one SOCKS exchange may take before the client gives up. Longer than any
/// connect_timeout the tests configure, so that a timeout here means a hung proxy.
pub const EXCHANGE_LIMIT: Duration = Duration::from_secs(30);

pub const CONNECT: u8 = 0x01;
pub const BIND: u8 = 0x02;
pub const UDP_ASSOCIATE: u8 = 0x03;

pub const SUCCEEDED: u8 = 0x00;
pub const GENERAL_FAILURE: u8 = 0x01;
pub const NOT_ALLOWED: u8 = 0x02;
pub const HOST_UNREACHABLE: u8 = 0x04;
pub const CONNECTION_REFUSED: u8 = 0x05;
pub const COMMAND_NOT_SUPPORTED: u8 = 0x07;
pub const ADDRESS_TYPE_NOT_SUPPORTED: u8 = 0x08;

/// A destination as the client names it.
#[derive(Clone, Debug)]
pub enum Dest {
    Ip(SocketAddr),
    /// Sent as ATYP 3: the proxy must not resolve it locally.
    Domain(String, u16),
}

impl From<SocketAddr> for Dest {
    fn from(a: SocketAddr) -> Dest {
        Dest::Ip(a)
    }
}

impl fmt::Display for Dest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dest::Ip(a) => write!(f, "{a}"),
            Dest::Domain(h, p) => write!(f, "{h}:{p}"),
        }
    }
}

/// Encodes a request: VER CMD RSV ATYP DST.ADDR DST.PORT.
pub fn encode_request(cmd: u8, dest: &Dest) -> Vec<u8> {
    let mut req = vec![0x05, cmd, 0x00];
    let port = match dest {
        Dest::Ip(SocketAddr::V4(a)) => {
            req.push(0x01);
            req.extend_from_slice(&a.ip().octets());
            a.port()
        }
        Dest::Ip(SocketAddr::V6(a)) => {
            req.push(0x04);
            req.extend_from_slice(&a.ip().octets());
            a.port()
        }
        Dest::Domain(host, port) => {
            let len = u8::try_from(host.len()).expect("domain name longer than 255 bytes");
            req.push(0x03);
            req.push(len);
            req.extend_from_slice(host.as_bytes());
            *port
        }
    };
    req.extend_from_slice(&port.to_be_bytes());
    req
}

/// The proxy's reply to a request (BND.ADDR and BND.PORT are read and ignored).
#[derive(Debug)]
pub struct Reply {
    pub code: u8,
}

/// Opens a TCP connection to the proxy and does the no-auth greeting.
pub async fn greet(proxy: SocketAddr) -> anyhow::Result<TcpStream> {
    let mut s = TcpStream::connect(proxy)
        .await
        .with_context(|| format!("connect to proxy {proxy}"))?;
    s.set_nodelay(true)?;
    s.write_all(&[0x05, 0x01, 0x00]).await?;
    let mut resp = [0u8; 2];
    read_exact(&mut s, &mut resp)
        .await
        .context("greeting reply")?;
    if resp != [0x05, 0x00] {
        bail!("proxy refused no-auth: greeting reply {resp:02x?}");
    }
    Ok(s)
}

/// Sends `request` (already encoded) after the greeting and reads the reply.
pub async fn request_raw(proxy: SocketAddr, request: &[u8]) -> anyhow::Result<(Reply, TcpStream)> {
    tokio::time::timeout(EXCHANGE_LIMIT, async {
        let mut s = greet(proxy).await?;
        s.write_all(request).await?;
        let reply = read_reply(&mut s).await?;
        Ok((reply, s))
    })
    .await
    .with_context(|| format!("SOCKS exchange with {proxy} took longer than {EXCHANGE_LIMIT:?}"))?
}

/// Sends a request with `cmd` to `dest` and returns the reply and the stream.
pub async fn request(
    proxy: SocketAddr,
    cmd: u8,
    dest: &Dest,
) -> anyhow::Result<(Reply, TcpStream)> {
    request_raw(proxy, &encode_request(cmd, dest))
        .await
        .with_context(|| format!("SOCKS cmd {cmd:#04x} to {dest} via {proxy}"))
}

/// Only the reply code of a request.
pub async fn reply_code(proxy: SocketAddr, cmd: u8, dest: &Dest) -> anyhow::Result<u8> {
    Ok(request(proxy, cmd, dest).await?.0.code)
}

/// CONNECT; succeeds only with reply 0x00 and returns the tunnel.
pub async fn connect(proxy: SocketAddr, dest: impl Into<Dest>) -> anyhow::Result<TcpStream> {
    let dest = dest.into();
    let (reply, s) = request(proxy, CONNECT, &dest).await?;
    if reply.code != SUCCEEDED {
        bail!("CONNECT {dest} via {proxy}: reply {:#04x}", reply.code);
    }
    Ok(s)
}

async fn read_reply(s: &mut TcpStream) -> anyhow::Result<Reply> {
    let mut head = [0u8; 4];
    read_exact(s, &mut head).await.context("reply header")?;
    if head[0] != 0x05 {
        bail!(
            "reply version {:#04x}, want 0x05 (reply {head:02x?})",
            head[0]
        );
    }
    let code = head[1];
    let addr_len = match head[3] {
        0x01 => 4,
        0x04 => 16,
        0x03 => {
            let mut l = [0u8; 1];
            read_exact(s, &mut l)
                .await
                .context("reply BND.ADDR length")?;
            usize::from(l[0])
        }
        other => bail!("reply address type {other:#04x} (reply code {code:#04x})"),
    };
    let mut rest = vec![0u8; addr_len + 2];
    match read_exact(s, &mut rest).await {
        Ok(()) => Ok(Reply { code }),
        // A failure reply cut short is still a reply code worth reporting.
        Err(_) if code != SUCCEEDED => Ok(Reply { code }),
        Err(e) => Err(e).context("reply BND.ADDR"),
    }
}

async fn read_exact(s: &mut TcpStream, buf: &mut [u8]) -> anyhow::Result<()> {
    match s.read_exact(buf).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            bail!("proxy closed the connection without a (complete) reply")
        }
        Err(e) => Err(e.into()),
    }
}

/// CONNECT to an echo server, send `payload`, read it back, close.
pub async fn echo_roundtrip(
    proxy: SocketAddr,
    dest: impl Into<Dest>,
    payload: &[u8],
) -> anyhow::Result<()> {
    let dest = dest.into();
    let mut s = connect(proxy, dest.clone()).await?;
    tokio::time::timeout(EXCHANGE_LIMIT, async {
        s.write_all(payload).await?;
        let mut back = vec![0u8; payload.len()];
        s.read_exact(&mut back).await?;
        if back != payload {
            bail!("echo through {dest} returned different bytes");
        }
        Ok(())
    })
    .await
    .with_context(|| format!("echo round trip to {dest} took longer than {EXCHANGE_LIMIT:?}"))?
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn encodes_all_address_types() {
        let v4 = encode_request(CONNECT, &Dest::Ip("127.0.0.1:80".parse().unwrap()));
        assert_eq!(v4, [5, 1, 0, 1, 127, 0, 0, 1, 0, 80]);
        let v6 = encode_request(BIND, &Dest::Ip("[::1]:443".parse().unwrap()));
        assert_eq!(v6.len(), 4 + 16 + 2);
        assert_eq!(&v6[..4], [5, 2, 0, 4]);
        assert_eq!(&v6[v6.len() - 2..], [1, 187]);
        let d = encode_request(UDP_ASSOCIATE, &Dest::Domain("ab".into(), 1));
        assert_eq!(d, [5, 3, 0, 3, 2, b'a', b'b', 0, 1]);
    }
}
