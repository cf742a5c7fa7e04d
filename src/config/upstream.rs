//! One `[[upstream]]` table, in named steps: where (`host`/`hosts`, `port`,
//! `proxy_jump`/`proxy_command`), who (`user`, keys, passphrase, agent),
//! host keys, the session pool's timing and sizes, remote forwards and
//! algorithms. With `ssh_config =` the table is then merged over the
//! ssh_config host (`config::merge`), and what needs the merged result is
//! checked last. Part of `config::validate`.

use std::path::PathBuf;

use toml::Spanned;

use super::algorithms::{resolve, Kind};
use super::home::local_user;
use super::model::{
    Algorithms, Backoff, Endpoint, Hop, HostKeyCheck, Keepalive, PassphraseSource, RemoteForward,
    SessionLimits, Upstream, DEFAULT_BACKOFF, DEFAULT_KEEPALIVE, DEFAULT_MAX_CHANNELS,
    DEFAULT_SESSIONS, DEFAULT_TIMEOUT,
};
use super::raw::{RawRemoteForward, RawUpstream};
use super::text::{expand_tilde, parse_endpoint, parse_remote_bind};
use super::validate::Cx;
use super::{ConfigError, DEFAULT_GLOBAL_KNOWN_HOSTS};

/// `~`-expanded paths of a list key.
fn paths(list: &[Spanned<String>]) -> Vec<PathBuf> {
    list.iter().map(|p| expand_tilde(p.get_ref())).collect()
}

