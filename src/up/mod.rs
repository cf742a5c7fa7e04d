//! `jumpgate up`: ssh's command line (`-D`, `-J`, `-p`, `-o`, `-F` ...) and
//! ssh_config, turned into a jumpgate [`Config`] and run like `jumpgate
//! run`, with a readiness signal for scripts (a line on stderr and
//! `--ready-file`). `-G` prints the resolved configuration as `ssh -G`.

pub mod flags;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use tracing::warn;

use crate::config::{
    self, Config, Endpoint, Hop, HostKeyCheck, Keepalive, Listener, ListenerKind, Upstream,
};
use crate::ssh_config::{
    self, ConfigFiles, Local, Options, Request, Resolved, StrictHostKeyChecking,
};

pub use flags::{parse as parse_args, UpArgs, UsageError, USAGE};

/// Why a resolved configuration cannot run (exit 78).
#[derive(Debug, thiserror::Error)]
pub enum UpError {
    #[error(transparent)]
    SshConfig(#[from] ssh_config::SshConfigError),
    #[error("{0}")]
    Unsupported(String),
}

/// Reads the files for `up`'s destination.
pub fn resolve(up: &UpArgs, local: &Local) -> Result<Resolved, ssh_config::SshConfigError> {
    ssh_config::resolve(
        &Request {
            host: up.host.clone(),
            cmdline: up.cmdline.clone(),
            files: up.files.clone(),
        },
        local,
    )
}

/// The jumpgate configuration `up` runs: one upstream (the destination,
/// through its ProxyJump chain), one SOCKS5 listener per -D/DynamicForward.
pub fn to_config(r: &Resolved, up: &UpArgs, local: &Local) -> Result<Config, UpError> {
    if let Some(c) = &r.proxy_command {
        return Err(UpError::Unsupported(format!(
            "ProxyCommand {c:?} is not supported by jumpgate: use ProxyJump (-J) instead"
        )));
    }
    if let Some(f) = r.local_forwards.first() {
        return Err(UpError::Unsupported(format!(
            "LocalForward/-L {} is not supported yet by jumpgate up",
            f
        )));
    }
    if let Some(f) = r.remote_forwards.first() {
        return Err(UpError::Unsupported(format!(
            "RemoteForward/-R {} {} is not supported yet by jumpgate up",
            f.listen_display(),
            f.connect_display()
        )));
    }
    if r.dynamic_forwards.is_empty() {
        return Err(UpError::Unsupported(format!(
            "nothing to serve: give -D [bind_address:]port (or DynamicForward for {} in ssh_config)",
            r.host
        )));
    }
    let upstream = upstream_from(r, &up.files, local)?;
    let mut listeners = Vec::new();
    for (i, f) in r.dynamic_forwards.iter().enumerate() {
        let bind = bind_addr(f, r.gateway_ports)?;
        let mut name = format!("socks-{}", bind.port());
        if listeners.iter().any(|l: &Listener| l.name == name) {
            name = format!("{name}-{i}");
        }
        listeners.push(Listener {
            name,
            kind: ListenerKind::Socks5,
            bind,
            via: 0,
            handshake_timeout: config::DEFAULT_TIMEOUT,
            connect_timeout: config::DEFAULT_TIMEOUT,
        });
    }
    Ok(Config {
        upstreams: vec![upstream],
        listeners,
        admin: up.admin,
        limits: Default::default(),
    })
}

/// ssh's rule for where a forward listens: no address means loopback
/// (everywhere with GatewayPorts), `*` or empty means everywhere.
fn bind_addr(f: &ssh_config::Forward, gateway_ports: bool) -> Result<SocketAddr, UpError> {
    if let Some(p) = &f.listen_path {
        return Err(UpError::Unsupported(format!(
            "-D {p}: listening on a Unix socket is not supported"
        )));
    }
    let any = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    let ip = match f.listen_host.as_deref() {
        None if gateway_ports => any,
        None | Some("localhost") => IpAddr::V4(Ipv4Addr::LOCALHOST),
        Some("" | "*") => any,
        Some(h) => h.parse().map_err(|_| {
            UpError::Unsupported(format!(
                "-D {h}:{}: the bind address must be an IP address, localhost or *",
                f.listen_port
            ))
        })?,
    };
    Ok(SocketAddr::new(ip, f.listen_port))
}

/// Upstream name for metrics and logs: the destination, in allowed letters.
fn upstream_name(host: &str) -> String {
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
) -> Result<Upstream, UpError> {
    let mut identity_paths: Vec<PathBuf> = Vec::new();
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
        if !identity_paths.contains(p) {
            identity_paths.insert(0, p.clone());
        }
    }
    let identity_files = usable_identities(identity_paths);
    let keepalive = Keepalive {
        interval: if r.server_alive_interval > 0 {
            Duration::from_secs(u64::from(r.server_alive_interval))
        } else {
            config::DEFAULT_KEEPALIVE.interval
        },
        count_max: r.server_alive_count_max.clamp(1, 1000),
    };
    let agent = !r.identities_only && r.identity_agent.as_deref() != Some("none");
    if let Some(a) = r
        .identity_agent
        .as_deref()
        .filter(|a| *a != "none" && *a != "SSH_AUTH_SOCK")
    {
        warn!(identity_agent = %a, "IdentityAgent: jumpgate uses the agent at $SSH_AUTH_SOCK only");
    }
    Ok(Upstream {
        name: upstream_name(&r.host),
        hosts: vec![Endpoint {
            host: r.hostname.clone(),
            port: r.port,
        }],
        proxy_jump,
        user: r.user.clone(),
        identity_files,
        passphrase: None,
        agent,
        known_hosts: r
            .user_known_hosts_files
            .first()
            .map(PathBuf::from)
            .unwrap_or_else(|| local.home.join(".ssh/known_hosts")),
        host_key_check: match r.strict_host_key_checking {
            StrictHostKeyChecking::Yes | StrictHostKeyChecking::Ask => HostKeyCheck::Strict,
            StrictHostKeyChecking::AcceptNew => HostKeyCheck::AcceptNew,
            StrictHostKeyChecking::No => HostKeyCheck::Off,
        },
        keepalive,
        reconnect: config::DEFAULT_BACKOFF,
        connect_timeout: match r.connect_timeout {
            Some(t) if t > 0 => Duration::from_secs(u64::from(t)),
            _ => config::DEFAULT_TIMEOUT,
        },
        sessions: config::DEFAULT_SESSIONS,
        max_channels_per_session: config::DEFAULT_MAX_CHANNELS,
        stall_timeout: config::DEFAULT_STALL_TIMEOUT,
    })
}

