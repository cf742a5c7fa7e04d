//! The small grammars inside ssh_config values and ssh's flags, parsed as
//! OpenSSH parses them: ports (numbers or /etc/services names), forwarding
//! specifications (`[bind:]port[:host:hostport]`, brackets for IPv6),
//! `[user@]host[:port]` and `ssh://user@host:port` destinations, and
//! ProxyJump hops (the lists themselves are in `jump`).

use std::fmt;

/// OpenSSH's a2port: 0-65535, or a TCP service name; None when neither.
pub fn a2port(s: &str) -> Option<u16> {
    // strtonum: an optional sign, decimal digits, 0-65535.
    if let Ok(n) = s.parse::<i64>() {
        return u16::try_from(n).ok();
    }
    service_port(s)
}

fn service_port(name: &str) -> Option<u16> {
    let text = std::fs::read_to_string("/etc/services").ok()?;
    text.lines().find_map(|l| {
        let l = l.split('#').next().unwrap_or("");
        let mut f = l.split_whitespace();
        let first = f.next()?;
        let (port, proto) = f.next()?.split_once('/')?;
        let names = std::iter::once(first).chain(f);
        (proto == "tcp" && names.into_iter().any(|n| n == name))
            .then(|| port.parse().ok())
            .flatten()
    })
}

/// One forwarding: listen side and connect side, as OpenSSH's `struct
/// Forward`. Dynamic (SOCKS) forwards have `connect_host == "socks"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    pub listen_host: Option<String>,
    pub listen_port: u16,
    pub listen_path: Option<String>,
    pub connect_host: Option<String>,
    pub connect_port: u16,
    pub connect_path: Option<String>,
}

impl Forward {
    pub fn is_dynamic(&self) -> bool {
        self.connect_host.as_deref() == Some("socks")
    }

    /// The listen side as `ssh -G` prints it.
    pub fn listen_display(&self) -> String {
        match (&self.listen_path, &self.listen_host) {
            (Some(p), _) => p.clone(),
            (None, None) => self.listen_port.to_string(),
            (None, Some(h)) => format!("[{h}]:{}", self.listen_port),
        }
    }

    /// The connect side as `ssh -G` prints it.
    pub fn connect_display(&self) -> String {
        match (&self.connect_path, &self.connect_host) {
            (Some(p), _) => p.clone(),
            (None, None) => self.connect_port.to_string(),
            (None, Some(h)) => format!("[{h}]:{}", self.connect_port),
        }
    }
}

impl fmt::Display for Forward {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_dynamic() {
            f.write_str(&self.listen_display())
        } else {
            write!(f, "{} {}", self.listen_display(), self.connect_display())
        }
    }
}

struct Field {
    arg: String,
    is_path: bool,
}

/// One `:`-separated field; `[...]` is taken literally; `\` escapes.
fn next_field(s: &mut Option<&str>) -> Option<Field> {
    let cur = (*s)?;
    if cur.is_empty() {
        *s = None;
        return None;
    }
    if let Some(inner) = cur.strip_prefix('[') {
        let end = inner.find(']')?;
        let after = &inner[end + 1..];
        if !(after.is_empty() || after.starts_with(':')) {
            return None;
        }
        *s = Some(after.strip_prefix(':').unwrap_or(after));
        let arg = inner[..end].to_owned();
        return Some(Field {
            is_path: arg.contains('/'),
            arg,
        });
    }
    let mut arg = String::new();
    let mut is_path = false;
    let mut chars = cur.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, n)) => arg.push(n),
                None => return None,
            },
            ':' => {
                *s = Some(&cur[i + 1..]);
                return Some(Field { arg, is_path });
            }
            '/' => {
                is_path = true;
                arg.push(c);
            }
            _ => arg.push(c),
        }
    }
    *s = Some("");
    Some(Field { arg, is_path })
}

