//! `jumpgate up`: ssh's command line (`-D`, `-J`, `-p`, `-o`, `-F` ...) and
//! ssh_config, turned into a jumpgate [`Config`] and run on the daemon's one
//! startup path (`daemon::startup`) with a first login and a readiness
//! signal for scripts (a line on stderr and `--ready-file`). `-G` prints the
//! resolved configuration as `ssh -G`, and with `--effective` also the
//! algorithm lists jumpgate really offers (`effective`). Flags are parsed in
//! `flags`.

pub mod effective;
pub mod flags;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use tracing::warn;

use crate::config::from_ssh_config::{upstream_from, ToUpstreamError};
use crate::config::{self, Config, Listener, ListenerKind};
use crate::daemon::startup::{Readiness, Startup, DEFAULT_GRACE};
use crate::exit::{EXIT_CONFIG, EXIT_OK};
use crate::ssh_config::{self, Local, Request, Resolved};

pub use flags::{parse as parse_args, UpArgs, UsageError, USAGE};

/// Why a resolved configuration cannot run (exit 78).
#[derive(Debug, thiserror::Error)]
pub enum UpError {
    #[error(transparent)]
    SshConfig(#[from] ssh_config::SshConfigError),
    #[error("{0}")]
    Unsupported(String),
}

impl From<ToUpstreamError> for UpError {
    fn from(e: ToUpstreamError) -> Self {
        match e {
            ToUpstreamError::SshConfig(e) => UpError::SshConfig(e),
            other => UpError::Unsupported(other.to_string()),
        }
    }
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
/// through its ProxyJump chain), one `socks5` listener per -D/DynamicForward
/// and one `forward` listener per -L/LocalForward; -R/RemoteForward stay
/// with the upstream.
pub fn to_config(r: &Resolved, up: &UpArgs, local: &Local) -> Result<Config, UpError> {
    if r.dynamic_forwards.is_empty() && r.local_forwards.is_empty() && r.remote_forwards.is_empty()
    {
        return Err(UpError::Unsupported(format!(
            "nothing to serve: give -D [bind_address:]port, -L or -R (or DynamicForward, \
             LocalForward, RemoteForward for {} in ssh_config)",
            r.host
        )));
    }
    let upstream = upstream_from(r, &up.files, local)?;
    let mut listeners = Vec::new();
    let local = r.dynamic_forwards.iter().chain(&r.local_forwards);
    for (i, f) in local.enumerate() {
        let (bind, also_bind) = bind_addrs(f, r.gateway_ports)?;
        let (prefix, kind) = if f.is_dynamic() {
            ("socks", ListenerKind::Socks5)
        } else {
            let (Some(host), None) = (&f.connect_host, &f.connect_path) else {
                return Err(UpError::Unsupported(format!(
                    "-L {f}: forwarding to a Unix socket is not supported"
                )));
            };
            (
                "forward",
                ListenerKind::Forward {
                    host: host.clone(),
                    port: f.connect_port,
                },
            )
        };
        let mut name = format!("{prefix}-{}", bind.port());
        if listeners.iter().any(|l: &Listener| l.name == name) {
            name = format!("{name}-{i}");
        }
        listeners.push(Listener {
            name,
            kind,
            bind,
            also_bind,
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
        relay: Default::default(),
    })
}

/// ssh's rule for where a forward listens: no address means loopback
/// (everywhere with GatewayPorts), `*` or empty means everywhere; loopback
/// and everywhere are both address families, as ssh binds them (the
/// first is the one that must bind, the others follow on its port).
fn bind_addrs(
    f: &ssh_config::Forward,
    gateway_ports: bool,
) -> Result<(SocketAddr, Vec<SocketAddr>), UpError> {
    if let Some(p) = &f.listen_path {
        return Err(UpError::Unsupported(format!(
            "{p}: listening on a Unix socket is not supported"
        )));
    }
    let port = f.listen_port;
    let both = |v4: Ipv4Addr, v6: Ipv6Addr| {
        (
            SocketAddr::new(IpAddr::V4(v4), port),
            vec![SocketAddr::new(IpAddr::V6(v6), port)],
        )
    };
    let any = || both(Ipv4Addr::UNSPECIFIED, Ipv6Addr::UNSPECIFIED);
    Ok(match f.listen_host.as_deref() {
        None if gateway_ports => any(),
        None | Some("localhost") => both(Ipv4Addr::LOCALHOST, Ipv6Addr::LOCALHOST),
        Some("" | "*") => any(),
        Some(h) => {
            let ip: IpAddr = h.parse().map_err(|_| {
                UpError::Unsupported(format!(
                    "{h}:{port}: the bind address must be an IP address, localhost or *"
                ))
            })?;
            (SocketAddr::new(ip, port), Vec::new())
        }
    })
}

/// `jumpgate up ARGS`; returns the exit code.
pub async fn run(up: UpArgs) -> u8 {
    let local = Local::detect();
    for w in &up.warnings {
        crate::say_err!("{w}");
    }
    let resolved = match resolve(&up, &local) {
        Ok(r) => r,
        // Bad lines are ssh's own, word for word; the rest says who speaks.
        Err(e @ ssh_config::SshConfigError::Bad(_)) => {
            crate::say_err!("{e}");
            return EXIT_CONFIG;
        }
        Err(e) => {
            crate::say_err!("jumpgate up: {e}");
            return EXIT_CONFIG;
        }
    };
    for w in &resolved.warnings {
        if up.print_config {
            crate::say_err!("{w}");
        } else {
            warn!("{w}");
        }
    }
    if up.print_config {
        let mut text = ssh_config::print::print(&resolved);
        if up.effective {
            // Only the upstream is needed: -G needs no forward to print.
            match upstream_from(&resolved, &up.files, &local) {
                Ok(u) => text.push_str(&effective::render(&resolved, &u)),
                Err(e) => {
                    crate::say_err!("jumpgate up: {e}");
                    return EXIT_CONFIG;
                }
            }
        }
        print_stdout(&text);
        return EXIT_OK;
    }
    let config = match to_config(&resolved, &up, &local) {
        Ok(c) => c,
        Err(e) => {
            crate::say_err!("jumpgate up: {e}");
            return EXIT_CONFIG;
        }
    };
    Startup {
        who: "jumpgate up",
        first_login: true,
        grace: DEFAULT_GRACE,
        readiness: Some(Readiness {
            file: up.ready_file,
        }),
    }
    .run(config)
    .await
}

fn print_stdout(text: &str) {
    use std::io::Write as _;
    let _ = write!(std::io::stdout(), "{text}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ssh_config::spec::parse_forward;

    fn binds(spec: &str, gateway_ports: bool) -> Vec<String> {
        let f = parse_forward(spec, true, false).expect("forward");
        let (first, also) = bind_addrs(&f, gateway_ports).expect("binds");
        std::iter::once(first)
            .chain(also)
            .map(|a| a.to_string())
            .collect()
    }

    #[test]
    fn loopback_and_wildcard_bind_both_families_as_ssh() {
        let lo = ["127.0.0.1:1080", "[::1]:1080"];
        let any = ["0.0.0.0:1080", "[::]:1080"];
        assert_eq!(binds("1080", false), lo);
        assert_eq!(binds("localhost:1080", false), lo);
        assert_eq!(binds("1080", true), any);
        assert_eq!(binds("*:1080", false), any);
        assert_eq!(binds("127.0.0.1:1080", true), ["127.0.0.1:1080"]);
        assert_eq!(binds("[::1]:1080", false), ["[::1]:1080"]);
    }
}
