//! What can go wrong on a session: logging in (`ConnectError`, worded so
//! that a user sees which setting to change, in the language of the
//! interface they came through: `config::Interface`) and opening a channel
//! (`OpenError`, with its `reason` label for
//! `jumpgate_channel_open_failures_total`). What a client is told about an
//! `OpenError` is the listener's business (`proxy`), not this module's.

use std::time::Duration;

use russh::ChannelOpenFailure;

use crate::config::{Endpoint, Interface, Setting};
use crate::metrics::OpenFailure;
use crate::ssh::known_hosts::HostKeyError;
use crate::ssh::proxy_command;

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("ProxyCommand {command:?} {status} before the SSH login finished")]
    ProxyCommand { command: String, status: String },
    #[error(transparent)]
    ProxyCommandStart(#[from] proxy_command::ProxyCommandError),
    #[error("cannot connect to {addr}: {source}")]
    Tcp {
        addr: String,
        source: std::io::Error,
    },
    #[error("could not resolve hostname {host}: {source}")]
    Resolve {
        host: String,
        source: std::io::Error,
    },
    #[error("{addr}: connect, SSH handshake and login did not finish within {after:?}")]
    Timeout { addr: String, after: Duration },
    #[error("{0}")]
    HostKey(#[from] HostKeyError),
    #[error(
        "{user}@{addr}: Permission denied (publickey): tried {tried}; the server accepts {methods}"
    )]
    Denied {
        user: String,
        addr: String,
        tried: String,
        methods: String,
    },
    #[error("ProxyJump: {from} could not open a channel to {to}: {reason}")]
    Hop {
        from: String,
        to: String,
        reason: String,
    },
    /// OpenSSH's wording, plus which config key to change.
    #[error(
        "Unable to negotiate with {addr}: no matching {what} found. Their offer: {theirs}; \
         ours ({key}): {ours}"
    )]
    NoCommonAlgorithm {
        addr: String,
        what: &'static str,
        key: &'static str,
        theirs: String,
        ours: String,
    },
    #[error("{addr}: SSH handshake failed: {source}")]
    Ssh { addr: String, source: russh::Error },
}

impl ConnectError {
    /// The exit code of a command whose login failed so (`up`'s first
    /// login, `check`): a host key or a refused key is the user's config
    /// (78, not worth a restart); anything else may clear up by itself (1).
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::HostKey(_) | Self::Denied { .. } => crate::exit::EXIT_CONFIG,
            _ => crate::exit::EXIT_RUNTIME,
        }
    }

    /// A handshake error from russh, with the cases a user can fix in the
    /// config told apart, naming the setting as `interface` spells it.
    pub(super) fn from_handshake(
        addr: &Endpoint,
        interface: Interface,
        source: russh::Error,
    ) -> ConnectError {
        let addr = addr.to_string();
        match source {
            russh::Error::NoCommonAlgo { kind, ours, theirs } => {
                let (what, key) = match kind {
                    russh::AlgorithmKind::Kex => ("key exchange method", Some(Setting::Kex)),
                    russh::AlgorithmKind::Key => {
                        ("host key type", Some(Setting::HostKeyAlgorithms))
                    }
                    russh::AlgorithmKind::Cipher => ("cipher", Some(Setting::Ciphers)),
                    russh::AlgorithmKind::Mac => ("MAC", Some(Setting::Macs)),
                    russh::AlgorithmKind::Compression => ("compression method", None),
                };
                let key = key.map_or("not configurable", |k| interface.key(k));
                ConnectError::NoCommonAlgorithm {
                    addr,
                    what,
                    key,
                    theirs: theirs.join(","),
                    ours: ours.join(","),
                }
            }
            source => ConnectError::Ssh { addr, source },
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("jump host refused the channel ({reason}): {text}")]
    Refused { reason: FailureReason, text: String },
    #[error("channel open timed out")]
    Timeout,
    #[error("no SSH session to upstream {upstream} became ready within {waited:?}")]
    NoSession { upstream: String, waited: Duration },
    #[error("the SSH session is gone")]
    SessionGone,
    /// Refused at once: every tunnel slot is taken (`limit` names which
    /// limit, with its figures).
    #[error("upstream {upstream} is full: {limit}")]
    Full { upstream: String, limit: String },
    #[error("SSH error: {0}")]
    Ssh(russh::Error),
}

impl OpenError {
    /// The `reason` of `jumpgate_channel_open_failures_total`.
    pub fn reason(&self) -> OpenFailure {
        match self {
            Self::Refused { reason, .. } => match reason {
                FailureReason::AdministrativelyProhibited => OpenFailure::Prohibited,
                FailureReason::ConnectFailed => OpenFailure::ConnectFailed,
                FailureReason::UnknownChannelType => OpenFailure::UnknownChannelType,
                FailureReason::ResourceShortage => OpenFailure::ResourceShortage,
            },
            Self::Timeout => OpenFailure::Timeout,
            Self::NoSession { .. } => OpenFailure::NoSession,
            Self::SessionGone => OpenFailure::SessionGone,
            Self::Full { .. } => OpenFailure::PoolFull,
            Self::Ssh(_) => OpenFailure::SshError,
        }
    }

    /// The `reason` label of `jumpgate_channel_open_failures_total`.
    pub fn reason_label(&self) -> &'static str {
        self.reason().label()
    }
}