/// OpenSSH's parse_forward: `dynamic` for -D/DynamicForward, `remote` for
/// -R/RemoteForward (which allows listen port 0). None when invalid.
pub fn parse_forward(spec: &str, dynamic: bool, remote: bool) -> Option<Forward> {
    let expanded = super::tokens::env_vars(spec).ok()?;
    let mut rest = Some(expanded.trim_start());
    let mut fields = Vec::new();
    while fields.len() < 4 {
        match next_field(&mut rest) {
            Some(f) => fields.push(f),
            None => break,
        }
    }
    if matches!(rest, Some(r) if !r.is_empty()) {
        return None;
    }
    let port = |s: &str| a2port(s);
    let mut fwd = Forward {
        listen_host: None,
        listen_port: 0,
        listen_path: None,
        connect_host: None,
        connect_port: 0,
        connect_path: None,
    };
    let mut listen_ok = true;
    let mut connect_ok = true;
    let mut set_listen_port = |f: &mut Forward, s: &str| match port(s) {
        Some(p) => f.listen_port = p,
        None => listen_ok = false,
    };
    match fields.as_slice() {
        [a] => {
            if a.is_path {
                fwd.listen_path = Some(a.arg.clone());
            } else {
                set_listen_port(&mut fwd, &a.arg);
            }
            fwd.connect_host = Some("socks".into());
        }
        [a, b] => {
            if a.is_path && b.is_path {
                fwd.listen_path = Some(a.arg.clone());
                fwd.connect_path = Some(b.arg.clone());
            } else if b.is_path {
                set_listen_port(&mut fwd, &a.arg);
                fwd.connect_path = Some(b.arg.clone());
            } else {
                fwd.listen_host = Some(a.arg.clone());
                set_listen_port(&mut fwd, &b.arg);
                fwd.connect_host = Some("socks".into());
            }
        }
        [a, b, c] => {
            if a.is_path {
                fwd.listen_path = Some(a.arg.clone());
                fwd.connect_host = Some(b.arg.clone());
                match port(&c.arg) {
                    Some(p) => fwd.connect_port = p,
                    None => connect_ok = false,
                }
            } else if c.is_path {
                fwd.listen_host = Some(a.arg.clone());
                set_listen_port(&mut fwd, &b.arg);
                fwd.connect_path = Some(c.arg.clone());
            } else {
                set_listen_port(&mut fwd, &a.arg);
                fwd.connect_host = Some(b.arg.clone());
                match port(&c.arg) {
                    Some(p) => fwd.connect_port = p,
                    None => connect_ok = false,
                }
            }
        }
        [a, b, c, d] => {
            fwd.listen_host = Some(a.arg.clone());
            set_listen_port(&mut fwd, &b.arg);
            fwd.connect_host = Some(c.arg.clone());
            match port(&d.arg) {
                Some(p) => fwd.connect_port = p,
                None => connect_ok = false,
            }
        }
        _ => return None,
    }
    let n = fields.len();
    if dynamic {
        if !(n == 1 || n == 2) {
            return None;
        }
    } else {
        if !(n == 3 || n == 4) && fwd.connect_path.is_none() && fwd.listen_path.is_none() {
            return None;
        }
        if (!connect_ok || fwd.connect_port == 0) && fwd.connect_path.is_none() {
            return None;
        }
    }
    if (!listen_ok && fwd.listen_path.is_none())
        || (!remote && fwd.listen_port == 0 && fwd.listen_path.is_none())
    {
        return None;
    }
    Some(fwd)
}

/// A jump host or destination: `[user@]host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserHostPort {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
}

/// OpenSSH's hpdelim: the host (brackets kept) and what follows a `:` or `/`.
fn hpdelim(s: &str) -> Option<(&str, Option<(char, &str)>)> {
    let end = if s.starts_with('[') {
        s.find(']')? + 1
    } else {
        s.find([':', '/']).unwrap_or(s.len())
    };
    let host = &s[..end];
    match s[end..].chars().next() {
        None => Some((host, None)),
        Some(c @ (':' | '/')) => Some((host, Some((c, &s[end + 1..])))),
        Some(_) => None,
    }
}

fn clean_host(h: &str) -> &str {
    h.strip_prefix('[')
        .and_then(|x| x.strip_suffix(']'))
        .unwrap_or(h)
}

/// `[user@]host[:port]` (the last `@` splits off the user); None if invalid.
pub fn parse_user_host_port(s: &str) -> Option<UserHostPort> {
    let (user, rest) = match s.rfind('@') {
        Some(0) => return None,
        Some(i) => (Some(s[..i].to_owned()), &s[i + 1..]),
        None => (None, s),
    };
    let (host, after) = hpdelim(rest)?;
    if host.is_empty() {
        return None;
    }
    let port = match after {
        Some((_, p)) if !p.is_empty() => Some(a2port(p).filter(|p| *p > 0)?),
        _ => None,
    };
    Some(UserHostPort {
        user,
        host: clean_host(host).to_owned(),
        port,
    })
}

