//! A faulty jump host for `faults`: the demo's in-process russh jump host
//! (`jumpgate::demo::jump_host`) with [`Behaviour`] plugged into its hooks, so that
//! channel opens are slow or refused, or the server never says hello. The server code is
//! the demo's; only the misbehaviour lives here, outside the library.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use jumpgate::demo::jump_host::{generate_key, Hooks, JumpHost, JumpHostConfig};
use russh::ChannelOpenFailure;
use tempfile::TempDir;
use tokio::net::TcpStream;

use super::GateConfig;

/// How to misbehave. The default is a well-behaved jump host.
#[derive(Clone, Debug, Default)]
pub struct Behaviour {
    /// Delay every `direct-tcpip` answer, accept or refusal, by this much (slow opens).
    /// The delay is per channel: other channels and the session keep moving.
    pub open_delay: Option<Duration>,
    /// Refuse every `direct-tcpip` channel with this reason (after `open_delay`).
    /// The description sent is russh's stock text for the reason.
    pub refuse_all: Option<ChannelOpenFailure>,
    /// Accept TCP connections but never send the SSH banner (a hung server).
    pub silent: bool,
}

impl Hooks for Behaviour {
    async fn accepted(&self, mut tcp: TcpStream) -> Option<TcpStream> {
        if !self.silent {
            return Some(tcp);
        }
        // Hold the connection, say nothing, discard what arrives until the client leaves.
        if let Err(e) = tokio::io::copy(&mut tcp, &mut tokio::io::sink()).await {
            eprintln!("fault host: silent connection read failed: {e}");
        }
        None
    }

    async fn direct_tcpip(&self, _host: &str, _port: u32) -> Result<(), ChannelOpenFailure> {
        if let Some(delay) = self.open_delay {
            tokio::time::sleep(delay).await;
        }
        match &self.refuse_all {
            Some(reason) => Err(reason.clone()),
            None => Ok(()),
        }
    }
}

/// The demo jump host on 127.0.0.1:0 with `behaviour`, a client key (0600) and a
/// known_hosts line for it, in a temp dir that lives as long as the host.
pub struct FaultHost {
    jump: JumpHost,
    _dir: TempDir,
    key: PathBuf,
    known_hosts: PathBuf,
}

impl FaultHost {
    pub async fn start(behaviour: Behaviour) -> FaultHost {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;

        let host_key = generate_key().expect("generate host key");
        let client_key = generate_key().expect("generate client key");
        let dir = tempfile::Builder::new()
            .prefix("jg-faulthost-")
            .tempdir()
            .expect("temp dir");
        let key = dir.path().join("id_ed25519");
        let pem = client_key
            .to_openssh(russh::keys::ssh_key::LineEnding::LF)
            .expect("encode client key");
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&key)
            .and_then(|mut f| f.write_all(pem.as_bytes()))
            .expect("write client key");
        let jump = JumpHost::start_with_hooks(
            JumpHostConfig {
                bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
                host_key: host_key.clone(),
                authorized: vec![client_key.public_key().clone()],
            },
            behaviour,
        )
        .await
        .expect("start the in-process jump host");
        let known_hosts = dir.path().join("known_hosts");
        std::fs::write(&known_hosts, jump.known_hosts_line()).expect("write known_hosts");
        FaultHost {
            jump,
            _dir: dir,
            key,
            known_hosts,
        }
    }

    /// The port it listens on (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.jump.addr().port()
    }

    /// A gate config for this host: user `tester`, its key and known_hosts.
    pub fn gate_config(&self) -> GateConfig {
        GateConfig::for_endpoint(
            "127.0.0.1",
            self.port(),
            "tester",
            &self.key,
            &self.known_hosts,
        )
    }
}
