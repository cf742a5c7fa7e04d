//! The [`Hooks`] extension point: what a hook decides reaches the client (the refusal
//! reason, the delay, the silence), per channel and per connection, and nothing else.

use std::time::Duration;

use russh::ChannelOpenFailure;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{sleep, timeout};

use super::super::{Hooks, DEMO_HOST};
use super::{start_with, LOOPBACK};

/// Refuses channels to one host with one reason; lets every other channel through.
struct RefuseHost {
    host: &'static str,
    reason: ChannelOpenFailure,
}

impl Hooks for RefuseHost {
    async fn direct_tcpip(&self, host: &str, _port: u32) -> Result<(), ChannelOpenFailure> {
        match host == self.host {
            true => Err(self.reason.clone()),
            false => Ok(()),
        }
    }
}

/// Answers every channel request after a pause.
struct SlowOpens(Duration);

impl Hooks for SlowOpens {
    async fn direct_tcpip(&self, _host: &str, _port: u32) -> Result<(), ChannelOpenFailure> {
        sleep(self.0).await;
        Ok(())
    }
}

/// Takes every connection and holds it without a word until the host stops.
struct Mute;

impl Hooks for Mute {
    async fn accepted(&self, tcp: TcpStream) -> Option<TcpStream> {
        let _held = tcp;
        std::future::pending::<()>().await;
        None
    }
}

#[tokio::test]
async fn refusal_uses_the_hooks_reason() {
    let f = start_with(RefuseHost {
        host: DEMO_HOST,
        reason: ChannelOpenFailure::ResourceShortage,
    })
    .await;
    let client = f.connect().await;
    let err = client.open(DEMO_HOST, 80).await.unwrap_err();
    assert!(
        matches!(
            err,
            russh::Error::ChannelOpenFailure(ChannelOpenFailure::ResourceShortage)
        ),
        "{err:?}"
    );
    assert_eq!(
        client.last_failure().0,
        ChannelOpenFailure::ResourceShortage
    );
    // The hook saw the requested host: a channel elsewhere goes on to the dialer.
    let target = tokio::net::TcpListener::bind(LOOPBACK).await.unwrap();
    let port = target.local_addr().unwrap().port();
    assert!(client.open("127.0.0.1", port.into()).await.is_ok());
}

#[tokio::test]
async fn slow_hook_slows_each_open_without_serializing_them() {
    let delay = Duration::from_millis(400);
    let f = start_with(SlowOpens(delay)).await;
    let client = f.connect().await;
    let started = std::time::Instant::now();
    let (a, b) = tokio::join!(client.open(DEMO_HOST, 80), client.open(DEMO_HOST, 80));
    let elapsed = started.elapsed();
    assert!(a.is_ok() && b.is_ok());
    assert!(elapsed >= delay, "opened after {elapsed:?}");
    assert!(elapsed < 2 * delay, "delays were serialized: {elapsed:?}");
}

#[tokio::test]
async fn connection_taken_by_the_hook_gets_no_banner() {
    let f = start_with(Mute).await;
    let mut tcp = TcpStream::connect(f.host.addr()).await.unwrap();
    tcp.write_all(b"SSH-2.0-test\r\n").await.unwrap();
    let mut buf = [0u8; 64];
    let read = timeout(Duration::from_millis(500), tcp.read(&mut buf)).await;
    assert!(read.is_err(), "silent host answered: {read:?}");
}