/// `ssh://[user[;params]@]host[:port]`: Ok(None) when `s` is not an ssh URI,
/// Err(()) when it is one but invalid (or has a path).
#[allow(clippy::result_unit_err)]
pub fn parse_ssh_uri(s: &str) -> Result<Option<UserHostPort>, ()> {
    let Some(rest) = s.strip_prefix("ssh://") else {
        return Ok(None);
    };
    let (user, rest) = match rest.find('@') {
        Some(i) => {
            let u = rest[..i].split(';').next().unwrap_or("");
            if u.is_empty() {
                return Err(());
            }
            (Some(urldecode(u).ok_or(())?), &rest[i + 1..])
        }
        None => (None, rest),
    };
    let (host, after) = hpdelim(rest).ok_or(())?;
    let host = clean_host(host);
    if host.is_empty() || !valid_domain(host) {
        return Err(());
    }
    let mut port = None;
    let mut path: Option<&str> = None;
    if let Some((delim, tail)) = after {
        if !tail.is_empty() {
            if delim == ':' {
                let (p, more) = match tail.find('/') {
                    Some(i) => (&tail[..i], Some(&tail[i + 1..])),
                    None => (tail, None),
                };
                port = Some(a2port(p).filter(|p| *p > 0).ok_or(())?);
                path = more;
            } else {
                path = Some(tail);
            }
        }
    }
    if path.is_some_and(|p| !p.is_empty()) {
        return Err(());
    }
    Ok(Some(UserHostPort {
        user,
        host: host.to_owned(),
        port,
    }))
}

fn valid_domain(h: &str) -> bool {
    !h.starts_with(['-', '.'])
        && h.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
}

fn urldecode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// One jump hop: an ssh URI or `[user@]host[:port]`.
pub fn parse_hop(s: &str) -> Option<UserHostPort> {
    match parse_ssh_uri(s) {
        Ok(Some(h)) => Some(h),
        Ok(None) => parse_user_host_port(s),
        Err(()) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(spec: &str, dynamic: bool, remote: bool) -> Option<String> {
        parse_forward(spec, dynamic, remote).map(|f| f.to_string())
    }

    #[test]
    fn dynamic_forwards_as_ssh_prints_them() {
        assert_eq!(shown("1080", true, false).as_deref(), Some("1080"));
        assert_eq!(shown("*:1080", true, false).as_deref(), Some("[*]:1080"));
        assert_eq!(shown(":1080", true, false).as_deref(), Some("[]:1080"));
        assert_eq!(
            shown("[::1]:1080", true, false).as_deref(),
            Some("[::1]:1080")
        );
        assert_eq!(shown("1080:", true, false).as_deref(), Some("1080"));
        for bad in ["::1/1080", "abc", "70000", "0", "a:b:1080"] {
            assert_eq!(shown(bad, true, false), None, "{bad}");
        }
    }

    #[test]
    fn local_and_remote_forwards() {
        assert_eq!(
            shown("8080:localhost:80", false, false).as_deref(),
            Some("8080 [localhost]:80")
        );
        assert_eq!(
            shown("[::1]:10:[fe80::1]:22", false, false).as_deref(),
            Some("[::1]:10 [fe80::1]:22")
        );
        assert_eq!(
            shown("x:11:h\\:x:23", false, false).as_deref(),
            Some("[x]:11 [h:x]:23")
        );
        assert_eq!(shown("0:x:1", false, true).as_deref(), Some("0 [x]:1"));
        assert_eq!(shown("0:x:1", false, false), None);
        assert_eq!(shown("8080:h", false, false), None);
        assert_eq!(shown("8080:h:0", false, false), None);
        assert_eq!(
            shown("12:h:ssh", false, false).as_deref(),
            Some("12 [h]:22")
        );
    }

    #[test]
    fn destinations() {
        let h = parse_user_host_port("a@b@host:2200").expect("parses");
        assert_eq!(h.user.as_deref(), Some("a@b"));
        assert_eq!((h.host.as_str(), h.port), ("host", Some(2200)));
        let v6 = parse_user_host_port("[::1]:22").expect("v6");
        assert_eq!(v6.host, "::1");
        assert_eq!(parse_user_host_port("@host"), None);
        assert_eq!(parse_user_host_port("host:0"), None);
        let u = parse_ssh_uri("ssh://bob;x=y@host:2222")
            .expect("ok")
            .expect("uri");
        assert_eq!(
            (u.user.as_deref(), u.host.as_str(), u.port),
            (Some("bob"), "host", Some(2222))
        );
        assert_eq!(parse_ssh_uri("host"), Ok(None));
        assert_eq!(parse_ssh_uri("ssh://host/path"), Err(()));
    }

    #[test]
    fn ports() {
        assert_eq!(a2port("22"), Some(22));
        assert_eq!(a2port("65536"), None);
        assert_eq!(a2port("x y"), None);
        if std::path::Path::new("/etc/services").exists() {
            assert_eq!(a2port("ssh"), Some(22));
        }
    }
}
