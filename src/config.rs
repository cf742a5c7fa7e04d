//! The TOML configuration: parsed into raw serde types (unknown keys are
//! errors), then validated into typed values that hold their invariants, so
//! nothing downstream deals with "must be set by now" options. Every error
//! names the file, the line and the key. Parsing works on text, so tests need
//! no file. Used by `cli` (load) and `daemon` (wiring).

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

pub use crate::limit::LimitSettings;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read config: {source}")]
    Read {
        path: DisplayPath,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {msg}")]
    Invalid {
        path: DisplayPath,
        line: usize,
        msg: String,
    },
    #[error("{path}: {msg}")]
    Whole { path: DisplayPath, msg: String },
}

/// A path as shown in messages (lossy, never fails).
#[derive(Debug, Clone)]
pub struct DisplayPath(pub PathBuf);

impl fmt::Display for DisplayPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.display())
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub upstreams: Vec<Upstream>,
    pub listeners: Vec<Listener>,
    /// Where the admin HTTP endpoint listens; none without `[admin]`.
    pub admin: Option<SocketAddr>,
    pub limits: LimitSettings,
}

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
    pub passphrase: Option<PassphraseSource>,
    pub agent: bool,
    /// The agent's socket when it is not `$SSH_AUTH_SOCK` (ssh's
    /// IdentityAgent PATH).
    pub agent_socket: Option<PathBuf>,
    pub known_hosts: PathBuf,
    /// Read-only known_hosts files besides `known_hosts` (ssh's further
    /// UserKnownHostsFile entries and GlobalKnownHostsFile); accept-new
    /// never writes them.
    pub extra_known_hosts: Vec<PathBuf>,
    pub host_key_check: HostKeyCheck,
    pub keepalive: Keepalive,
    pub reconnect: Backoff,
    /// TCP connect + SSH handshake + authentication.
    pub connect_timeout: Duration,
    pub sessions: SessionLimits,
    pub max_channels_per_session: usize,
    /// A tunnel whose client stopped reading is closed after this long, so
    /// that its session's other tunnels resume (see `relay`).
    pub stall_timeout: Duration,
    /// RemoteForward: ports the jump host listens on for us (one session of
    /// the pool holds them, see `ssh::remote_forward`).
    pub remote_forwards: Vec<RemoteForward>,
    /// ssh's ExitOnForwardFailure: a refused remote forward ends the daemon
    /// (exit 1) instead of being logged and retried.
    pub exit_on_forward_failure: bool,
    /// Algorithm preferences; checked against what russh implements.
    pub algorithms: Algorithms,
    /// OpenSSH user certificates, each used with the identity file whose key
    /// it certifies (besides `<identity>-cert.pub`, found automatically).
    pub certificate_files: Vec<PathBuf>,
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
/// See `ssh::algorithms`.
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

pub const DEFAULT_SESSIONS: SessionLimits = SessionLimits {
    min: 1,
    max: 4,
    idle_timeout: Duration::from_secs(60),
};
pub const DEFAULT_MAX_CHANNELS: usize = 1024;
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(2);

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
    /// Index into `Config::upstreams`.
    pub via: usize,
    pub handshake_timeout: Duration,
    pub connect_timeout: Duration,
}

// === raw serde types ===

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    admin: Option<RawAdmin>,
    limits: Option<RawLimits>,
    #[serde(default)]
    upstream: Vec<Spanned<RawUpstream>>,
    #[serde(default)]
    listener: Vec<Spanned<RawListener>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpstream {
    name: Spanned<String>,
    host: Option<Spanned<String>>,
    hosts: Option<Spanned<Vec<String>>>,
    port: Option<Spanned<i64>>,
    #[serde(default)]
    proxy_jump: Vec<Spanned<String>>,
    proxy_command: Option<Spanned<String>>,
    sessions: Option<Spanned<RawSessions>>,
    max_channels_per_session: Option<Spanned<i64>>,
    stall_timeout: Option<Spanned<String>>,
    user: Option<String>,
    #[serde(default)]
    identity_files: Vec<Spanned<String>>,
    passphrase_env: Option<String>,
    passphrase_file: Option<Spanned<String>>,
    agent: Option<bool>,
    agent_socket: Option<Spanned<String>>,
    known_hosts: Option<Spanned<String>>,
    global_known_hosts: Option<Vec<Spanned<String>>>,
    host_key_check: Option<Spanned<String>>,
    keepalive: Option<Spanned<RawKeepalive>>,
    reconnect: Option<Spanned<RawBackoff>>,
    connect_timeout: Option<Spanned<String>>,
    /// An ssh_config file: `host` is then an alias resolved in it (see
    /// `with_ssh_config`).
    ssh_config: Option<Spanned<String>>,
    #[serde(default)]
    remote_forwards: Vec<Spanned<RawRemoteForward>>,
    exit_on_forward_failure: Option<bool>,
    kex: Option<Spanned<Vec<String>>>,
    ciphers: Option<Spanned<Vec<String>>>,
    macs: Option<Spanned<Vec<String>>>,
    host_key_algorithms: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    certificate_files: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRemoteForward {
    bind: Spanned<String>,
    to: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    bind: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    connections_per_second_per_client: Option<Spanned<i64>>,
    max_connections: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSessions {
    min: Option<Spanned<i64>>,
    max: Option<Spanned<i64>>,
    idle_timeout: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKeepalive {
    interval: Option<Spanned<String>>,
    count_max: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBackoff {
    initial: Option<Spanned<String>>,
    max: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawListener {
    name: Spanned<String>,
    kind: Option<Spanned<String>>,
    bind: Spanned<String>,
    via: Option<Spanned<String>>,
    /// Destination of a `forward` listener.
    to: Option<Spanned<String>>,
    handshake_timeout: Option<Spanned<String>>,
    connect_timeout: Option<Spanned<String>>,
}

pub const DEFAULT_KEEPALIVE: Keepalive = Keepalive {
    interval: Duration::from_secs(15),
    count_max: 3,
};
pub const DEFAULT_BACKOFF: Backoff = Backoff {
    initial: Duration::from_millis(250),
    max: Duration::from_secs(30),
};
/// OpenSSH's GlobalKnownHostsFile default; missing files are fine.
pub const DEFAULT_GLOBAL_KNOWN_HOSTS: [&str; 2] =
    ["/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2"];
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: DisplayPath(path.to_owned()),
            source,
        })?;
        Config::from_toml(&text, path)
    }

    /// Parses and validates `text`; `path` is only used in messages and to
    /// resolve nothing else (relative paths stay relative to the cwd, as ssh).
    pub fn from_toml(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let cx = Cx { text, path };
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| cx.line_of(s.start)).unwrap_or(1);
            cx.err_line(line, e.message().trim_end().replace('\n', "; "))
        })?;
        cx.validate(raw)
    }
}

