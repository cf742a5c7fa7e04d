//! The typed, validated configuration model: what an upstream, a listener
//! and the limits are once `config` has checked them, and the defaults.
//! Nothing here is an `Option` that "must be set by now". Built by
//! `config::validate` (TOML) and `config::from_ssh_config` (`jumpgate up`);
//! read by `daemon`, `ssh`, `proxy` and `limit`. Imports nothing from the
//! rest of the crate.

use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKeyCheck {
    /// Refuse unknown and changed host keys (OpenSSH `StrictHostKeyChecking yes`).
    Strict,
    /// Record unknown keys, refuse changed ones (`accept-new`).
    AcceptNew,
    /// Accept anything (`no`), logged loudly.
    Off,
}

/// Where the passphrase of encrypted identity files comes from; the daemon
/// never prompts.
#[derive(Clone, PartialEq, Eq)]
pub enum PassphraseSource {
    Env(String),
    File(PathBuf),
}

impl fmt::Debug for PassphraseSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Env(v) => write!(f, "env:{v}"),
            Self::File(p) => write!(f, "file:{}", p.display()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    pub interval: Duration,
    /// Unanswered keepalives after which the session is declared dead.
    pub count_max: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

#[derive(Debug, Clone)]
pub struct Upstream {
    pub name: String,
    /// Equivalent jump hosts; sessions spread across them (failover).
    pub hosts: Vec<Endpoint>,
    /// ProxyJump chain, outermost first; every hop uses this upstream's keys
    /// and known_hosts.
    pub proxy_jump: Vec<Hop>,
    /// ssh's ProxyCommand: the SSH connection runs over this command's
    /// stdin/stdout instead of TCP (`%h %p %r %n %%` expanded per host).
    pub proxy_command: Option<String>,
    pub user: String,
    /// Empty means: the OpenSSH default identities that exist.
    pub identity_files: Vec<PathBuf>,
    /// The identity files came from ssh_config (`jumpgate up`, or the TOML
    /// `ssh_config =` key without `identity_files`): one that needs a
    /// passphrase is skipped and left to the agent, as `up` never prompts.
    /// Identity files listed in TOML must load.
    pub skip_encrypted_identities: bool,
    pub passphrase: Option<PassphraseSource>,
    pub agent: bool,
    /// The agent's socket when it is not `$SSH_AUTH_SOCK` (ssh's
    /// IdentityAgent PATH).
    pub agent_socket: Option<PathBuf>,
    pub known_hosts: PathBuf,
    /// Read-only known_hosts files besides `known_hosts` (the TOML key
    /// `global_known_hosts`; from ssh_config, the further
    /// UserKnownHostsFile entries and GlobalKnownHostsFile); accept-new
    /// never writes them.
    pub global_known_hosts: Vec<PathBuf>,
    pub host_key_check: HostKeyCheck,
    pub keepalive: Keepalive,
    pub reconnect: Backoff,
    /// TCP connect + SSH handshake + authentication.
    pub connect_timeout: Duration,
    pub sessions: SessionLimits,
    pub max_channels_per_session: usize,
    /// RemoteForward: ports the jump host listens on for us (one session of
    /// the pool holds them, see `proxy::remote_forward`).
    pub remote_forwards: Vec<RemoteForward>,
    /// ssh's ExitOnForwardFailure: a refused remote forward ends the daemon
    /// (exit 1) instead of being logged and retried.
    pub exit_on_forward_failure: bool,
    /// Algorithm preferences; checked against what russh implements.
    pub algorithms: Algorithms,
    /// OpenSSH user certificates, each used with the identity file whose key
    /// it certifies (besides `<identity>-cert.pub`, found automatically).
    pub certificate_files: Vec<PathBuf>,
    /// The interface this upstream was configured through; hints name
    /// settings in its language (`config::Interface`).
    pub interface: Interface,
    /// Identity files the user named (ssh_config IdentityFile, `-o
    /// IdentityFile=`) that do not exist: ssh skips them and says `no such
    /// identity: PATH: ...` when it gets to them; so does the login.
    pub missing_identities: Vec<(PathBuf, String)>,
}

/// `remote_forwards = [{ bind = "[host:]port", to = "host:port" }]`: the jump
/// host listens on `bind_host:bind_port` and each connection there is relayed
/// to `to_host:to_port`, connected from this machine (ssh -R).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteForward {
    /// As sent in `tcpip-forward`; "localhost" when `bind` has no host (the
    /// jump host's loopback, as ssh -R).
    pub bind_host: String,
    /// 0: the jump host picks a port (logged once it did).
    pub bind_port: u16,
    pub to_host: String,
    pub to_port: u16,
}