/// Appends the hops for `-J h1,h2,...` (each resolved through the files),
/// outermost first; h1's own ProxyJump comes before it.
fn chain(
    hops: &[ssh_config::UserHostPort],
    files: &ConfigFiles,
    local: &Local,
    out: &mut Vec<Hop>,
    ids: &mut Vec<PathBuf>,
    depth: usize,
) -> Result<(), UpError> {
    if depth > 8 {
        return Err(UpError::Unsupported(
            "ProxyJump: more than 8 nested jump hosts (a loop?)".into(),
        ));
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
            cmdline.jump = Some(ssh_config::Jump::Disabled);
        }
        let r = ssh_config::resolve(
            &Request {
                host: h.host.clone(),
                cmdline,
                files: files.clone(),
            },
            local,
        )?;
        if let Some(c) = &r.proxy_command {
            return Err(UpError::Unsupported(format!(
                "jump host {}: ProxyCommand {c:?} is not supported by jumpgate",
                h.host
            )));
        }
        if i == 0 {
            if let Some(j) = &r.jump {
                chain(&j.hops(), files, local, out, ids, depth + 1)?;
            }
        }
        for p in &r.identity_paths {
            if !ids.contains(p) {
                ids.push(p.clone());
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

/// Identity files as ssh uses them: missing ones are skipped, and keys
/// that need a passphrase are left to the agent (`up` never prompts).
fn usable_identities(paths: Vec<PathBuf>) -> Vec<PathBuf> {
    paths
        .into_iter()
        .filter(|p| p.exists())
        .filter(|p| match crate::ssh::identity::load(p, None, "") {
            Err(crate::ssh::identity::IdentityError::NeedsPassphrase { .. }) => {
                warn!(identity = %p.display(), "encrypted key skipped: jumpgate up does not prompt; add it to ssh-agent");
                false
            }
            // Other problems (permissions, format) are reported when the
            // daemon loads the key, with the file named.
            _ => true,
        })
        .collect()
}

/// `jumpgate up ARGS`; returns the exit code.
pub async fn run(up: UpArgs) -> u8 {
    let local = Local::detect();
    for w in &up.warnings {
        eprintln!("{w}");
    }
    let resolved = match resolve(&up, &local) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            return crate::cli::EXIT_CONFIG;
        }
    };
    for w in &resolved.warnings {
        if up.print_config {
            eprintln!("{w}");
        } else {
            warn!("{w}");
        }
    }
    if up.print_config {
        print!("{}", ssh_config::print::print(&resolved));
        return 0;
    }
    let config = match to_config(&resolved, &up, &local) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("jumpgate up: {e}");
            return crate::cli::EXIT_CONFIG;
        }
    };
    ready::serve(config, up.ready_file).await
}

mod ready;
