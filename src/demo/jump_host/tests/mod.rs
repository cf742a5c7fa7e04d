//! End-to-end tests of the demo jump host: a russh client (and, in `openssh`, the real
//! OpenSSH client) against a [`JumpHost`] on 127.0.0.1. This file holds the fixture and
//! the login and lifecycle tests; `channels` covers what a `direct-tcpip` channel does
//! (page, relay, refusals), `hooks` the extension point.

mod channels;
mod hooks;
mod openssh;

use std::borrow::Cow;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::client;
use russh::keys::{PrivateKey, PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};
use russh::{cipher, Channel, ChannelId, ChannelMsg, ChannelOpenFailure, Preferred};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{sleep, timeout};

use super::*;

pub(super) const LOOPBACK: &str = "127.0.0.1:0";
/// Upper bound for anything that should happen at once on loopback.
pub(super) const SOON: Duration = Duration::from_secs(5);

pub(super) struct Fixture {
    pub(super) host: JumpHost,
    pub(super) host_key: PublicKey,
    pub(super) client_key: PrivateKey,
}

/// A well-behaved jump host with one authorized client key.
pub(super) async fn start() -> Fixture {
    start_with(Plain).await
}

/// A jump host with `hooks` and one authorized client key.
pub(super) async fn start_with(hooks: impl Hooks) -> Fixture {
    let host_key = generate_key().unwrap();
    let client_key = generate_key().unwrap();
    let host = JumpHost::start_with_hooks(
        JumpHostConfig {
            bind: LOOPBACK.parse().unwrap(),
            host_key: host_key.clone(),
            authorized: vec![client_key.public_key().clone()],
        },
        hooks,
    )
    .await
    .unwrap();
    Fixture {
        host,
        host_key: host_key.public_key().clone(),
        client_key,
    }
}

/// A russh client that checks the host key and records channel-open failures.
pub(super) struct TestClient {
    host_key: PublicKey,
    failures: Arc<Mutex<Vec<(ChannelOpenFailure, String)>>>,
}

impl client::Handler for TestClient {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Ok(matches!(key, PublicKeyOrCertificate::PublicKey { key, .. }
            if key.key_data() == self.host_key.key_data()))
    }

    async fn channel_open_failure(
        &mut self,
        _channel: ChannelId,
        reason: ChannelOpenFailure,
        description: &str,
        _language: &str,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        self.failures
            .lock()
            .unwrap()
            .push((reason, description.to_owned()));
        Ok(())
    }
}

pub(super) struct Client {
    pub(super) handle: client::Handle<TestClient>,
    failures: Arc<Mutex<Vec<(ChannelOpenFailure, String)>>>,
}

impl Fixture {
    pub(super) async fn connect_unauthenticated(&self, config: client::Config) -> Client {
        let failures = Arc::new(Mutex::new(Vec::new()));
        let handler = TestClient {
            host_key: self.host_key.clone(),
            failures: failures.clone(),
        };
        let handle = timeout(
            SOON,
            client::connect(Arc::new(config), self.host.addr(), handler),
        )
        .await
        .expect("SSH handshake timed out")
        .expect("SSH handshake failed");
        Client { handle, failures }
    }

    pub(super) async fn connect(&self) -> Client {
        let mut client = self
            .connect_unauthenticated(client::Config::default())
            .await;
        let key = PrivateKeyWithHashAlg::new(Arc::new(self.client_key.clone()), None);
        let auth = client
            .handle
            .authenticate_publickey("anyone", key)
            .await
            .unwrap();
        assert!(auth.success(), "authorized key was rejected: {auth:?}");
        client
    }
}

impl Client {
    pub(super) async fn open(
        &self,
        host: &str,
        port: u32,
    ) -> Result<Channel<client::Msg>, russh::Error> {
        timeout(
            SOON,
            self.handle
                .channel_open_direct_tcpip(host, port, "127.0.0.1", 40000),
        )
        .await
        .expect("channel open got no answer")
    }

    pub(super) fn last_failure(&self) -> (ChannelOpenFailure, String) {
        self.failures.lock().unwrap().last().cloned().unwrap()
    }
}