impl fmt::Display for RemoteForward {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bind = Endpoint {
            host: self.bind_host.clone(),
            port: self.bind_port,
        };
        let to = Endpoint {
            host: self.to_host.clone(),
            port: self.to_port,
        };
        write!(f, "{bind} -> {to}")
    }
}

/// Algorithm lists in OpenSSH names, most preferred first (or OpenSSH's
/// `+`/`-`/`^` modifiers on the defaults); `None` = jumpgate's defaults.
/// Checked by `config::algorithms`, turned into russh's preferences by
/// `ssh::algorithms`.
#[derive(Clone, Debug, Default)]
pub struct Algorithms {
    pub kex: Option<Vec<String>>,
    pub ciphers: Option<Vec<String>>,
    pub macs: Option<Vec<String>>,
    pub host_key_algorithms: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// One ProxyJump hop: `[user@]host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    pub user: Option<String>,
    pub endpoint: Endpoint,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    pub min: usize,
    pub max: usize,
    /// Sessions above `min` with no channel for this long are closed.
    pub idle_timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenerKind {
    Socks5,
    /// LocalForward (ssh -L): every connection goes to this fixed
    /// destination, resolved on the jump host.
    Forward {
        host: String,
        port: u16,
    },
}

#[derive(Debug, Clone)]
pub struct Listener {
    pub name: String,
    pub kind: ListenerKind,
    pub bind: SocketAddr,
    /// Further addresses served the same way, on `bind`'s port once bound:
    /// ssh's `-D PORT` listens on 127.0.0.1 and ::1, `-D *:PORT` on both
    /// wildcards, and `up` does the same. As with ssh, one of these that
    /// cannot be bound (no IPv6 here) is a warning, not a failure, since
    /// `bind` serves; IPv6 wildcards here are IPv6-only, so that they do
    /// not collide with the IPv4 one.
    pub also_bind: Vec<SocketAddr>,
    /// Index into `Config::upstreams`.
    pub via: usize,
    pub handshake_timeout: Duration,
    pub connect_timeout: Duration,
}

/// `[relay]`: the per-tunnel buffer between a channel and a slow client,
/// in bytes; `tunnel_buffer::Limits` is built from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelaySettings {
    /// Held in memory before the tunnel spills to disk.
    pub memory_per_tunnel: usize,
    /// Where spill files are created (and at once unlinked).
    pub spill_dir: PathBuf,
    /// Disk one tunnel may hold; 0 turns spilling off.
    pub spill_per_tunnel: u64,
    /// Disk all tunnels together may hold.
    pub spill_total: u64,
}

impl Default for RelaySettings {
    /// 256 KiB in memory, then up to 64 MiB per tunnel and 2 GiB in all in
    /// the system temporary directory (`$TMPDIR`, else `/tmp`).
    fn default() -> Self {
        RelaySettings {
            memory_per_tunnel: 256 * 1024,
            spill_dir: std::env::temp_dir(),
            spill_per_tunnel: 64 << 20,
            spill_total: 2 << 30,
        }
    }
}

/// `[limits]`, over all listeners; `limit::Limits` enforces them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LimitSettings {
    pub connections_per_second_per_client: Option<NonZeroU32>,
    pub max_connections: Option<usize>,
}

pub const DEFAULT_SESSIONS: SessionLimits = SessionLimits {
    min: 1,
    max: 4,
    idle_timeout: Duration::from_secs(60),
};
/// With `DEFAULT_SESSIONS.max` = 4: 16,384 tunnels per upstream, beyond
/// the 10,000 we promise and `ssh -D`'s one session; each session stays at
/// a quarter of OpenSSH's 16,384 channels per connection.
pub const DEFAULT_MAX_CHANNELS: usize = 4096;
pub const DEFAULT_KEEPALIVE: Keepalive = Keepalive {
    interval: Duration::from_secs(15),
    count_max: 3,
};
pub const DEFAULT_BACKOFF: Backoff = Backoff {
    initial: Duration::from_millis(250),
    max: Duration::from_secs(30),
};
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the user's settings came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Interface {
    /// A jumpgate TOML file (`run`, `check`), including an upstream that
    /// reads ssh_config through the `ssh_config =` key: its user edits TOML.
    #[default]
    Toml,
    /// `jumpgate up`: ssh's command line and ssh_config.
    Ssh,
}

/// A setting a message may tell the user to change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting {
    Kex,
    Ciphers,
    Macs,
    HostKeyAlgorithms,
    IdentityFiles,
}