/// Validation context: turns byte spans into `path:line:` errors.
struct Cx<'a> {
    text: &'a str,
    path: &'a Path,
}

impl Cx<'_> {
    fn line_of(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1
    }

    fn err_line(&self, line: usize, msg: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            path: DisplayPath(self.path.to_owned()),
            line,
            msg: msg.into(),
        }
    }

    fn err<T>(&self, at: &Spanned<T>, msg: impl Into<String>) -> ConfigError {
        self.err_line(self.line_of(at.span().start), msg)
    }

    fn duration(
        &self,
        key: &str,
        v: Option<&Spanned<String>>,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        let Some(v) = v else { return Ok(default) };
        let d = parse_duration(v.get_ref())
            .map_err(|e| self.err(v, format!("{key} = {:?}: {e}", v.get_ref())))?;
        if d.is_zero() {
            return Err(self.err(v, format!("{key} must be more than zero")));
        }
        Ok(d)
    }

    fn validate(&self, raw: RawConfig) -> Result<Config, ConfigError> {
        let whole = |msg: &str| ConfigError::Whole {
            path: DisplayPath(self.path.to_owned()),
            msg: msg.to_owned(),
        };
        if raw.upstream.is_empty() {
            return Err(whole("no [[upstream]]: at least one jump host is needed"));
        }
        if raw.listener.is_empty() {
            return Err(whole("no [[listener]]: at least one listener is needed"));
        }
        let mut upstreams = Vec::new();
        let mut names = HashSet::new();
        for u in &raw.upstream {
            let up = self.upstream(u.get_ref())?;
            if !names.insert(up.name.clone()) {
                return Err(self.err(
                    &u.get_ref().name,
                    format!("upstream name {:?} is used twice", up.name),
                ));
            }
            upstreams.push(up);
        }
        let mut listeners = Vec::new();
        let mut lnames = HashSet::new();
        for l in &raw.listener {
            let li = self.listener(l.get_ref(), &upstreams)?;
            if !lnames.insert(li.name.clone()) {
                return Err(self.err(
                    &l.get_ref().name,
                    format!("listener name {:?} is used twice", li.name),
                ));
            }
            listeners.push(li);
        }
        let admin = match &raw.admin {
            None => None,
            Some(a) => Some(match &a.bind {
                None => SocketAddr::from(([127, 0, 0, 1], 9191)),
                Some(b) => parse_bind(b.get_ref()).ok_or_else(|| {
                    self.err(
                        b,
                        format!(
                            "[admin] bind = {:?}: expected IP:PORT such as \"127.0.0.1:9191\"",
                            b.get_ref()
                        ),
                    )
                })?,
            }),
        };
        let limits = match &raw.limits {
            None => LimitSettings::default(),
            Some(l) => self.limits(l)?,
        };
        Ok(Config {
            upstreams,
            listeners,
            admin,
            limits,
        })
    }

    fn limits(&self, l: &RawLimits) -> Result<LimitSettings, ConfigError> {
        let positive = |key: &str, v: &Spanned<i64>| {
            if *v.get_ref() < 1 || *v.get_ref() > i64::from(u32::MAX) {
                Err(self.err(
                    v,
                    format!(
                        "[limits] {key} = {}: expected a whole number from 1 to {}",
                        v.get_ref(),
                        u32::MAX
                    ),
                ))
            } else {
                Ok(*v.get_ref() as u32)
            }
        };
        let rate = match &l.connections_per_second_per_client {
            None => None,
            Some(v) => std::num::NonZeroU32::new(positive("connections_per_second_per_client", v)?),
        };
        let max = match &l.max_connections {
            None => None,
            Some(v) => Some(positive("max_connections", v)? as usize),
        };
        Ok(LimitSettings {
            connections_per_second_per_client: rate,
            max_connections: max,
        })
    }

    fn name(&self, what: &str, n: &Spanned<String>) -> Result<String, ConfigError> {
        let s = n.get_ref();
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !ok {
            return Err(self.err(
                n,
                format!("{what} name {s:?}: use 1-64 letters, digits, '-', '_' or '.'"),
            ));
        }
        Ok(s.clone())
    }

    fn upstream(&self, u: &RawUpstream) -> Result<Upstream, ConfigError> {
        let name = self.name("upstream", &u.name)?;
        let port = match &u.port {
            None => 22,
            Some(p) => self.port("port", p)?,
        };
        let hosts = match (&u.host, &u.hosts) {
            (Some(h), None) => vec![self.endpoint("host", h.get_ref(), port, h)?],
            (None, Some(list)) if !list.get_ref().is_empty() => list
                .get_ref()
                .iter()
                .map(|h| self.endpoint("hosts", h, port, list))
                .collect::<Result<_, _>>()?,
            (None, Some(list)) => {
                return Err(self.err(list, "hosts = []: list at least one jump host"))
            }
            (Some(h), Some(_)) => return Err(self.err(h, "set host or hosts, not both")),
            (None, None) => {
                return Err(self.err(
                    &u.name,
                    format!("upstream {name}: missing host (or hosts = [...])"),
                ))
            }
        };
        let proxy_jump = u
            .proxy_jump
            .iter()
            .map(|h| self.hop(h))
            .collect::<Result<Vec<_>, _>>()?;
        let proxy_command = match &u.proxy_command {
            None => None,
            Some(c) if c.get_ref().trim().is_empty() => {
                return Err(self.err(c, format!("upstream {name}: proxy_command is empty")))
            }
            Some(c) if !proxy_jump.is_empty() => {
                return Err(self.err(
                    c,
                    format!("upstream {name}: set proxy_command or proxy_jump, not both"),
                ))
            }
            Some(c) => Some(c.get_ref().clone()),
        };
        let user = match &u.user {
            Some(user) => user.clone(),
            None => local_user().ok_or_else(|| {
                self.err(
                    &u.name,
                    format!("upstream {name}: no user given and the local user name is unknown"),
                )
            })?,
        };
        let identity_files = u
            .identity_files
            .iter()
            .map(|p| expand_tilde(p.get_ref()))
            .collect();
        let passphrase = match (&u.passphrase_env, &u.passphrase_file) {
            (Some(_), Some(f)) => {
                return Err(self.err(f, "set passphrase_env or passphrase_file, not both"))
            }
            (Some(v), None) => Some(PassphraseSource::Env(v.clone())),
            (None, Some(f)) => Some(PassphraseSource::File(expand_tilde(f.get_ref()))),
            (None, None) => None,
        };
        let known_hosts = u
            .known_hosts
            .as_ref()
            .map(|p| expand_tilde(p.get_ref()))
            .unwrap_or_else(|| expand_tilde("~/.ssh/known_hosts"));
        let host_key_check = match &u.host_key_check {
            None => HostKeyCheck::Strict,
            Some(v) => match v.get_ref().as_str() {
                "strict" | "yes" => HostKeyCheck::Strict,
                "accept-new" => HostKeyCheck::AcceptNew,
                "off" | "no" => HostKeyCheck::Off,
                other => {
                    return Err(self.err(
                        v,
                        format!("host_key_check = {other:?}: use strict, accept-new or off"),
                    ))
                }
            },
        };
        let keepalive = match &u.keepalive {
            None => DEFAULT_KEEPALIVE,
            Some(k) => {
                let k = k.get_ref();
                let count_max = match &k.count_max {
                    None => DEFAULT_KEEPALIVE.count_max,
                    Some(c) => u32::try_from(*c.get_ref())
                        .ok()
                        .filter(|c| (1..=1000).contains(c))
                        .ok_or_else(|| {
                            self.err(
                                c,
                                format!("keepalive.count_max = {}: use 1-1000", c.get_ref()),
                            )
                        })?,
                };
                Keepalive {
                    interval: self.duration(
                        "keepalive.interval",
                        k.interval.as_ref(),
                        DEFAULT_KEEPALIVE.interval,
                    )?,
                    count_max,
                }
            }
        };
        let reconnect = match &u.reconnect {
            None => DEFAULT_BACKOFF,
            Some(r) => {
                let rr = r.get_ref();
                let b = Backoff {
                    initial: self.duration(
                        "reconnect.initial",
                        rr.initial.as_ref(),
                        DEFAULT_BACKOFF.initial,
                    )?,
                    max: self.duration("reconnect.max", rr.max.as_ref(), DEFAULT_BACKOFF.max)?,
                };
                if b.initial > b.max {
                    return Err(self.err(r, "reconnect.initial is longer than reconnect.max"));
                }
                b
            }
        };
        let connect_timeout = self.duration(
            "connect_timeout",
            u.connect_timeout.as_ref(),
            DEFAULT_TIMEOUT,
        )?;
        let sessions = match &u.sessions {
            None => DEFAULT_SESSIONS,
            Some(sp) => {
                let r = sp.get_ref();
                let count = |key: &str, v: &Option<Spanned<i64>>, d: usize, lo: i64| match v {
                    None => Ok(d),
                    Some(v) if (lo..=64).contains(v.get_ref()) => Ok(*v.get_ref() as usize),
                    Some(v) => {
                        Err(self.err(v, format!("sessions.{key} = {}: use {lo}-64", v.get_ref())))
                    }
                };
                let min = count("min", &r.min, DEFAULT_SESSIONS.min, 0)?;
                let max = count("max", &r.max, DEFAULT_SESSIONS.max.max(min), 1)?;
                if min > max {
                    return Err(self.err(
                        sp,
                        format!("sessions: min = {min} is more than max = {max}"),
                    ));
                }
                SessionLimits {
                    min,
                    max,
                    idle_timeout: self.duration(
                        "sessions.idle_timeout",
                        r.idle_timeout.as_ref(),
                        DEFAULT_SESSIONS.idle_timeout,
                    )?,
                }
            }
        };
        let max_channels_per_session = match &u.max_channels_per_session {
            None => DEFAULT_MAX_CHANNELS,
            // OpenSSH's hard cap is 16384 channels per connection.
            Some(v) if (1..=16384).contains(v.get_ref()) => *v.get_ref() as usize,
            Some(v) => {
                return Err(self.err(
                    v,
                    format!("max_channels_per_session = {}: use 1-16384", v.get_ref()),
                ))
            }
        };
        let stall_timeout = self.duration(
            "stall_timeout",
            u.stall_timeout.as_ref(),
            DEFAULT_STALL_TIMEOUT,
        )?;
        let remote_forwards = self.remote_forwards(&name, &u.remote_forwards)?;
        if !remote_forwards.is_empty() && sessions.min == 0 {
            if let Some(first) = u.remote_forwards.first() {
                return Err(self.err(
                    first,
                    format!(
                        "upstream {name}: remote_forwards need a session that stays open: \
                         set sessions.min to 1 or more"
                    ),
                ));
            }
        }
        let algorithms = self.algorithms(u)?;
        let certificate_files = u
            .certificate_files
            .iter()
            .map(|p| expand_tilde(p.get_ref()))
            .collect();
        let up = Upstream {
            name,
            hosts,
            proxy_jump,
            proxy_command,
            user,
            identity_files,
            passphrase,
            agent: u.agent.unwrap_or(true),
            agent_socket: u.agent_socket.as_ref().map(|p| expand_tilde(p.get_ref())),
            known_hosts,
            extra_known_hosts: match &u.global_known_hosts {
                Some(files) => files.iter().map(|p| expand_tilde(p.get_ref())).collect(),
                None => DEFAULT_GLOBAL_KNOWN_HOSTS
                    .iter()
                    .map(PathBuf::from)
                    .collect(),
            },
            host_key_check,
            keepalive,
            reconnect,
            connect_timeout,
            sessions,
            max_channels_per_session,
            stall_timeout,
            remote_forwards,
            exit_on_forward_failure: u.exit_on_forward_failure.unwrap_or(false),
            algorithms,
            certificate_files,
        };
        match &u.ssh_config {
            None => Ok(up),
            Some(file) => self.with_ssh_config(u, file, up),
        }
    }

    /// `ssh_config = FILE` with `host = "alias"`: the alias is resolved in
    /// FILE as ssh would (HostName, Port, User, IdentityFile, ProxyJump
    /// with its hops resolved too, UserKnownHostsFile,
    /// StrictHostKeyChecking, ServerAlive*, ConnectTimeout); keys set in
    /// this table win over the file, as ssh's command line does.
    fn with_ssh_config(
        &self,
        u: &RawUpstream,
        file: &Spanned<String>,
        toml: Upstream,
    ) -> Result<Upstream, ConfigError> {
        use crate::ssh_config::{self as sc, upstream::upstream_from};
        let Some(alias) = &u.host else {
            return Err(self.err(
                file,
                "ssh_config needs host = \"ALIAS\" (the Host to look up), not hosts = [...]",
            ));
        };
        let files = sc::ConfigFiles::File(expand_tilde(file.get_ref()));
        let local = sc::Local::detect();
        let cmdline = sc::Options {
            port: toml
                .hosts
                .first()
                .map(|h| h.port)
                .filter(|_| u.port.is_some()),
            user: u.user.clone(),
            ..sc::Options::default()
        };
        let req = sc::Request {
            host: alias.get_ref().clone(),
            cmdline,
            files: files.clone(),
        };
        let ctx = |e: String| self.err(file, format!("ssh_config = {:?}: {e}", file.get_ref()));
        let resolved = sc::resolve(&req, &local).map_err(|e| ctx(e.to_string()))?;
        for w in &resolved.warnings {
            tracing::warn!(upstream = %toml.name, "{w}");
        }
        let base = upstream_from(&resolved, &files, &local).map_err(|e| ctx(e.to_string()))?;
        // A key written in the table wins over the file (as ssh's command line).
        fn pick<T>(in_table: bool, table: T, file: T) -> T {
            if in_table {
                table
            } else {
                file
            }
        }
        let hop_in_table = !u.proxy_jump.is_empty() || u.proxy_command.is_some();
        Ok(Upstream {
            name: toml.name,
            hosts: base.hosts,
            proxy_jump: pick(hop_in_table, toml.proxy_jump, base.proxy_jump),
            proxy_command: pick(hop_in_table, toml.proxy_command, base.proxy_command),
            user: base.user,
            identity_files: pick(
                !u.identity_files.is_empty(),
                toml.identity_files,
                base.identity_files,
            ),
            agent: u.agent.unwrap_or(base.agent),
            agent_socket: pick(
                u.agent_socket.is_some(),
                toml.agent_socket,
                base.agent_socket,
            ),
            known_hosts: pick(u.known_hosts.is_some(), toml.known_hosts, base.known_hosts),
            extra_known_hosts: pick(
                u.global_known_hosts.is_some(),
                toml.extra_known_hosts,
                base.extra_known_hosts,
            ),
            host_key_check: pick(
                u.host_key_check.is_some(),
                toml.host_key_check,
                base.host_key_check,
            ),
            keepalive: pick(u.keepalive.is_some(), toml.keepalive, base.keepalive),
            connect_timeout: pick(
                u.connect_timeout.is_some(),
                toml.connect_timeout,
                base.connect_timeout,
            ),
            remote_forwards: pick(
                !u.remote_forwards.is_empty(),
                toml.remote_forwards,
                base.remote_forwards,
            ),
            exit_on_forward_failure: u
                .exit_on_forward_failure
                .unwrap_or(base.exit_on_forward_failure),
            algorithms: Algorithms {
                kex: toml.algorithms.kex.or(base.algorithms.kex),
                ciphers: toml.algorithms.ciphers.or(base.algorithms.ciphers),
                macs: toml.algorithms.macs.or(base.algorithms.macs),
                host_key_algorithms: toml
                    .algorithms
                    .host_key_algorithms
                    .or(base.algorithms.host_key_algorithms),
            },
            certificate_files: pick(
                !u.certificate_files.is_empty(),
                toml.certificate_files,
                base.certificate_files,
            ),
            ..toml
        })
    }

    /// The four algorithm lists, each checked where it is written.
    fn algorithms(&self, u: &RawUpstream) -> Result<Algorithms, ConfigError> {
        use crate::ssh::algorithms::{resolve, Kind};
        let list = |kind: Kind, v: &Option<Spanned<Vec<String>>>| match v {
            None => Ok(None),
            Some(l) => match resolve(kind, Some(l.get_ref())) {
                Ok(_) => Ok(Some(l.get_ref().clone())),
                Err(e) => Err(self.err(l, e.to_string())),
            },
        };
        Ok(Algorithms {
            kex: list(Kind::Kex, &u.kex)?,
            ciphers: list(Kind::Cipher, &u.ciphers)?,
            macs: list(Kind::Mac, &u.macs)?,
            host_key_algorithms: list(Kind::HostKey, &u.host_key_algorithms)?,
        })
    }

    fn remote_forwards(
        &self,
        upstream: &str,
        raw: &[Spanned<RawRemoteForward>],
    ) -> Result<Vec<RemoteForward>, ConfigError> {
        let mut out: Vec<RemoteForward> = Vec::new();
        for r in raw {
            let r = r.get_ref();
            let bind_text = r.bind.get_ref();
            let (bind_host, bind_port) = parse_remote_bind(bind_text).ok_or_else(|| {
                self.err(
                    &r.bind,
                    format!(
                        "upstream {upstream}: remote_forwards bind = {bind_text:?}: expected \
                         [host:]port such as \"8080\" or \"127.0.0.1:8080\" (port 0: the jump \
                         host picks one)"
                    ),
                )
            })?;
            let to = parse_endpoint(r.to.get_ref(), 0)
                .filter(|e| e.port != 0)
                .ok_or_else(|| {
                    self.err(
                        &r.to,
                        format!(
                            "upstream {upstream}: remote_forwards to = {:?}: expected host:port \
                             such as \"127.0.0.1:80\"",
                            r.to.get_ref()
                        ),
                    )
                })?;
            let f = RemoteForward {
                bind_host,
                bind_port,
                to_host: to.host,
                to_port: to.port,
            };
            if f.bind_port != 0
                && out
                    .iter()
                    .any(|o| o.bind_port == f.bind_port && o.bind_host == f.bind_host)
            {
                return Err(self.err(
                    &r.bind,
                    format!(
                        "upstream {upstream}: remote_forwards bind = {bind_text:?} is used twice"
                    ),
                ));
            }
            out.push(f);
        }
        Ok(out)
    }

    fn port(&self, key: &str, p: &Spanned<i64>) -> Result<u16, ConfigError> {
        u16::try_from(*p.get_ref())
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| self.err(p, format!("{key} = {}: not in 1-65535", p.get_ref())))
    }

    /// `host`, `host:port`, `[v6]:port` or a bare IPv6 address.
    fn endpoint<T>(
        &self,
        key: &str,
        text: &str,
        default_port: u16,
        at: &Spanned<T>,
    ) -> Result<Endpoint, ConfigError> {
        parse_endpoint(text, default_port).ok_or_else(|| {
            self.err(
                at,
                format!("{key}: {text:?} is not host, host:port or [ipv6]:port"),
            )
        })
    }

    fn hop(&self, h: &Spanned<String>) -> Result<Hop, ConfigError> {
        let text = h.get_ref().trim();
        let (user, rest) = match text.rsplit_once('@') {
            Some((u, r)) if !u.is_empty() => (Some(u.to_owned()), r),
            Some(_) => return Err(self.err(h, format!("proxy_jump: {text:?} has an empty user"))),
            None => (None, text),
        };
        Ok(Hop {
            user,
            endpoint: self.endpoint("proxy_jump", rest, 22, h)?,
        })
    }

    fn listener(&self, l: &RawListener, ups: &[Upstream]) -> Result<Listener, ConfigError> {
        let name = self.name("listener", &l.name)?;
        let kind = match &l.kind {
            None => ListenerKind::Socks5,
            Some(k) => match k.get_ref().as_str() {
                "socks5" => ListenerKind::Socks5,
                "forward" => {
                    let Some(to) = &l.to else {
                        return Err(self.err(
                            k,
                            format!(
                                "listener {name}: kind = \"forward\" needs to = \"host:port\" \
                                 (the destination, as ssh -L port:host:hostport)"
                            ),
                        ));
                    };
                    let e = parse_endpoint(to.get_ref(), 0)
                        .filter(|e| e.port != 0)
                        .ok_or_else(|| {
                            self.err(
                                to,
                                format!(
                                    "listener {name}: to = {:?}: expected host:port such as \
                                     \"db.internal:5432\" or \"[::1]:22\"",
                                    to.get_ref()
                                ),
                            )
                        })?;
                    ListenerKind::Forward {
                        host: e.host,
                        port: e.port,
                    }
                }
                "http" => {
                    return Err(self.err(
                        k,
                        format!(
                            "listener {name}: kind = \"http\" is not available in this version; \
                             use socks5 or forward"
                        ),
                    ))
                }
                other => {
                    return Err(self.err(
                        k,
                        format!("listener {name}: kind = {other:?}: use socks5 or forward"),
                    ))
                }
            },
        };
        if let (ListenerKind::Socks5, Some(to)) = (&kind, &l.to) {
            return Err(self.err(
                to,
                format!(
                    "listener {name}: to = ... is only for kind = \"forward\" (a SOCKS client \
                     names its own destination)"
                ),
            ));
        }
        let bind = parse_bind(l.bind.get_ref()).ok_or_else(|| {
            self.err(
                &l.bind,
                format!(
                    "listener {name}: bind = {:?}: expected IP:PORT such as \"127.0.0.1:1080\" or \"[::1]:1080\"",
                    l.bind.get_ref()
                ),
            )
        })?;
        let via = match &l.via {
            Some(v) => ups
                .iter()
                .position(|u| &u.name == v.get_ref())
                .ok_or_else(|| {
                    let known: Vec<&str> = ups.iter().map(|u| u.name.as_str()).collect();
                    self.err(
                        v,
                        format!(
                            "listener {name}: via = {:?} names no upstream (known: {})",
                            v.get_ref(),
                            known.join(", ")
                        ),
                    )
                })?,
            None if ups.len() == 1 => 0,
            None => {
                return Err(self.err(
                    &l.name,
                    format!(
                        "listener {name}: several upstreams exist, say which with via = \"NAME\""
                    ),
                ))
            }
        };
        Ok(Listener {
            name,
            kind,
            bind,
            via,
            handshake_timeout: self.duration(
                "handshake_timeout",
                l.handshake_timeout.as_ref(),
                DEFAULT_TIMEOUT,
            )?,
            connect_timeout: self.duration(
                "connect_timeout",
                l.connect_timeout.as_ref(),
                DEFAULT_TIMEOUT,
            )?,
        })
    }
}

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

