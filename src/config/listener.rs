//! One `[[listener]]` table: its kind (`socks5`, or `forward` with its
//! fixed destination), bind address, the upstream it goes `via`, and its
//! timeouts. Part of `config::validate`, which hands it the upstreams
//! validated before it.

use super::model::{Listener, ListenerKind, Upstream, DEFAULT_TIMEOUT};
use super::raw::RawListener;
use super::text::{parse_bind, parse_endpoint};
use super::validate::Cx;
use super::ConfigError;

impl Cx<'_> {
    pub(super) fn listener(
        &self,
        l: &RawListener,
        ups: &[Upstream],
    ) -> Result<Listener, ConfigError> {
        let name = self.name("listener", &l.name)?;
        let kind = self.listener_kind(&name, l)?;
        let bind = parse_bind(l.bind.get_ref()).ok_or_else(|| {
            self.err(
                &l.bind,
                format!(
                    "listener {name}: bind = {:?}: expected IP:PORT such as \"127.0.0.1:1080\" or \"[::1]:1080\"",
                    l.bind.get_ref()
                ),
            )
        })?;
        let via = self.via(&name, l, ups)?;
        Ok(Listener {
            name,
            kind,
            bind,
            also_bind: Vec::new(),
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

    /// `kind` (socks5 when absent) and, for `forward`, its `to`.
    fn listener_kind(&self, name: &str, l: &RawListener) -> Result<ListenerKind, ConfigError> {
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
        Ok(kind)
    }

    /// The index of the upstream `via` names; optional with one upstream.
    fn via(&self, name: &str, l: &RawListener, ups: &[Upstream]) -> Result<usize, ConfigError> {
        match &l.via {
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
                }),
            None if ups.len() == 1 => Ok(0),
            None => Err(self.err(
                &l.name,
                format!("listener {name}: several upstreams exist, say which with via = \"NAME\""),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::model::*;
    use super::super::testing::{parse, GOOD};

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
    fn bad_duration_has_line() {
        let e = parse(&GOOD.replace("\"3s\"", "\"15 parsecs\""))
            .expect_err("dur")
            .to_string();
        assert!(
            e.contains(":13: handshake_timeout = \"15 parsecs\": not a duration"),
            "{e}"
        );
    }

    #[test]
    fn bad_kind_is_explained() {
        let e = parse(&GOOD.replace(
            "name = \"browser\"",
            "name = \"browser\"\nkind = \"socks4\"",
        ))
        .expect_err("kind")
        .to_string();
        assert!(e.contains("kind = \"socks4\""), "{e}");
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
}
