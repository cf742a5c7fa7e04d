//! The TOML file as serde reads it: every table with `deny_unknown_fields`
//! (an unknown key is an error naming its line), every value `Spanned` so
//! that `config::validate` can name the line of a bad one. No checks here:
//! these types only exist between `toml::from_str` and validation.

use serde::Deserialize;
use toml::Spanned;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub admin: Option<RawAdmin>,
    pub limits: Option<RawLimits>,
    pub relay: Option<Spanned<RawRelay>>,
    #[serde(default)]
    pub upstream: Vec<Spanned<RawUpstream>>,
    #[serde(default)]
    pub listener: Vec<Spanned<RawListener>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUpstream {
    pub name: Spanned<String>,
    pub host: Option<Spanned<String>>,
    pub hosts: Option<Spanned<Vec<String>>>,
    pub port: Option<Spanned<i64>>,
    #[serde(default)]
    pub proxy_jump: Vec<Spanned<String>>,
    pub proxy_command: Option<Spanned<String>>,
    pub sessions: Option<Spanned<RawSessions>>,
    pub max_channels_per_session: Option<Spanned<i64>>,
    pub stall_timeout: Option<Spanned<String>>,
    pub user: Option<String>,
    #[serde(default)]
    pub identity_files: Vec<Spanned<String>>,
    pub passphrase_env: Option<String>,
    pub passphrase_file: Option<Spanned<String>>,
    pub agent: Option<bool>,
    pub agent_socket: Option<Spanned<String>>,
    pub known_hosts: Option<Spanned<String>>,
    pub global_known_hosts: Option<Vec<Spanned<String>>>,
    pub host_key_check: Option<Spanned<String>>,
    pub keepalive: Option<Spanned<RawKeepalive>>,
    pub reconnect: Option<Spanned<RawBackoff>>,
    pub connect_timeout: Option<Spanned<String>>,
    /// An ssh_config file: `host` is then an alias resolved in it (see
    /// `config::merge`).
    pub ssh_config: Option<Spanned<String>>,
    #[serde(default)]
    pub remote_forwards: Vec<Spanned<RawRemoteForward>>,
    pub exit_on_forward_failure: Option<bool>,
    pub kex: Option<Spanned<Vec<String>>>,
    pub ciphers: Option<Spanned<Vec<String>>>,
    pub macs: Option<Spanned<Vec<String>>>,
    pub host_key_algorithms: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    pub certificate_files: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRemoteForward {
    pub bind: Spanned<String>,
    pub to: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAdmin {
    pub bind: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    pub connections_per_second_per_client: Option<Spanned<i64>>,
    pub max_connections: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRelay {
    pub memory_per_tunnel: Option<Spanned<String>>,
    pub spill_dir: Option<Spanned<String>>,
    pub spill_per_tunnel: Option<Spanned<String>>,
    pub spill_total: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSessions {
    pub min: Option<Spanned<i64>>,
    pub max: Option<Spanned<i64>>,
    pub idle_timeout: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawKeepalive {
    pub interval: Option<Spanned<String>>,
    pub count_max: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBackoff {
    pub initial: Option<Spanned<String>>,
    pub max: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawListener {
    pub name: Spanned<String>,
    pub kind: Option<Spanned<String>>,
    pub bind: Spanned<String>,
    pub via: Option<Spanned<String>>,
    /// Destination of a `forward` listener.
    pub to: Option<Spanned<String>>,
    pub handshake_timeout: Option<Spanned<String>>,
    pub connect_timeout: Option<Spanned<String>>,
}
