//! Validation of the whole file: the validation context [`Cx`] (byte spans
//! to `path:line:` errors, and the checks every table shares: names, ports,
//! endpoints, durations), then the file's sections in order: upstreams
//! (`config::upstream`), listeners (`config::listener`), `[admin]`,
//! `[limits]` and `[relay]` (`config::relay`). Produces the typed `config::model`.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::Path;
use std::time::Duration;

use toml::Spanned;

use super::model::{Endpoint, LimitSettings};
use super::raw::{RawConfig, RawLimits};
use super::text::{parse_bind, parse_duration, parse_endpoint};
use super::{Config, ConfigError, DisplayPath};

/// Validation context: turns byte spans into `path:line:` errors.
pub(super) struct Cx<'a> {
    pub text: &'a str,
    pub path: &'a Path,
}

impl Cx<'_> {
    pub fn line_of(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1
    }

    /// 1-based column (in chars) of byte `offset` on its line.
    pub fn column_of(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        let before = self.text.get(..end).unwrap_or_default();
        let start = before.rfind('\n').map_or(0, |i| i + 1);
        self.text.get(start..end).map_or(0, |s| s.chars().count()) + 1
    }

    pub fn err_line(&self, line: usize, msg: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            path: DisplayPath(self.path.to_owned()),
            line,
            msg: msg.into(),
        }
    }

    pub fn err<T>(&self, at: &Spanned<T>, msg: impl Into<String>) -> ConfigError {
        self.err_line(self.line_of(at.span().start), msg)
    }

    /// A duration key (more than zero), or `default` when absent.
    pub fn duration(
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

    pub fn validate(&self, raw: RawConfig) -> Result<Config, ConfigError> {
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
        // What `run` would otherwise report as "Address already in use", as
        // if another process held the port: (who, address, line).
        let mut sockets: Vec<(String, SocketAddr, usize)> = raw
            .listener
            .iter()
            .zip(&listeners)
            .map(|(r, l)| {
                let line = self.line_of(r.get_ref().bind.span().start);
                (format!("listener {}", l.name), l.bind, line)
            })
            .collect();
        if let (Some(addr), Some(a)) = (admin, &raw.admin) {
            let line = a.bind.as_ref().map_or(0, |b| self.line_of(b.span().start));
            sockets.push(("[admin]".into(), addr, line));
        }
        for (i, (who, addr, line)) in sockets.iter().enumerate() {
            if let Some((other, at, other_line)) =
                sockets[..i].iter().find(|(_, b, _)| overlaps(*addr, *b))
            {
                let me = match who.strip_prefix("listener ") {
                    Some(name) => format!("listener {name}:"),
                    None => who.clone(),
                };
                return Err(self.err_line(
                    *line,
                    format!(
                        "{me} bind = \"{addr}\" overlaps {other} (bind = \"{at}\", line \
                         {other_line}): give each its own port"
                    ),
                ));
            }
        }
        let limits = match &raw.limits {
            None => LimitSettings::default(),
            Some(l) => self.limits(l)?,
        };
        let relay = match &raw.relay {
            None => Default::default(),
            Some(r) => self.relay(r.get_ref())?,
        };
        Ok(Config {
            upstreams,
            listeners,
            admin,
            limits,
            relay,
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
            Some(v) => NonZeroU32::new(positive("connections_per_second_per_client", v)?),
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

    /// An upstream's or listener's name: it becomes a metric label.
    pub fn name(&self, what: &str, n: &Spanned<String>) -> Result<String, ConfigError> {
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

    pub fn port(&self, key: &str, p: &Spanned<i64>) -> Result<u16, ConfigError> {
        u16::try_from(*p.get_ref())
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| self.err(p, format!("{key} = {}: not in 1-65535", p.get_ref())))
    }

    /// `host`, `host:port`, `[v6]:port` or a bare IPv6 address.
    pub fn endpoint<T>(
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
}

/// Whether binding `a` and then `b` fails with "Address already in use":
/// one port (not 0, which the system picks) and the same address, or a
/// wildcard over the other (`0.0.0.0` covers IPv4; `[::]` both, as it is
/// dual-stack unless told otherwise).
fn overlaps(a: SocketAddr, b: SocketAddr) -> bool {
    if a.port() == 0 || a.port() != b.port() {
        return false;
    }
    let covers =
        |w: SocketAddr, o: SocketAddr| w.ip().is_unspecified() && (w.is_ipv6() || o.is_ipv4());
    a.ip() == b.ip() || covers(a, b) || covers(b, a)
}

#[cfg(test)]
mod tests {
    use super::super::model::*;
    use super::super::testing::{parse, GOOD};
    use std::time::Duration;

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
        // path:line:column, then toml's message with the line quoted.
        assert!(e.starts_with("/etc/jumpgate.toml:12:7: "), "{e}");
        assert!(e.contains("12 | via = corp\""), "{e}");
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
    fn two_sockets_on_one_address_are_a_config_error_naming_both() {
        let two = format!(
            "{GOOD}\n[[listener]]\nname = \"second\"\nbind = \"0.0.0.0:1080\"\nvia = \"corp\"\n"
        );
        let e = parse(&two).expect_err("same port").to_string();
        assert_eq!(
            e,
            "/etc/jumpgate.toml:17: listener second: bind = \"0.0.0.0:1080\" overlaps \
             listener browser (bind = \"127.0.0.1:1080\", line 11): give each its own port"
        );
        let admin = format!("{GOOD}\n[admin]\nbind = \"127.0.0.1:1080\"\n");
        let e = parse(&admin)
            .expect_err("admin on the listener's port")
            .to_string();
        assert!(
            e.starts_with("/etc/jumpgate.toml:16: [admin] bind = \"127.0.0.1:1080\" overlaps listener browser"),
            "{e}"
        );
        // Other ports, other loopbacks, or port 0 are fine.
        let fine = format!(
            "{GOOD}\n[[listener]]\nname = \"v6\"\nbind = \"127.0.0.2:1080\"\nvia = \"corp\"\n\
             [[listener]]\nname = \"any\"\nbind = \"127.0.0.1:0\"\nvia = \"corp\"\n\
             [admin]\nbind = \"127.0.0.1:0\"\n"
        );
        parse(&fine).expect("distinct addresses");
    }
}
