//! How to reach one upstream, built once per upstream and shared by every
//! session to it: the validated `Upstream`, the loaded identities, and the
//! russh `client::Config` derived from them (keepalive, rekey limits,
//! algorithm preferences). Reads `config`; asks `ssh::known_hosts` whether a
//! host CA is trusted and `ssh::algorithms` for the preference lists.

use std::sync::Arc;
use std::time::Duration;

use russh::client;
use tokio::sync::mpsc;

use super::forwarded_channel::ForwardedChannel;
use crate::config::{Endpoint, Upstream};
use crate::ssh::identity::Identity;
use crate::ssh::known_hosts;

/// Everything needed to open sessions to one upstream; built once.
pub struct SessionSettings {
    pub upstream: Upstream,
    pub identities: Vec<Identity>,
    pub ssh: Arc<client::Config>,
    /// Where `forwarded-tcpip` channels (remote forwards) go; None: the
    /// jump host's attempts to open them are refused. Set by `Pool::new`.
    pub forwarded: Option<mpsc::Sender<ForwardedChannel>>,
    /// The upstream's `jumpgate_relay_*` series, resolved once (and so
    /// created at 0) for all its sessions' buffers.
    pub relay: Arc<crate::tunnel_buffer::Meters>,
}

impl SessionSettings {
    pub fn new(upstream: Upstream, identities: Vec<Identity>) -> Self {
        let ssh = Arc::new(russh_config(&upstream));
        let relay = crate::tunnel_buffer::Meters::for_upstream(&upstream.name);
        SessionSettings {
            relay,
            upstream,
            identities,
            ssh,
            forwarded: None,
        }
    }

    /// How the host at `host_index` (into `upstream.hosts`) is shown in
    /// messages: `host:port`, plus the chain that reaches it.
    pub fn describe(&self, host_index: usize) -> String {
        let t = self
            .upstream
            .hosts
            .get(host_index)
            .map(|e| e.to_string())
            .unwrap_or_default();
        if self.upstream.proxy_command.is_some() {
            format!("{t} (via ProxyCommand)")
        } else if self.upstream.proxy_jump.is_empty() {
            t
        } else {
            let chain: Vec<String> = self
                .upstream
                .proxy_jump
                .iter()
                .map(|h| h.endpoint.to_string())
                .collect();
            format!("{t} (via {})", chain.join(" -> "))
        }
    }

    /// The hops to the host at `host_index`, outermost first, each with its
    /// login name.
    pub(super) fn hops(&self, host_index: usize) -> Vec<(String, Endpoint)> {
        let u = &self.upstream;
        let mut hops: Vec<(String, Endpoint)> = u
            .proxy_jump
            .iter()
            .map(|h| {
                (
                    h.user.clone().unwrap_or_else(|| u.user.clone()),
                    h.endpoint.clone(),
                )
            })
            .collect();
        if let Some(e) = u.hosts.get(host_index) {
            hops.push((u.user.clone(), e.clone()));
        }
        hops
    }
}

pub(super) fn known_hosts_files(u: &Upstream) -> known_hosts::Files<'_> {
    known_hosts::Files {
        primary: &u.known_hosts,
        extra: &u.global_known_hosts,
    }
}

/// The algorithms we offer to an upstream's jump hosts, in order (also what
/// `jumpgate up -G --effective` prints): our defaults (AES-GCM first, which
/// russh supports but does not list) or the upstream's lists.
pub fn offered(u: &Upstream) -> russh::Preferred {
    let mut p = crate::ssh::algorithms::preferred(&u.algorithms);
    // Without an explicit host_key_algorithms, ask for host certificates
    // (ahead of plain keys) only where known_hosts trusts a host CA, as ssh
    // does: elsewhere a certificate could only be checked as its plain key.
    let names: Vec<String> = u
        .hosts
        .iter()
        .chain(u.proxy_jump.iter().map(|h| &h.endpoint))
        .map(|e| known_hosts::host_entry_name(&e.host, e.port))
        .collect();
    if u.algorithms.host_key_algorithms.is_none()
        && known_hosts::has_cert_authority(known_hosts_files(u), &names)
    {
        p.host_key_certificates = p.key.clone();
    }
    p
}

