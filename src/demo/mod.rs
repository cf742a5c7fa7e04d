//! `jumpgate demo`: the embedded default. Starts an in-process jump host
//! (`jump_host`) on loopback with fresh keys, writes the client key and a
//! known_hosts line to a private temp dir, and runs the ordinary daemon
//! against it on the one startup path (`daemon::startup`), so the demo
//! exercises the real path (key files, host key check, SOCKS, relay) with no
//! setup. Its own part: trying the next port when the asked one is taken.

pub mod jump_host;

use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;

use crate::config::{
    Config, Endpoint, HostKeyCheck, Listener, ListenerKind, Upstream, DEFAULT_BACKOFF,
    DEFAULT_KEEPALIVE, DEFAULT_MAX_CHANNELS, DEFAULT_SESSIONS,
};
use crate::daemon::startup::{Binds, Startup};
use crate::daemon::DaemonError;
use crate::exit::EXIT_RUNTIME;
use jump_host::{JumpHost, JumpHostConfig, DEMO_HOST};
use russh::keys::{Algorithm, PrivateKey};

/// Ports tried after the requested one before letting the OS choose.
const PORT_TRIES: u16 = 10;
/// The admin endpoint's default port (`[admin] bind`), used when free.
const ADMIN_PORT: u16 = 9191;
/// How long open tunnels may finish after Ctrl-C: a demo has nothing to lose.
const GRACE: Duration = Duration::from_secs(2);

