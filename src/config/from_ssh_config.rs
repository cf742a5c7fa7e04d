//! From a resolved ssh_config host (`crate::ssh_config::Resolved`) to
//! jumpgate's [`Upstream`]: the host name, port and user, the ProxyJump
//! chain with every hop resolved through the same files (as ssh's `-J`
//! does), identity files, known_hosts, host key checking, keepalives, the
//! connect timeout, remote forwards and algorithm lists. Used by `up` (the
//! command line) and by `config::merge` (the TOML `ssh_config =` key).

use std::path::PathBuf;
use std::time::Duration;

use super::algorithms::Kind;
use super::model::Interface;
use super::model::{
    Algorithms, Endpoint, Hop, HostKeyCheck, Keepalive, RemoteForward, Upstream, DEFAULT_BACKOFF,
    DEFAULT_KEEPALIVE, DEFAULT_MAX_CHANNELS, DEFAULT_SESSIONS, DEFAULT_TIMEOUT,
};
use crate::ssh_config::{
    self as sc, ConfigFiles, Local, Options, Request, Resolved, StrictHostKeyChecking,
};

#[derive(Debug, thiserror::Error)]
pub enum ToUpstreamError {
    #[error(transparent)]
    SshConfig(#[from] sc::SshConfigError),
    #[error(
        "{host}: ProxyCommand {command:?} is not supported by jumpgate: use ProxyJump instead"
    )]
    ProxyCommand { host: String, command: String },
    #[error("ProxyJump: more than 8 nested jump hosts (a loop?)")]
    JumpLoop,
    #[error("{keyword} {list}: jumpgate implements none of these (it has: {supported})")]
    NoAlgorithm {
        keyword: &'static str,
        list: String,
        supported: String,
    },
    #[error("RemoteForward {0}")]
    RemoteForward(String),
}

/// An OpenSSH algorithm list as resolved (`+`/`-`/`^` applied to OpenSSH's
/// defaults), kept to the names russh implements, in the same order: ssh
/// offers its list and the server picks, and we can only offer what we have.
fn algorithm_list(
    kind: Kind,
    keyword: &'static str,
    list: &[String],
) -> Result<Vec<String>, ToUpstreamError> {
    let supported = kind.supported();
    let kept: Vec<String> = list
        .iter()
        .filter(|n| supported.contains(&n.as_str()))
        .cloned()
        .collect();
    if kept.is_empty() {
        return Err(ToUpstreamError::NoAlgorithm {
            keyword,
            list: list.join(","),
            supported: supported.join(","),
        });
    }
    Ok(kept)
}

fn algorithms(r: &Resolved) -> Result<Algorithms, ToUpstreamError> {
    let [ciphers, kex, macs, host_keys] = r.algorithms_set;
    let pick = |set: bool,
                kind,
                keyword,
                list: &[String]|
     -> Result<Option<Vec<String>>, ToUpstreamError> {
        if set {
            algorithm_list(kind, keyword, list).map(Some)
        } else {
            Ok(None)
        }
    };
    Ok(Algorithms {
        kex: pick(kex, Kind::Kex, "KexAlgorithms", &r.kex_algorithms)?,
        ciphers: pick(ciphers, Kind::Cipher, "Ciphers", &r.ciphers)?,
        macs: pick(macs, Kind::Mac, "MACs", &r.macs)?,
        host_key_algorithms: pick(
            host_keys,
            Kind::HostKey,
            "HostKeyAlgorithms",
            &r.host_key_algorithms,
        )?,
    })
}

/// RemoteForward/-R as the `tcpip-forward` request ssh sends: no bind
/// address means the jump host's "localhost", `*` or empty means all.
pub fn remote_forwards(r: &Resolved) -> Result<Vec<RemoteForward>, ToUpstreamError> {
    r.remote_forwards
        .iter()
        .map(|f| {
            let shown = || format!("{} {}", f.listen_display(), f.connect_display());
            if f.listen_path.is_some() || f.connect_path.is_some() {
                return Err(ToUpstreamError::RemoteForward(format!(
                    "{}: Unix socket forwarding is not supported",
                    shown()
                )));
            }
            if f.is_dynamic() {
                return Err(ToUpstreamError::RemoteForward(format!(
                    "{}: a remote SOCKS proxy (no destination) is not supported",
                    f.listen_display()
                )));
            }
            let bind_host = match f.listen_host.as_deref() {
                None => "localhost".to_owned(),
                Some("*") => String::new(),
                Some(h) => h.to_owned(),
            };
            Ok(RemoteForward {
                bind_host,
                bind_port: f.listen_port,
                to_host: f.connect_host.clone().unwrap_or_default(),
                to_port: f.connect_port,
            })
        })
        .collect()
}

/// Upstream name for metrics and logs: the destination, in allowed letters.
pub fn upstream_name(host: &str) -> String {
    let n: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if n.is_empty() {
        "upstream".into()
    } else {
        n
    }
}

