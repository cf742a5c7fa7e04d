//! What a `direct-tcpip` channel to the demo jump host does: the hello page for
//! `hello.jumpgate`, a byte-exact relay with half-close to a real target, and sshd's
//! refusals when the target cannot be reached.

use russh::ChannelOpenFailure;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::super::hello::tests::{header, split_response};
use super::super::hello::HELLO_BODY;
use super::super::DEMO_HOST;
use super::{expect_close, read_to_eof, start, LOOPBACK};

#[tokio::test]
async fn hello_page_over_direct_tcpip() {
    let f = start().await;
    let client = f.connect().await;
    let mut channel = client.open("HELLO.Jumpgate", 80).await.unwrap();
    channel
        .data_bytes(&b"GET / HTTP/1.1\r\nHost: hello.jumpgate\r\nUser-Agent: test\r\n\r\n"[..])
        .await
        .unwrap();
    // No EOF from us yet: the server answers after the head, like any web server.
    let response = read_to_eof(&mut channel).await;
    let (head, body) = split_response(&response);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(
        header(&head, "Content-Type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(header(&head, "Connection"), Some("close"));
    assert_eq!(
        header(&head, "Content-Length"),
        Some(body.len().to_string().as_str())
    );
    let body = String::from_utf8(body).unwrap();
    assert!(body.contains("It works: this page came through jumpgate's SSH tunnel from the demo jump host hello.jumpgate"));
    channel.eof().await.unwrap();
    expect_close(&mut channel).await;
}

#[tokio::test]
async fn hello_head_request_gets_headers_only() {
    let f = start().await;
    let client = f.connect().await;
    let mut channel = client.open("hello.jumpgate.", 8080).await.unwrap();
    channel
        .data_bytes(&b"HEAD /x HTTP/1.0\r\n\r\n"[..])
        .await
        .unwrap();
    channel.eof().await.unwrap();
    let response = read_to_eof(&mut channel).await;
    let (head, body) = split_response(&response);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(
        header(&head, "Content-Length"),
        Some(HELLO_BODY.len().to_string().as_str())
    );
    assert!(body.is_empty());
    expect_close(&mut channel).await;
}

#[tokio::test]
async fn hello_answers_non_http_with_400_at_once() {
    let f = start().await;
    let client = f.connect().await;
    let mut channel = client.open(DEMO_HOST, 443).await.unwrap();
    // The start of a TLS ClientHello: no newline will ever come.
    channel
        .data_bytes(&[0x16u8, 0x03, 0x01, 0x02, 0x00, 0x01][..])
        .await
        .unwrap();
    let response = read_to_eof(&mut channel).await;
    let (head, body) = split_response(&response);
    assert!(head.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{head}");
    assert_eq!(
        header(&head, "Content-Length"),
        Some(body.len().to_string().as_str())
    );
    channel.eof().await.unwrap();
    expect_close(&mut channel).await;
}

#[tokio::test]
async fn relay_to_echo_server_with_half_close() {
    let echo = TcpListener::bind(LOOPBACK).await.unwrap();
    let echo_port = echo.local_addr().unwrap().port();
    let echo_task = tokio::spawn(async move {
        let (mut tcp, _) = echo.accept().await.unwrap();
        let mut got = Vec::new();
        tcp.read_to_end(&mut got).await.unwrap(); // needs our EOF
        tcp.write_all(&got).await.unwrap();
        tcp.shutdown().await.unwrap();
        got.len()
    });
    let f = start().await;
    let client = f.connect().await;
    let mut channel = client.open("127.0.0.1", echo_port.into()).await.unwrap();
    // Several packets' worth, and more than the echo server reads at once.
    let sent: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    channel.data_bytes(sent.clone()).await.unwrap();
    channel.eof().await.unwrap();
    let echoed = read_to_eof(&mut channel).await;
    assert_eq!(echoed.len(), sent.len());
    assert!(echoed == sent, "echoed bytes differ");
    expect_close(&mut channel).await;
    assert_eq!(echo_task.await.unwrap(), sent.len());
}

#[tokio::test]
async fn relay_target_eof_first_keeps_client_direction_open() {
    let target = TcpListener::bind(LOOPBACK).await.unwrap();
    let port = target.local_addr().unwrap().port();
    let target_task = tokio::spawn(async move {
        let (mut tcp, _) = target.accept().await.unwrap();
        tcp.write_all(b"hello first\n").await.unwrap();
        tcp.shutdown().await.unwrap(); // half-close: we still read
        let mut got = Vec::new();
        tcp.read_to_end(&mut got).await.unwrap();
        got
    });
    let f = start().await;
    let client = f.connect().await;
    let mut channel = client.open("localhost", port.into()).await.unwrap();
    assert_eq!(read_to_eof(&mut channel).await, b"hello first\n");
    channel.data_bytes(&b"late reply"[..]).await.unwrap();
    channel.eof().await.unwrap();
    expect_close(&mut channel).await;
    assert_eq!(target_task.await.unwrap(), b"late reply");
}

#[tokio::test]
async fn refused_port_is_connect_failed_connection_refused() {
    let port = {
        let l = TcpListener::bind(LOOPBACK).await.unwrap();
        l.local_addr().unwrap().port()
    };
    let f = start().await;
    let client = f.connect().await;
    let err = client.open("127.0.0.1", port.into()).await.unwrap_err();
    assert!(
        matches!(
            err,
            russh::Error::ChannelOpenFailure(ChannelOpenFailure::ConnectFailed)
        ),
        "{err:?}"
    );
    assert_eq!(
        client.last_failure(),
        (
            ChannelOpenFailure::ConnectFailed,
            "Connection refused".into()
        )
    );
}

#[tokio::test]
async fn unknown_name_is_connect_failed_name_not_known() {
    let f = start().await;
    let client = f.connect().await;
    let err = client.open("no-such-host.invalid", 80).await.unwrap_err();
    assert!(
        matches!(
            err,
            russh::Error::ChannelOpenFailure(ChannelOpenFailure::ConnectFailed)
        ),
        "{err:?}"
    );
    assert_eq!(
        client.last_failure(),
        (
            ChannelOpenFailure::ConnectFailed,
            "Name or service not known".into()
        )
    );
    // The session survives a refusal.
    assert!(client.open(DEMO_HOST, 80).await.is_ok());
}
