//! An upstream's `ssh_config = FILE` key: `host` is an alias resolved in
//! FILE as ssh would (through `crate::ssh_config` and
//! `config::from_ssh_config`), and the keys written in the TOML table win
//! over the file, as ssh's command line does. Part of `config::upstream`.

use toml::Spanned;

use super::from_ssh_config::upstream_from;
use super::model::{Algorithms, Upstream};
use super::raw::RawUpstream;
use super::text::expand_tilde;
use super::validate::Cx;
use super::ConfigError;
use crate::ssh_config as sc;

/// A key written in the table wins over the file (as ssh's command line).
fn pick<T>(in_table: bool, table: T, file: T) -> T {
    if in_table {
        table
    } else {
        file
    }
}

impl Cx<'_> {
    /// `ssh_config = FILE` with `host = "alias"`: the alias is resolved in
    /// FILE (HostName, Port, User, IdentityFile, ProxyJump with its hops
    /// resolved too, UserKnownHostsFile, StrictHostKeyChecking,
    /// ServerAlive*, ConnectTimeout, RemoteForward, algorithms); `toml` is
    /// the table already validated on its own.
    pub(super) fn with_ssh_config(
        &self,
        u: &RawUpstream,
        file: &Spanned<String>,
        toml: Upstream,
    ) -> Result<Upstream, ConfigError> {
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
        Ok(merge(u, toml, base))
    }
}

/// `toml` over `base`: every key written in the table `u` wins.
fn merge(u: &RawUpstream, toml: Upstream, base: Upstream) -> Upstream {
    let hop_in_table = !u.proxy_jump.is_empty() || u.proxy_command.is_some();
    let ids_in_table = !u.identity_files.is_empty();
    Upstream {
        name: toml.name,
        hosts: base.hosts,
        proxy_jump: pick(hop_in_table, toml.proxy_jump, base.proxy_jump),
        proxy_command: pick(hop_in_table, toml.proxy_command, base.proxy_command),
        user: base.user,
        identity_files: pick(ids_in_table, toml.identity_files, base.identity_files),
        missing_identities: pick(ids_in_table, Vec::new(), base.missing_identities),
        // The user edits TOML, whatever ssh_config supplied.
        interface: toml.interface,
        skip_encrypted_identities: pick(
            ids_in_table,
            toml.skip_encrypted_identities,
            base.skip_encrypted_identities,
        ),
        agent: u.agent.unwrap_or(base.agent),
        agent_socket: pick(
            u.agent_socket.is_some(),
            toml.agent_socket,
            base.agent_socket,
        ),
        known_hosts: pick(u.known_hosts.is_some(), toml.known_hosts, base.known_hosts),
        global_known_hosts: pick(
            u.global_known_hosts.is_some(),
            toml.global_known_hosts,
            base.global_known_hosts,
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
    }
}

#[cfg(test)]
mod tests {
    use super::super::model::*;
    use super::super::testing::parse;
    use std::time::Duration;

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
        // Identity files from the file are left to the agent when encrypted.
        assert!(u.skip_encrypted_identities);
        // Keys in the table win over the file.
        let c = parse(&format!(
            "{base}user = \"me\"\nport = 22\nhost_key_check = \"strict\"\n\
             identity_files = [\"/k/id\"]\n{listener}"
        ))
        .expect("valid");
        let u = &c.upstreams[0];
        assert_eq!((u.user.as_str(), u.hosts[0].port), ("me", 22));
        assert_eq!(u.host_key_check, HostKeyCheck::Strict);
        assert_eq!(u.identity_files, [std::path::PathBuf::from("/k/id")]);
        assert!(!u.skip_encrypted_identities);
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

    /// The "remote forwards need a session" check runs on the merged
    /// upstream, so a RemoteForward from the ssh_config file counts too.
    #[test]
    fn remote_forward_from_ssh_config_needs_a_session_too() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sc = dir.path().join("ssh_config");
        std::fs::write(
            &sc,
            "Host bastion\n  HostName 10.1.2.3\n  User ops\n  RemoteForward 8080 127.0.0.1:80\n",
        )
        .expect("write");
        let text = |sessions: &str| {
            format!(
                "[[upstream]]\nname = \"corp\"\nhost = \"bastion\"\nssh_config = \"{}\"\n{sessions}\n\
                 [[listener]]\nname = \"l\"\nbind = \"127.0.0.1:1080\"\n",
                sc.display()
            )
        };
        let c = parse(&text("")).expect("min 1 by default");
        assert_eq!(c.upstreams[0].remote_forwards.len(), 1);
        let e = parse(&text("sessions = { min = 0, max = 2 }"))
            .expect_err("a RemoteForward from ssh_config with sessions.min = 0")
            .to_string();
        assert!(
            e.contains(":5: upstream corp: remote_forwards need a session"),
            "{e}"
        );
    }
}