/// The upstream for a resolved destination: its ProxyJump hops are
/// resolved through the same files as ssh's `-J` does (a hop's own
/// HostName, Port, User and IdentityFile; only the first hop's own
/// ProxyJump is followed), and every hop's keys are offered everywhere.
pub fn upstream_from(
    r: &Resolved,
    files: &ConfigFiles,
    local: &Local,
) -> Result<Upstream, ToUpstreamError> {
    // Each path with whether the user named it (not one of ssh's defaults).
    let mut identity_paths: Vec<(PathBuf, bool)> = Vec::new();
    let mut proxy_jump = Vec::new();
    if let Some(j) = &r.jump {
        chain(
            &j.hops(),
            files,
            local,
            &mut proxy_jump,
            &mut identity_paths,
            0,
        )?;
    }
    for p in r.identity_paths.iter().rev() {
        if !identity_paths.iter().any(|(have, _)| have == p) {
            identity_paths.insert(0, (p.clone(), r.identity_paths_given));
        }
    }
    // Missing files are skipped, as ssh does (and, for the ones the user
    // named, said at login as ssh says it); encrypted ones are left to the
    // agent when the keys are loaded (`skip_encrypted_identities`).
    let mut identity_files = Vec::new();
    let mut missing_identities = Vec::new();
    for (p, given) in identity_paths {
        match std::fs::metadata(&p) {
            Ok(_) => identity_files.push(p),
            Err(e) if given => missing_identities.push((p, sc::strerror(&e))),
            Err(_) => {}
        }
    }
    let keepalive = Keepalive {
        interval: if r.server_alive_interval > 0 {
            Duration::from_secs(u64::from(r.server_alive_interval))
        } else {
            DEFAULT_KEEPALIVE.interval
        },
        count_max: r.server_alive_count_max.clamp(1, 1000),
    };
    // IdentityAgent: `none` turns the agent off, `SSH_AUTH_SOCK` (or
    // nothing) means the environment's agent, anything else is a socket path.
    let agent = !r.identities_only && r.identity_agent.as_deref() != Some("none");
    let agent_socket = r
        .identity_agent
        .as_deref()
        .filter(|a| *a != "none" && *a != "SSH_AUTH_SOCK")
        .map(PathBuf::from);
    // The first UserKnownHostsFile is the one accept-new writes; ssh reads
    // the others and the GlobalKnownHostsFile ones too.
    let mut user_known = r.user_known_hosts_files.iter().map(PathBuf::from);
    let known_hosts = user_known
        .next()
        .unwrap_or_else(|| local.home.join(".ssh/known_hosts"));
    let global_known_hosts = user_known
        .chain(r.global_known_hosts_files.iter().map(PathBuf::from))
        .collect();
    Ok(Upstream {
        name: upstream_name(&r.host),
        hosts: vec![Endpoint {
            host: r.hostname.clone(),
            port: r.port,
        }],
        proxy_jump,
        proxy_command: r.proxy_command_expanded.clone(),
        user: r.user.clone(),
        identity_files,
        skip_encrypted_identities: true,
        passphrase: None,
        agent,
        agent_socket,
        known_hosts,
        global_known_hosts,
        host_key_check: match r.strict_host_key_checking {
            StrictHostKeyChecking::Yes | StrictHostKeyChecking::Ask => HostKeyCheck::Strict,
            StrictHostKeyChecking::AcceptNew => HostKeyCheck::AcceptNew,
            StrictHostKeyChecking::No => HostKeyCheck::Off,
        },
        keepalive,
        reconnect: DEFAULT_BACKOFF,
        connect_timeout: match r.connect_timeout {
            Some(t) if t > 0 => Duration::from_secs(u64::from(t)),
            _ => DEFAULT_TIMEOUT,
        },
        sessions: DEFAULT_SESSIONS,
        max_channels_per_session: DEFAULT_MAX_CHANNELS,
        remote_forwards: remote_forwards(r)?,
        exit_on_forward_failure: r.exit_on_forward_failure,
        algorithms: algorithms(r)?,
        // Missing certificate files are skipped, as ssh does.
        certificate_files: r
            .certificate_paths
            .iter()
            .filter(|p| p.exists())
            .cloned()
            .collect(),
        interface: Interface::Ssh,
        missing_identities,
    })
}

/// Appends the hops for `-J h1,h2,...` (each resolved through the files),
/// outermost first; h1's own ProxyJump comes before it.
fn chain(
    hops: &[sc::UserHostPort],
    files: &ConfigFiles,
    local: &Local,
    out: &mut Vec<Hop>,
    ids: &mut Vec<(PathBuf, bool)>,
    depth: usize,
) -> Result<(), ToUpstreamError> {
    if depth > 8 {
        return Err(ToUpstreamError::JumpLoop);
    }
    for (i, h) in hops.iter().enumerate() {
        let mut cmdline = Options {
            user: h.user.clone(),
            port: h.port,
            ..Options::default()
        };
        if i > 0 {
            // Later hops are reached through the earlier ones: their own
            // ProxyJump does not apply (ssh passes -J for them).
            cmdline.jump = Some(sc::Jump::Disabled);
        }
        let r = sc::resolve(
            &Request {
                host: h.host.clone(),
                cmdline,
                files: files.clone(),
            },
            local,
        )?;
        if let Some(c) = &r.proxy_command {
            return Err(ToUpstreamError::ProxyCommand {
                host: h.host.clone(),
                command: c.clone(),
            });
        }
        if i == 0 {
            if let Some(j) = &r.jump {
                chain(&j.hops(), files, local, out, ids, depth + 1)?;
            }
        }
        for p in &r.identity_paths {
            if !ids.iter().any(|(have, _)| have == p) {
                ids.push((p.clone(), r.identity_paths_given));
            }
        }
        out.push(Hop {
            user: Some(r.user.clone()),
            endpoint: Endpoint {
                host: r.hostname.clone(),
                port: r.port,
            },
        });
    }
    Ok(())
}