impl Cx<'_> {
    pub(super) fn upstream(&self, u: &RawUpstream) -> Result<Upstream, ConfigError> {
        let name = self.name("upstream", &u.name)?;
        let hosts = self.hosts(&name, u)?;
        let (proxy_jump, proxy_command) = self.hops(&name, u)?;
        let user = self.user(&name, u)?;
        let identity_files = paths(&u.identity_files);
        let passphrase = self.passphrase(u)?;
        let known_hosts = u
            .known_hosts
            .as_ref()
            .map(|p| expand_tilde(p.get_ref()))
            .unwrap_or_else(|| expand_tilde("~/.ssh/known_hosts"));
        let host_key_check = self.host_key_check(u)?;
        let keepalive = self.keepalive(u)?;
        let reconnect = self.reconnect(u)?;
        let connect_timeout = self.duration(
            "connect_timeout",
            u.connect_timeout.as_ref(),
            DEFAULT_TIMEOUT,
        )?;
        let sessions = self.sessions(u)?;
        let max_channels_per_session = self.max_channels(u)?;
        if let Some(v) = &u.stall_timeout {
            // Kept so that existing configs load; it has no effect since a
            // tunnel is no longer ended for a slow reader.
            self.duration("stall_timeout", Some(v), std::time::Duration::ZERO)?;
            tracing::warn!(
                "{}:{}: upstream {name:?}: stall_timeout is deprecated and ignored: a slow or \
                 paused reader is no longer cut; its buffer is bounded by [relay] \
                 memory_per_tunnel, spill_per_tunnel and spill_total",
                self.path.display(),
                self.line_of(v.span().start)
            );
        }
        let remote_forwards = self.remote_forwards(&name, &u.remote_forwards)?;
        let algorithms = self.algorithms(u)?;
        let table = Upstream {
            name,
            hosts,
            proxy_jump,
            proxy_command,
            user,
            identity_files,
            skip_encrypted_identities: false,
            missing_identities: Vec::new(),
            interface: super::model::Interface::Toml,
            passphrase,
            agent: u.agent.unwrap_or(true),
            agent_socket: u.agent_socket.as_ref().map(|p| expand_tilde(p.get_ref())),
            known_hosts,
            global_known_hosts: match &u.global_known_hosts {
                Some(files) => paths(files),
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
            remote_forwards,
            exit_on_forward_failure: u.exit_on_forward_failure.unwrap_or(false),
            algorithms,
            certificate_files: paths(&u.certificate_files),
        };
        let up = match &u.ssh_config {
            None => table,
            Some(file) => self.with_ssh_config(u, file, table)?,
        };
        self.forwards_have_a_session(u, &up)?;
        Ok(up)
    }

    /// `host` or `hosts = [...]`, each with `port` unless it names its own.
    fn hosts(&self, name: &str, u: &RawUpstream) -> Result<Vec<Endpoint>, ConfigError> {
        let port = match &u.port {
            None => 22,
            Some(p) => self.port("port", p)?,
        };
        match (&u.host, &u.hosts) {
            (Some(h), None) => Ok(vec![self.endpoint("host", h.get_ref(), port, h)?]),
            (None, Some(list)) if !list.get_ref().is_empty() => list
                .get_ref()
                .iter()
                .map(|h| self.endpoint("hosts", h, port, list))
                .collect(),
            (None, Some(list)) => Err(self.err(list, "hosts = []: list at least one jump host")),
            (Some(h), Some(_)) => Err(self.err(h, "set host or hosts, not both")),
            (None, None) => Err(self.err(
                &u.name,
                format!("upstream {name}: missing host (or hosts = [...])"),
            )),
        }
    }

    /// How the jump host is reached: `proxy_jump` hops or `proxy_command`.
    fn hops(&self, name: &str, u: &RawUpstream) -> Result<(Vec<Hop>, Option<String>), ConfigError> {
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
        Ok((proxy_jump, proxy_command))
    }

    /// One `proxy_jump` entry: `[user@]host[:port]`.
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

    /// `user`, else the local user name, as ssh.
    fn user(&self, name: &str, u: &RawUpstream) -> Result<String, ConfigError> {
        match &u.user {
            Some(user) => Ok(user.clone()),
            None => local_user().ok_or_else(|| {
                self.err(
                    &u.name,
                    format!("upstream {name}: no user given and the local user name is unknown"),
                )
            }),
        }
    }

    fn passphrase(&self, u: &RawUpstream) -> Result<Option<PassphraseSource>, ConfigError> {
        match (&u.passphrase_env, &u.passphrase_file) {
            (Some(_), Some(f)) => {
                Err(self.err(f, "set passphrase_env or passphrase_file, not both"))
            }
            (Some(v), None) => Ok(Some(PassphraseSource::Env(v.clone()))),
            (None, Some(f)) => Ok(Some(PassphraseSource::File(expand_tilde(f.get_ref())))),
            (None, None) => Ok(None),
        }
    }

    fn host_key_check(&self, u: &RawUpstream) -> Result<HostKeyCheck, ConfigError> {
        let Some(v) = &u.host_key_check else {
            return Ok(HostKeyCheck::Strict);
        };
        match v.get_ref().as_str() {
            "strict" | "yes" => Ok(HostKeyCheck::Strict),
            "accept-new" => Ok(HostKeyCheck::AcceptNew),
            "off" | "no" => Ok(HostKeyCheck::Off),
            other => Err(self.err(
                v,
                format!("host_key_check = {other:?}: use strict, accept-new or off"),
            )),
        }
    }

    fn keepalive(&self, u: &RawUpstream) -> Result<Keepalive, ConfigError> {
        let Some(k) = &u.keepalive else {
            return Ok(DEFAULT_KEEPALIVE);
        };
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
        Ok(Keepalive {
            interval: self.duration(
                "keepalive.interval",
                k.interval.as_ref(),
                DEFAULT_KEEPALIVE.interval,
            )?,
            count_max,
        })
    }

    fn reconnect(&self, u: &RawUpstream) -> Result<Backoff, ConfigError> {
        let Some(r) = &u.reconnect else {
            return Ok(DEFAULT_BACKOFF);
        };
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
        Ok(b)
    }

    fn sessions(&self, u: &RawUpstream) -> Result<SessionLimits, ConfigError> {
        let Some(sp) = &u.sessions else {
            return Ok(DEFAULT_SESSIONS);
        };
        let r = sp.get_ref();
        let count = |key: &str, v: &Option<Spanned<i64>>, d: usize, lo: i64| match v {
            None => Ok(d),
            Some(v) if (lo..=64).contains(v.get_ref()) => Ok(*v.get_ref() as usize),
            Some(v) => Err(self.err(v, format!("sessions.{key} = {}: use {lo}-64", v.get_ref()))),
        };
        let min = count("min", &r.min, DEFAULT_SESSIONS.min, 0)?;
        let max = count("max", &r.max, DEFAULT_SESSIONS.max.max(min), 1)?;
        if min > max {
            return Err(self.err(
                sp,
                format!("sessions: min = {min} is more than max = {max}"),
            ));
        }
        Ok(SessionLimits {
            min,
            max,
            idle_timeout: self.duration(
                "sessions.idle_timeout",
                r.idle_timeout.as_ref(),
                DEFAULT_SESSIONS.idle_timeout,
            )?,
        })
    }

    fn max_channels(&self, u: &RawUpstream) -> Result<usize, ConfigError> {
        match &u.max_channels_per_session {
            None => Ok(DEFAULT_MAX_CHANNELS),
            // OpenSSH's hard cap is 16384 channels per connection.
            Some(v) if (1..=16384).contains(v.get_ref()) => Ok(*v.get_ref() as usize),
            Some(v) => Err(self.err(
                v,
                format!("max_channels_per_session = {}: use 1-16384", v.get_ref()),
            )),
        }
    }

    /// The four algorithm lists, each checked where it is written.
    fn algorithms(&self, u: &RawUpstream) -> Result<Algorithms, ConfigError> {
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

    /// Remote forwards are held by one session of the pool, so the pool must
    /// keep one open. Checked on the merged upstream: the forwards may come
    /// from the table or from ssh_config's RemoteForward.
    fn forwards_have_a_session(&self, u: &RawUpstream, up: &Upstream) -> Result<(), ConfigError> {
        if up.remote_forwards.is_empty() || up.sessions.min > 0 {
            return Ok(());
        }
        let name = &up.name;
        let fix = "set sessions.min to 1 or more";
        Err(
            match (u.remote_forwards.first(), &u.ssh_config, &u.sessions) {
                (Some(first), _, _) => self.err(
                    first,
                    format!(
                        "upstream {name}: remote_forwards need a session that stays open: {fix}"
                    ),
                ),
                (None, Some(file), Some(sessions)) => self.err(
                    sessions,
                    format!(
                        "upstream {name}: remote_forwards need a session that stays open (the \
                     RemoteForward of ssh_config = {:?}): {fix}",
                        file.get_ref()
                    ),
                ),
                // sessions.min is 0 only when `sessions` is written, and
                // forwards come only from the table or ssh_config.
                _ => self.err(
                    &u.name,
                    format!(
                        "upstream {name}: remote_forwards need a session that stays open: {fix}"
                    ),
                ),
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::model::*;
    use super::super::testing::{parse, GOOD};

    #[test]
    fn bad_port_has_line() {
        let e = parse(&GOOD.replace("user = \"ci\"", "user = \"ci\"\nport = 70000"))
            .expect_err("port")
            .to_string();
        assert!(e.contains(":6: port = 70000"), "{e}");
    }

    #[test]
    fn bad_host_key_check_is_explained() {
        let e = parse(&GOOD.replace("user = \"ci\"", "user = \"ci\"\nhost_key_check = \"maybe\""))
            .expect_err("hkc")
            .to_string();
        assert!(e.contains("use strict, accept-new or off"), "{e}");
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
        // stall_timeout is deprecated: accepted (old configs load), ignored,
        // and still checked as a duration.
        let old = GOOD.replace("user = \"ci\"", "user = \"ci\"\nstall_timeout = \"soon\"");
        assert!(parse(&old)
            .expect_err("bad duration")
            .to_string()
            .contains("stall_timeout"));
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
    }

    #[test]
    fn global_known_hosts_key_sets_the_read_only_files() {
        let u = &parse(GOOD).expect("valid").upstreams[0];
        let defaults: Vec<std::path::PathBuf> = super::DEFAULT_GLOBAL_KNOWN_HOSTS
            .iter()
            .map(Into::into)
            .collect();
        assert_eq!(u.global_known_hosts, defaults);
        let text = GOOD.replace(
            "user = \"ci\"",
            "user = \"ci\"\nglobal_known_hosts = [\"/etc/ssh/corp_known_hosts\"]",
        );
        let u = &parse(&text).expect("valid").upstreams[0];
        assert_eq!(
            u.global_known_hosts,
            [std::path::PathBuf::from("/etc/ssh/corp_known_hosts")]
        );
        assert!(!u.skip_encrypted_identities);
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
}