/// Reads until the server's EOF; panics on CLOSE without EOF or on a stall.
pub(super) async fn read_to_eof(channel: &mut Channel<client::Msg>) -> Vec<u8> {
    let mut got = Vec::new();
    loop {
        match timeout(SOON, channel.wait()).await.expect("read stalled") {
            Some(ChannelMsg::Data { data }) => got.extend_from_slice(&data),
            Some(ChannelMsg::Eof) => return got,
            Some(ChannelMsg::Close) | None => panic!("closed without EOF"),
            Some(_) => {}
        }
    }
}

/// Waits for the server's CLOSE (russh may report it as the end of the stream).
pub(super) async fn expect_close(channel: &mut Channel<client::Msg>) {
    loop {
        match timeout(SOON, channel.wait()).await.expect("no CLOSE") {
            Some(ChannelMsg::Close) | None => return,
            Some(ChannelMsg::Data { .. }) => panic!("data after EOF"),
            Some(_) => {}
        }
    }
}

#[tokio::test]
async fn wrong_key_and_password_are_rejected() {
    let f = start().await;
    let mut client = f.connect_unauthenticated(client::Config::default()).await;
    let stranger = generate_key().unwrap();
    let auth = client
        .handle
        .authenticate_publickey(
            "anyone",
            PrivateKeyWithHashAlg::new(Arc::new(stranger), None),
        )
        .await
        .unwrap();
    assert!(!auth.success());
    let auth = client
        .handle
        .authenticate_password("anyone", "secret")
        .await
        .unwrap();
    assert!(!auth.success());
    let auth = client.handle.authenticate_none("anyone").await.unwrap();
    assert!(!auth.success());
}

#[tokio::test]
async fn session_channels_are_refused() {
    let f = start().await;
    let client = f.connect().await;
    let err = timeout(SOON, client.handle.channel_open_session())
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(
            err,
            russh::Error::ChannelOpenFailure(ChannelOpenFailure::AdministrativelyProhibited)
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn aes128_gcm_is_offered() {
    let f = start().await;
    let config = client::Config {
        preferred: Preferred {
            cipher: Cow::Borrowed(&[cipher::AES_128_GCM]),
            ..Preferred::default()
        },
        ..client::Config::default()
    };
    // Fails at key exchange if the server does not list aes128-gcm@openssh.com.
    f.connect_unauthenticated(config).await;
}

#[tokio::test]
async fn drop_stops_listener_and_live_sessions() {
    let f = start().await;
    let addr = f.host.addr();
    let client = f.connect().await;
    let mut channel = client.open(DEMO_HOST, 80).await.unwrap();
    drop(f.host);
    // The live session dies: its channel ends and new opens fail.
    timeout(SOON, async { while channel.wait().await.is_some() {} })
        .await
        .expect("channel outlived the jump host");
    assert!(client.open(DEMO_HOST, 80).await.is_err());
    timeout(SOON, async {
        while !client.handle.is_closed() {
            sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("session outlived the jump host");
    // The listener is gone.
    assert!(TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn start_refuses_non_loopback_and_names_a_busy_address() {
    let key = generate_key().unwrap();
    let err = JumpHost::start(JumpHostConfig {
        bind: "0.0.0.0:0".parse().unwrap(),
        host_key: key.clone(),
        authorized: Vec::new(),
    })
    .await
    .err()
    .unwrap();
    assert!(matches!(err, JumpHostError::NotLoopback { .. }), "{err}");

    let busy = TcpListener::bind(LOOPBACK).await.unwrap();
    let addr = busy.local_addr().unwrap();
    let err = JumpHost::start(JumpHostConfig {
        bind: addr,
        host_key: key,
        authorized: Vec::new(),
    })
    .await
    .err()
    .unwrap();
    assert!(matches!(err, JumpHostError::Bind { .. }), "{err}");
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
}

#[test]
fn known_hosts_lines_use_openssh_host_forms() {
    let v4 = SocketAddr::from(([127, 0, 0, 1], 2222));
    assert_eq!(
        known_hosts_line(v4, "ssh-ed25519 AAAA\n"),
        "[127.0.0.1]:2222 ssh-ed25519 AAAA\n"
    );
    let v6: SocketAddr = "[::1]:2222".parse().unwrap();
    assert_eq!(known_hosts_line(v6, "k"), "[::1]:2222 k\n");
    let port22 = SocketAddr::from(([127, 0, 0, 1], 22));
    assert_eq!(known_hosts_line(port22, "k"), "127.0.0.1 k\n");
}