/// `ChannelOpenFailure` with Display and Eq (russh's is neither).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureReason {
    AdministrativelyProhibited,
    ConnectFailed,
    UnknownChannelType,
    ResourceShortage,
}

impl std::fmt::Display for FailureReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::AdministrativelyProhibited => "administratively prohibited",
            Self::ConnectFailed => "connect failed",
            Self::UnknownChannelType => "unknown channel type",
            Self::ResourceShortage => "resource shortage",
        })
    }
}

impl From<&ChannelOpenFailure> for FailureReason {
    fn from(r: &ChannelOpenFailure) -> Self {
        match r {
            ChannelOpenFailure::AdministrativelyProhibited => Self::AdministrativelyProhibited,
            ChannelOpenFailure::ConnectFailed => Self::ConnectFailed,
            ChannelOpenFailure::UnknownChannelType => Self::UnknownChannelType,
            ChannelOpenFailure::ResourceShortage => Self::ResourceShortage,
            // russh may add codes; an unknown refusal reads best as this.
            #[allow(unreachable_patterns)]
            _ => Self::ConnectFailed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(reason: FailureReason) -> OpenError {
        OpenError::Refused {
            reason,
            text: String::new(),
        }
    }

    #[test]
    fn every_open_error_has_its_own_metric_label() {
        use FailureReason::*;
        let errors = [
            (refused(AdministrativelyProhibited), "prohibited"),
            (refused(ConnectFailed), "connect_failed"),
            (refused(UnknownChannelType), "unknown_channel_type"),
            (refused(ResourceShortage), "resource_shortage"),
            (OpenError::Timeout, "timeout"),
            (
                OpenError::NoSession {
                    upstream: "u".into(),
                    waited: Duration::from_secs(1),
                },
                "no_session",
            ),
            (OpenError::SessionGone, "session_gone"),
            (
                OpenError::Full {
                    upstream: "u".into(),
                    limit: "1 x 1".into(),
                },
                "pool_full",
            ),
            (OpenError::Ssh(russh::Error::Inconsistent), "ssh_error"),
        ];
        for (e, label) in &errors {
            assert_eq!(e.reason_label(), *label, "{e}");
        }
    }

    #[test]
    fn russh_refusal_codes_map_one_to_one() {
        use ChannelOpenFailure as C;
        let pairs = [
            (
                C::AdministrativelyProhibited,
                FailureReason::AdministrativelyProhibited,
                "administratively prohibited",
            ),
            (
                C::ConnectFailed,
                FailureReason::ConnectFailed,
                "connect failed",
            ),
            (
                C::UnknownChannelType,
                FailureReason::UnknownChannelType,
                "unknown channel type",
            ),
            (
                C::ResourceShortage,
                FailureReason::ResourceShortage,
                "resource shortage",
            ),
        ];
        for (code, reason, text) in pairs {
            assert_eq!(FailureReason::from(&code), reason);
            assert_eq!(reason.to_string(), text);
        }
        let e = OpenError::Refused {
            reason: FailureReason::ConnectFailed,
            text: "Connection refused".into(),
        };
        assert_eq!(
            e.to_string(),
            "jump host refused the channel (connect failed): Connection refused"
        );
    }

    fn endpoint() -> Endpoint {
        Endpoint {
            host: "bastion".into(),
            port: 2222,
        }
    }

    #[test]
    fn a_missing_common_algorithm_names_the_config_key() {
        use russh::AlgorithmKind as K;
        let cases = || {
            [
                (K::Kex, "key exchange method", "kex", "KexAlgorithms"),
                (
                    K::Key,
                    "host key type",
                    "host_key_algorithms",
                    "HostKeyAlgorithms",
                ),
                (K::Cipher, "cipher", "ciphers", "Ciphers"),
                (K::Mac, "MAC", "macs", "MACs"),
                (
                    K::Compression,
                    "compression method",
                    "not configurable",
                    "not configurable",
                ),
            ]
        };
        let toml = cases().map(|(k, w, t, _)| (k, w, Interface::Toml, t));
        let ssh = cases().map(|(k, w, _, s)| (k, w, Interface::Ssh, s));
        for (kind, what, interface, key) in toml.into_iter().chain(ssh) {
            let e = ConnectError::from_handshake(
                &endpoint(),
                interface,
                russh::Error::NoCommonAlgo {
                    kind,
                    ours: vec!["a".into(), "b".into()],
                    theirs: vec!["c".into()],
                },
            );
            assert_eq!(
                e.to_string(),
                format!(
                    "Unable to negotiate with bastion:2222: no matching {what} found. \
                     Their offer: c; ours ({key}): a,b"
                )
            );
        }
    }

    #[test]
    fn other_handshake_errors_keep_russh_text_and_the_address() {
        let e =
            ConnectError::from_handshake(&endpoint(), Interface::Toml, russh::Error::Disconnect);
        assert!(matches!(e, ConnectError::Ssh { .. }), "{e:?}");
        let shown = e.to_string();
        assert!(
            shown.starts_with("bastion:2222: SSH handshake failed: "),
            "{shown}"
        );
        assert!(
            shown.ends_with(&russh::Error::Disconnect.to_string()),
            "{shown}"
        );
    }
}