/// Our russh client settings: where each differs from russh's default, the
/// comment says what it fixes.
fn russh_config(u: &Upstream) -> client::Config {
    let mut c = client::Config {
        preferred: offered(u),
        ..Default::default()
    };
    // russh's own rekey aborts a busy session (Error::Pending when more than
    // 2 x window arrives during it). Let the server drive rekeys: OpenSSH
    // rekeys by its cipher's limit (1 GiB for chacha, 64 GiB for AES-GCM),
    // and russh follows a server-initiated rekey without trouble.
    c.limits.rekey_read_limit = 1 << 36;
    c.limits.rekey_write_limit = 1 << 36;
    c.limits.rekey_time_limit = Duration::from_secs(365 * 24 * 3600);
    // OpenSSH semantics: dead after `count_max` unanswered probes, i.e.
    // interval x count_max of silence. russh fails when its count exceeds
    // keepalive_max (0 disables), so count_max = 1 uses two half intervals.
    let (interval, max) = match u.keepalive.count_max {
        0 | 1 => (u.keepalive.interval / 2, 1),
        n => (u.keepalive.interval, n as usize - 1),
    };
    c.keepalive_interval = Some(interval);
    c.keepalive_max = max;
    // russh leaves Nagle on; every SSH packet we send is a whole message.
    c.nodelay = true;
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// An upstream from a config text; known_hosts point into `dir` so
    /// that the user's own files play no part.
    fn upstream(dir: &Path, extra: &str) -> Upstream {
        let kh = dir.join("known_hosts").display().to_string();
        let toml = format!(
            "[[upstream]]\nname = \"u\"\nuser = \"ci\"\nknown_hosts = {kh:?}\n\
             global_known_hosts = []\n{extra}\n\
             [[listener]]\nname = \"l\"\nbind = \"127.0.0.1:0\"\n"
        );
        crate::config::Config::from_toml(&toml, Path::new("t.toml"))
            .expect("config")
            .upstreams
            .remove(0)
    }

    fn settings(extra: &str) -> SessionSettings {
        let dir = tempfile::tempdir().expect("tmp");
        SessionSettings::new(upstream(dir.path(), extra), Vec::new())
    }

    #[test]
    fn describe_shows_the_host_and_how_it_is_reached() {
        let s = settings("hosts = [\"a\", \"b:2222\"]");
        assert_eq!(s.describe(0), "a:22");
        assert_eq!(s.describe(1), "b:2222");
        assert_eq!(s.describe(7), "");
        let s = settings("host = \"a\"\nproxy_jump = [\"j1\", \"ops@j2:2200\"]");
        assert_eq!(s.describe(0), "a:22 (via j1:22 -> j2:2200)");
        let s = settings("host = \"a\"\nproxy_command = \"nc %h %p\"");
        assert_eq!(s.describe(0), "a:22 (via ProxyCommand)");
    }

    #[test]
    fn hops_go_outermost_first_with_their_own_login_names() {
        let s = settings("host = \"a\"\nproxy_jump = [\"j1\", \"ops@j2:2200\"]");
        let hops: Vec<(String, String)> = s
            .hops(0)
            .into_iter()
            .map(|(user, e)| (user, e.to_string()))
            .collect();
        let want = [("ci", "j1:22"), ("ops", "j2:2200"), ("ci", "a:22")]
            .map(|(u, e)| (u.to_owned(), e.to_owned()));
        assert_eq!(hops, want);
    }

    #[test]
    fn keepalive_counts_like_openssh() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut u = upstream(dir.path(), "host = \"a\"");
        u.keepalive.interval = Duration::from_secs(10);
        for (count_max, interval, max) in [(0, 5, 1), (1, 5, 1), (2, 10, 1), (3, 10, 2)] {
            u.keepalive.count_max = count_max;
            let c = russh_config(&u);
            assert_eq!(
                (c.keepalive_interval, c.keepalive_max),
                (Some(Duration::from_secs(interval)), max),
                "count_max = {count_max}"
            );
        }
    }

    #[test]
    fn the_server_drives_rekeys_and_nagle_is_off() {
        let s = settings("host = \"a\"");
        assert_eq!(s.ssh.limits.rekey_read_limit, 1 << 36);
        assert_eq!(s.ssh.limits.rekey_write_limit, 1 << 36);
        assert!(s.ssh.nodelay);
        // No host CA in known_hosts: no host certificates asked for.
        assert!(s.ssh.preferred.host_key_certificates.is_empty());
    }
}