pub async fn run(first_port: u16) -> u8 {
    match start(first_port).await {
        Ok(code) => code,
        Err(e) => {
            crate::say_err!("jumpgate demo: {e}");
            EXIT_RUNTIME
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum DemoError {
    #[error("cannot create keys: {0}")]
    Keys(String),
    #[error("cannot write demo files: {0}")]
    Files(#[from] std::io::Error),
    #[error("{0}")]
    JumpHost(#[from] jump_host::JumpHostError),
}

async fn start(first_port: u16) -> Result<u8, DemoError> {
    let host_key = PrivateKey::random(&mut russh::keys::key::safe_rng(), Algorithm::Ed25519)
        .map_err(|e| DemoError::Keys(e.to_string()))?;
    let client_key = PrivateKey::random(&mut russh::keys::key::safe_rng(), Algorithm::Ed25519)
        .map_err(|e| DemoError::Keys(e.to_string()))?;
    let dir = tempfile::Builder::new()
        .prefix("jumpgate-demo-")
        .tempdir()?;
    let key_path = dir.path().join("id_ed25519");
    let pem = client_key
        .to_openssh(Default::default())
        .map_err(|e| DemoError::Keys(e.to_string()))?;
    write_private(&key_path, pem.as_bytes())?;

    let jump = JumpHost::start(JumpHostConfig {
        bind: SocketAddr::from(([127, 0, 0, 1], 0)),
        host_key: host_key.clone(),
        authorized: vec![client_key.public_key().clone()],
    })
    .await?;
    let known_hosts = dir.path().join("known_hosts");
    let host_pub = host_key
        .public_key()
        .to_openssh()
        .map_err(|e| DemoError::Keys(e.to_string()))?;
    std::fs::write(
        &known_hosts,
        format!("[127.0.0.1]:{} {}\n", jump.addr().port(), host_pub.trim()),
    )?;

    let upstream = Upstream {
        name: "demo".into(),
        hosts: vec![Endpoint {
            host: "127.0.0.1".into(),
            port: jump.addr().port(),
        }],
        proxy_jump: vec![],
        proxy_command: None,
        user: "demo".into(),
        identity_files: vec![key_path.clone()],
        skip_encrypted_identities: false,
        passphrase: None,
        agent: false,
        agent_socket: None,
        known_hosts,
        // The demo's host key is in its own file only.
        global_known_hosts: Vec::new(),
        host_key_check: HostKeyCheck::Strict,
        keepalive: DEFAULT_KEEPALIVE,
        reconnect: DEFAULT_BACKOFF,
        connect_timeout: Duration::from_secs(10),
        sessions: DEFAULT_SESSIONS,
        max_channels_per_session: DEFAULT_MAX_CHANNELS,
        remote_forwards: Vec::new(),
        exit_on_forward_failure: false,
        algorithms: Default::default(),
        certificate_files: vec![],
        interface: Default::default(),
        missing_identities: Vec::new(),
    };
    let config = Config {
        upstreams: vec![upstream],
        listeners: vec![Listener {
            name: "demo".into(),
            kind: ListenerKind::Socks5,
            bind: SocketAddr::from(([127, 0, 0, 1], first_port)),
            also_bind: Vec::new(),
            via: 0,
            handshake_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
        }],
        // The admin endpoint's usual port if free, else any.
        admin: Some(SocketAddr::from(([127, 0, 0, 1], ADMIN_PORT))),
        limits: Default::default(),
        relay: Default::default(),
    };
    let startup = Startup {
        who: "jumpgate demo",
        first_login: false,
        grace: GRACE,
        readiness: None,
    };
    let mut next_ports = (1..PORT_TRIES)
        .filter_map(|i| first_port.checked_add(i))
        .chain([0]);
    let bound = startup
        .bind(config, |binds, e| next_free(binds, e, &mut next_ports))
        .await;
    let daemon = match bound {
        Ok(d) => d,
        Err(code) => return Ok(code),
    };
    let Some(socks) = daemon.listeners().into_iter().next() else {
        return Ok(EXIT_RUNTIME);
    };
    print_instructions(socks.addr, daemon.admin_addr());
    let code = startup.serve(daemon).await;
    drop(jump);
    drop(dir);
    Ok(code)
}

/// The demo's retry rule when a port is taken: the admin endpoint moves to
/// any free port, the SOCKS listener to the next of `ports` (the ones after
/// the asked port, then any); other errors end the demo.
fn next_free(binds: Binds<'_>, e: &DaemonError, ports: &mut impl Iterator<Item = u16>) -> bool {
    match e {
        DaemonError::Bind { listener, .. } if listener == "admin" => match binds.admin {
            Some(admin) if admin.port() != 0 => {
                admin.set_port(0); // and the same SOCKS port again
                true
            }
            _ => false,
        },
        DaemonError::Bind { .. } => match (ports.next(), binds.listeners.first_mut()) {
            (Some(port), Some(l)) => {
                l.bind.set_port(port);
                true
            }
            _ => false,
        },
        _ => false,
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)
}

fn print_instructions(addr: SocketAddr, admin: Option<SocketAddr>) {
    crate::say_out!(
        "\njumpgate demo: a SOCKS5 proxy on {addr}, tunnelled over SSH to a built-in jump host.\n\
         \n\
         Try it (the name {DEMO_HOST} exists only on the jump host):\n\
         \n    curl --socks5-hostname {addr} http://{DEMO_HOST}/\n\
         \n\
         Firefox: Settings > Network Settings > Manual proxy configuration:\n\
         \x20   SOCKS Host {ip}, Port {port}, SOCKS v5, and tick \"Proxy DNS when using SOCKS v5\".\n\
         \x20   Then open http://{DEMO_HOST}/\n\
         \n\
         Other sites go through the demo jump host too (it runs on this machine).\n\
         Stop with Ctrl-C.\n",
        ip = addr.ip(),
        port = addr.port(),
    );
    if let Some(admin) = admin {
        crate::say_out!(
            "Status page: http://{admin}/   (or: jumpgate status --admin http://{admin})\n\
             Metrics:     http://{admin}/metrics\n"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bind_error(listener: &str, port: u16) -> DaemonError {
        DaemonError::Bind {
            listener: listener.into(),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            source: std::io::ErrorKind::AddrInUse.into(),
        }
    }

    fn listener(port: u16) -> Listener {
        Listener {
            name: "demo".into(),
            kind: ListenerKind::Socks5,
            bind: SocketAddr::from(([127, 0, 0, 1], port)),
            also_bind: Vec::new(),
            via: 0,
            handshake_timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn a_taken_port_moves_the_listener_on_and_the_admin_to_any() {
        let mut listeners = vec![listener(1080)];
        let mut admin = Some(SocketAddr::from(([127, 0, 0, 1], ADMIN_PORT)));
        let mut ports = [1081, 0].into_iter();
        let mut retry = |e: &DaemonError, l: &mut Vec<Listener>, a: &mut Option<SocketAddr>| {
            let binds = Binds {
                listeners: l,
                admin: a,
            };
            next_free(binds, e, &mut ports)
        };
        // The admin port is taken: any port for it, the same SOCKS port.
        assert!(retry(
            &bind_error("admin", 9191),
            &mut listeners,
            &mut admin
        ));
        assert_eq!(admin.map(|a| a.port()), Some(0));
        assert_eq!(listeners[0].bind.port(), 1080);
        // Taken again on port 0 is not a busy port: give up.
        assert!(!retry(&bind_error("admin", 0), &mut listeners, &mut admin));
        // The SOCKS port is taken: the next one, then any, then give up.
        assert!(retry(&bind_error("demo", 1080), &mut listeners, &mut admin));
        assert_eq!(listeners[0].bind.port(), 1081);
        assert!(retry(&bind_error("demo", 1081), &mut listeners, &mut admin));
        assert_eq!(listeners[0].bind.port(), 0);
        assert!(!retry(&bind_error("demo", 0), &mut listeners, &mut admin));
    }
}