/// `"15s"`, `"250ms"`, `"1m 30s"` (humantime syntax).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("not a duration ({e}); use e.g. \"15s\" or \"250ms\""))
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

pub fn expand_tilde(p: &str) -> PathBuf {
    if p == "~" {
        return home_dir();
    }
    match p.strip_prefix("~/") {
        Some(rest) => home_dir().join(rest),
        None => PathBuf::from(p),
    }
}

fn home_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/"))
}

/// The local user name, as ssh picks the default remote user: $USER,
/// $LOGNAME, else our uid's entry in /etc/passwd (services often run with
/// neither variable set).
fn local_user() -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    if let Some(u) = ["USER", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
    {
        return Some(u);
    }
    let uid = std::fs::metadata("/proc/self").ok()?.uid().to_string();
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        (f.nth(1)? == uid).then(|| name.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml(text, Path::new("/etc/jumpgate.toml"))
    }

    const GOOD: &str = r#"
[[upstream]]
name = "corp"
host = "bastion.example"
user = "ci"
identity_files = ["~/.ssh/id_ed25519"]
keepalive = { interval = "5s", count_max = 2 }

[[listener]]
name = "browser"
bind = "127.0.0.1:1080"
via = "corp"
handshake_timeout = "3s"
"#;

    #[test]
    fn good_config_is_typed() {
        let c = parse(GOOD).expect("valid");
        let u = &c.upstreams[0];
        assert_eq!(
            u.hosts,
            vec![Endpoint {
                host: "bastion.example".into(),
                port: 22
            }]
        );
        assert_eq!(u.sessions, DEFAULT_SESSIONS);
        assert_eq!(u.host_key_check, HostKeyCheck::Strict);
        assert_eq!(u.keepalive.interval, Duration::from_secs(5));
        assert_eq!(u.keepalive.count_max, 2);
        assert!(u.identity_files[0].ends_with(".ssh/id_ed25519"));
        assert!(!u.identity_files[0].starts_with("~"));
        let l = &c.listeners[0];
        assert_eq!(l.bind, "127.0.0.1:1080".parse().expect("addr"));
        assert_eq!(l.handshake_timeout, Duration::from_secs(3));
        assert_eq!(l.connect_timeout, DEFAULT_TIMEOUT);
    }

    #[test]
    fn limits_are_typed_and_checked() {
        let text = format!(
            "{GOOD}\n[limits]\nconnections_per_second_per_client = 50\nmax_connections = 10000\n"
        );
        let c = parse(&text).expect("valid limits");
        assert_eq!(
            c.limits.connections_per_second_per_client.map(|n| n.get()),
            Some(50)
        );
        assert_eq!(c.limits.max_connections, Some(10000));
        assert_eq!(parse(GOOD).expect("valid").limits, LimitSettings::default());
        let e = parse(&format!("{GOOD}\n[limits]\nmax_connections = 0\n"))
            .expect_err("zero")
            .to_string();
        assert!(
            e.starts_with(
                "/etc/jumpgate.toml:16: [limits] max_connections = 0: expected a whole number"
            ),
            "{e}"
        );
        let e = parse(&format!("{GOOD}\n[limits]\nper_user = 3\n"))
            .expect_err("unknown")
            .to_string();
        assert!(e.contains(":16:") && e.contains("per_user"), "{e}");
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let text = GOOD.replace("user = \"ci\"", "user = \"ci\"\nusername = \"x\"");
        let e = parse(&text).expect_err("unknown key").to_string();
        assert!(e.starts_with("/etc/jumpgate.toml:6: "), "{e}");
        assert!(e.contains("username"), "{e}");
    }

    #[test]
    fn syntax_error_has_line() {
        let text = GOOD
            .replace("port", "")
            .replace("via = \"corp\"", "via = corp\"");
        let e = parse(&text).expect_err("syntax").to_string();
        assert!(e.starts_with("/etc/jumpgate.toml:12: "), "{e}");
    }

    #[test]
    fn via_must_name_an_upstream() {
        let e = parse(&GOOD.replace("via = \"corp\"", "via = \"lab\""))
            .expect_err("unknown via")
            .to_string();
        assert!(
            e.contains(":12: listener browser: via = \"lab\" names no upstream (known: corp)"),
            "{e}"
        );
    }

    #[test]
    fn bad_duration_and_port_have_lines() {
        let e = parse(&GOOD.replace("\"3s\"", "\"15 parsecs\""))
            .expect_err("dur")
            .to_string();
        assert!(
            e.contains(":13: handshake_timeout = \"15 parsecs\": not a duration"),
            "{e}"
        );
        let e = parse(&GOOD.replace("user = \"ci\"", "user = \"ci\"\nport = 70000"))
            .expect_err("port")
            .to_string();
        assert!(e.contains(":6: port = 70000"), "{e}");
    }

    #[test]
    fn bad_enum_values_are_explained() {
        let e = parse(&GOOD.replace("user = \"ci\"", "user = \"ci\"\nhost_key_check = \"maybe\""))
            .expect_err("hkc")
            .to_string();
        assert!(e.contains("use strict, accept-new or off"), "{e}");
        let e = parse(&GOOD.replace(
            "name = \"browser\"",
            "name = \"browser\"\nkind = \"socks4\"",
        ))
        .expect_err("kind")
        .to_string();
        assert!(e.contains("kind = \"socks4\""), "{e}");
    }

    #[test]
    fn missing_sections_and_duplicates() {
        assert!(parse("")
            .expect_err("empty")
            .to_string()
            .contains("no [[upstream]]"));
        let twice = format!("{GOOD}\n[[upstream]]\nname = \"corp\"\nhost = \"h\"\n");
        let e = parse(&twice).expect_err("dup").to_string();
        assert!(e.contains("used twice"), "{e}");
    }

    #[test]
    fn hosts_chain_and_pool_settings() {
        let text = GOOD.replace(
            "host = \"bastion.example\"",
            "hosts = [\"a.example\", \"b.example:2222\", \"[::1]:22\"]\n\
             proxy_jump = [\"ops@outer:2200\", \"mid\"]\n\
             sessions = { min = 2, max = 6, idle_timeout = \"30s\" }\n\
             max_channels_per_session = 300\nstall_timeout = \"1s\"",
        );
        let c = parse(&text).expect("valid");
        let u = &c.upstreams[0];
        let shown: Vec<String> = u.hosts.iter().map(|e| e.to_string()).collect();
        assert_eq!(shown, ["a.example:22", "b.example:2222", "[::1]:22"]);
        assert_eq!(u.proxy_jump[0].user.as_deref(), Some("ops"));
        assert_eq!(u.proxy_jump[0].endpoint.to_string(), "outer:2200");
        assert_eq!(u.proxy_jump[1].user, None);
        assert_eq!((u.sessions.min, u.sessions.max), (2, 6));
        assert_eq!(u.max_channels_per_session, 300);
        assert_eq!(u.stall_timeout, Duration::from_secs(1));
        let bad = GOOD.replace(
            "user = \"ci\"",
            "user = \"ci\"\nsessions = { min = 5, max = 2 }",
        );
        assert!(parse(&bad)
            .expect_err("min>max")
            .to_string()
            .contains(":6: sessions: min = 5"));
        let both = GOOD.replace("user = \"ci\"", "user = \"ci\"\nhosts = [\"x\"]");
        assert!(parse(&both)
            .expect_err("both")
            .to_string()
            .contains("not both"));
        assert_eq!(parse_endpoint("h:0", 22), None);
        assert_eq!(parse_endpoint("::1", 22).map(|e| e.port), Some(22));
    }

    #[test]
    fn upstream_from_ssh_config() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sc = dir.path().join("ssh_config");
        std::fs::write(
            &sc,
            "Host bastion\n  HostName 10.1.2.3\n  Port 2222\n  User ops\n  ProxyJump hop\n\
             \x20 StrictHostKeyChecking accept-new\n  ServerAliveInterval 7\n  ConnectTimeout 4\n\
             Host hop\n  HostName hop.example\n  User hopper\n  Port 2200\n",
        )
        .expect("write");
        let base = format!(
            "[[upstream]]\nname = \"corp\"\nhost = \"bastion\"\nssh_config = \"{}\"\n",
            sc.display()
        );
        let listener = "\n[[listener]]\nname = \"l\"\nbind = \"127.0.0.1:1080\"\n";
        let c = parse(&format!("{base}{listener}")).expect("valid");
        let u = &c.upstreams[0];
        assert_eq!(u.name, "corp");
        assert_eq!(u.hosts[0].to_string(), "10.1.2.3:2222");
        assert_eq!(u.user, "ops");
        assert_eq!(u.host_key_check, HostKeyCheck::AcceptNew);
        assert_eq!(u.keepalive.interval, Duration::from_secs(7));
        assert_eq!(u.connect_timeout, Duration::from_secs(4));
        assert_eq!(u.proxy_jump[0].user.as_deref(), Some("hopper"));
        assert_eq!(u.proxy_jump[0].endpoint.to_string(), "hop.example:2200");
        // Keys in the table win over the file.
        let c = parse(&format!(
            "{base}user = \"me\"\nport = 22\nhost_key_check = \"strict\"\n{listener}"
        ))
        .expect("valid");
        let u = &c.upstreams[0];
        assert_eq!((u.user.as_str(), u.hosts[0].port), ("me", 22));
        assert_eq!(u.host_key_check, HostKeyCheck::Strict);
        // Errors name this file's line and the ssh_config problem.
        std::fs::write(&sc, "Host *\n  Port nope\n").expect("write");
        let e = parse(&format!("{base}{listener}"))
            .expect_err("bad")
            .to_string();
        assert!(e.starts_with("/etc/jumpgate.toml:4: ssh_config = "), "{e}");
        assert!(e.contains("line 2: Bad port 'nope'."), "{e}");
        let e =
            parse(&format!("{base}{listener}").replace("host = \"bastion\"", "hosts = [\"a\"]"))
                .expect_err("hosts")
                .to_string();
        assert!(e.contains("ssh_config needs host"), "{e}");
    }

    #[test]
    fn forward_listener_needs_to_and_socks_refuses_it() {
        let fwd = GOOD.replace(
            "name = \"browser\"",
            "name = \"browser\"\nkind = \"forward\"\nto = \"db.internal:5432\"",
        );
        let c = parse(&fwd).expect("valid forward");
        assert_eq!(
            c.listeners[0].kind,
            ListenerKind::Forward {
                host: "db.internal".into(),
                port: 5432
            }
        );
        let v6 = fwd.replace("db.internal:5432", "[::1]:22");
        assert_eq!(
            parse(&v6).expect("v6").listeners[0].kind,
            ListenerKind::Forward {
                host: "::1".into(),
                port: 22
            }
        );
        let missing = GOOD.replace(
            "name = \"browser\"",
            "name = \"browser\"\nkind = \"forward\"",
        );
        let e = parse(&missing).expect_err("no to").to_string();
        assert!(
            e.contains(":11: listener browser: kind = \"forward\" needs to = \"host:port\""),
            "{e}"
        );
        let no_port = fwd.replace("db.internal:5432", "db.internal");
        let e = parse(&no_port).expect_err("no port").to_string();
        assert!(
            e.contains(":12: listener browser: to = \"db.internal\": expected host:port"),
            "{e}"
        );
        let socks_to = GOOD.replace("name = \"browser\"", "name = \"browser\"\nto = \"x:1\"");
        let e = parse(&socks_to).expect_err("socks to").to_string();
        assert!(
            e.contains(":11: listener browser: to = ... is only for kind = \"forward\""),
            "{e}"
        );
    }

    #[test]
    fn remote_forwards_are_typed_and_checked() {
        let text = GOOD.replace(
            "user = \"ci\"",
            "user = \"ci\"\nexit_on_forward_failure = true\nremote_forwards = [\n  \
             { bind = \"8080\", to = \"127.0.0.1:80\" },\n  \
             { bind = \"0.0.0.0:0\", to = \"[::1]:22\" },\n  \
             { bind = \"[::1]:9000\", to = \"web:8000\" },\n]",
        );
        let c = parse(&text).expect("valid");
        let u = &c.upstreams[0];
        assert!(u.exit_on_forward_failure);
        let rf = |bh: &str, bp, th: &str, tp| RemoteForward {
            bind_host: bh.into(),
            bind_port: bp,
            to_host: th.into(),
            to_port: tp,
        };
        assert_eq!(
            u.remote_forwards,
            vec![
                rf("localhost", 8080, "127.0.0.1", 80),
                rf("0.0.0.0", 0, "::1", 22),
                rf("::1", 9000, "web", 8000),
            ]
        );
        assert_eq!(u.remote_forwards[2].to_string(), "[::1]:9000 -> web:8000");
        assert!(!parse(GOOD).expect("valid").upstreams[0].exit_on_forward_failure);
        let with = |line: &str| GOOD.replace("user = \"ci\"", &format!("user = \"ci\"\n{line}"));
        let e = parse(&with(
            "remote_forwards = [{ bind = \"x:y\", to = \"h:1\" }]",
        ))
        .expect_err("bind")
        .to_string();
        assert!(
            e.contains(":6: upstream corp: remote_forwards bind = \"x:y\": expected [host:]port"),
            "{e}"
        );
        let e = parse(&with("remote_forwards = [{ bind = \"80\", to = \"h\" }]"))
            .expect_err("to")
            .to_string();
        assert!(
            e.contains("remote_forwards to = \"h\": expected host:port"),
            "{e}"
        );
        let e = parse(&with("remote_forwards = [{ bind = \"80\" }]"))
            .expect_err("missing to")
            .to_string();
        assert!(e.contains(":6: ") && e.contains("to"), "{e}");
        let e = parse(&with(
            "remote_forwards = [{ bind = \"80\", to = \"h:1\" }, { bind = \"80\", to = \"h:2\" }]",
        ))
        .expect_err("twice")
        .to_string();
        assert!(e.contains("bind = \"80\" is used twice"), "{e}");
        let e = parse(&with(
            "sessions = { min = 0, max = 2 }\nremote_forwards = [{ bind = \"80\", to = \"h:1\" }]",
        ))
        .expect_err("min 0")
        .to_string();
        assert!(
            e.contains(":7: upstream corp: remote_forwards need a session"),
            "{e}"
        );
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
    fn algorithm_lists_and_certificates() {
        let c = parse(GOOD).expect("valid");
        assert!(c.upstreams[0].algorithms.ciphers.is_none());
        assert!(c.upstreams[0].certificate_files.is_empty());
        let text = GOOD.replace(
            "user = \"ci\"",
            "user = \"ci\"\nciphers = [\"aes256-ctr\"]\nkex = [\"curve25519-sha256\"]\n\
             macs = [\"+hmac-sha1\"]\nhost_key_algorithms = [\"ssh-ed25519\"]\n\
             certificate_files = [\"~/.ssh/id_ed25519-cert.pub\"]",
        );
        let u = &parse(&text).expect("valid").upstreams[0];
        assert_eq!(
            u.algorithms.ciphers.as_deref(),
            Some(&["aes256-ctr".to_owned()][..])
        );
        assert_eq!(
            u.algorithms.macs.as_deref(),
            Some(&["+hmac-sha1".to_owned()][..])
        );
        assert!(u.certificate_files[0].ends_with(".ssh/id_ed25519-cert.pub"));
        assert!(!u.certificate_files[0].starts_with("~"));
        let bad = GOOD.replace(
            "user = \"ci\"",
            "user = \"ci\"\nciphers = [\"aes256-ctr\"]\nmacs = [\"hmac-md5\"]",
        );
        let e = parse(&bad).expect_err("md5").to_string();
        assert!(
            e.starts_with("/etc/jumpgate.toml:7: macs: \"hmac-md5\" is not supported"),
            "{e}"
        );
        assert!(e.contains("hmac-sha2-256-etm@openssh.com"), "{e}");
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
