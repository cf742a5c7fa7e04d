//! `jumpgate up`'s command line, parsed the way ssh parses its own (BSD
//! getopt: clustered flags `-ND1080`, values attached or separate,
//! options after the destination, first value wins) into ssh_config
//! [`Options`], so that `-o`, `-p`, `-l`, `-i`, `-D`, `-L`, `-R` and `-J`
//! combine with the files exactly as in ssh.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::ssh_config::spec::{parse_forward, parse_ssh_uri};
use crate::ssh_config::Jump;
use crate::ssh_config::{apply_option, AddressFamily, ConfigFiles, Local, Options};

pub const USAGE: &str =
    "usage: jumpgate up [-46CGgNnqTv] [-D [bind_address:]port] [-F configfile] \
[-i identity_file] [-J destination] [-L address] [-l login_name] [-o option] [-p port] \
[-R address] [--ready-file PATH] [--admin ADDR] [-G --effective] destination";

/// A bad command line: the message, shown with the usage line (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

#[derive(Debug, Clone)]
pub struct UpArgs {
    pub verbose: u8,
    /// `-G`: print the resolved configuration and exit.
    pub print_config: bool,
    /// `--effective` (with `-G`): also print the algorithm lists jumpgate
    /// really offers (`up::effective`).
    pub effective: bool,
    pub help: bool,
    pub ready_file: Option<PathBuf>,
    pub admin: Option<SocketAddr>,
    pub files: ConfigFiles,
    /// The destination host (user and port taken into `cmdline`).
    pub host: String,
    pub cmdline: Options,
    /// Messages ssh would print while parsing (e.g. a missing `-i` file).
    pub warnings: Vec<String>,
}

/// Flags that take a value (ssh's getopt string, the ones we honour or
/// refuse by name).
const WITH_VALUE: &str = "DLRJplioFbcmeESWIOPQBw";
const NO_VALUE: &str = "46CGgNnqTvfhAaXxYyKkMsVt12";

pub fn parse(args: &[String], local: &Local) -> Result<UpArgs, UsageError> {
    let mut up = UpArgs {
        verbose: 0,
        print_config: false,
        effective: false,
        help: false,
        ready_file: None,
        admin: None,
        files: ConfigFiles::Default,
        host: String::new(),
        cmdline: Options::default(),
        warnings: Vec::new(),
    };
    let mut destination: Option<String> = None;
    let mut i = 0;
    let mut only_positional = false;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        if only_positional || !a.starts_with('-') || a == "-" {
            if destination.is_some() {
                return Err(UsageError(format!(
                    "unexpected argument {a:?}: jumpgate up runs no remote command (it is ssh -N)"
                )));
            }
            // As ssh: the destination's user and port count from where it
            // stands among the flags (first value wins).
            set_destination(a, &mut up)?;
            destination = Some(a.clone());
            continue;
        }
        if a == "--" {
            only_positional = true;
            continue;
        }
        if let Some(long) = a.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_owned())),
                None => (long, None),
            };
            let mut value = |what: &str| -> Result<String, UsageError> {
                if let Some(v) = inline.clone() {
                    return Ok(v);
                }
                let v = args
                    .get(i)
                    .cloned()
                    .ok_or_else(|| UsageError(format!("--{what} needs a value")))?;
                i += 1;
                Ok(v)
            };
            match name {
                "help" => up.help = true,
                "effective" => up.effective = true,
                "ready-file" => up.ready_file = Some(PathBuf::from(value("ready-file")?)),
                "admin" => {
                    let v = value("admin")?;
                    up.admin = Some(admin_bind(&v).ok_or_else(|| {
                        UsageError(format!(
                            "--admin {v:?}: expected IP:PORT or http://IP:PORT \
                             such as 127.0.0.1:9191"
                        ))
                    })?);
                }
                "log-format" | "threads" | "verbose" => {
                    return Err(UsageError(format!(
                        "--{name} is an option of jumpgate itself: give it before `up` \
                         (jumpgate --{name} ... up ...)"
                    )))
                }
                _ => return Err(UsageError(format!("unknown option --{name}"))),
            }
            continue;
        }
        let cluster: Vec<char> = a[1..].chars().collect();
        let mut j = 0;
        while j < cluster.len() {
            let f = cluster[j];
            j += 1;
            if NO_VALUE.contains(f) {
                no_value_flag(f, &mut up)?;
                continue;
            }
            if !WITH_VALUE.contains(f) {
                return Err(UsageError(format!("unknown option -- {f}")));
            }
            let value: String = if j < cluster.len() {
                let v: String = cluster[j..].iter().collect();
                j = cluster.len();
                v
            } else {
                let v = args
                    .get(i)
                    .cloned()
                    .ok_or_else(|| UsageError(format!("option requires an argument -- {f}")))?;
                i += 1;
                v
            };
            value_flag(f, &value, &mut up, local)?;
        }
    }
    if up.help {
        return Ok(up);
    }
    if destination.is_none() {
        return Err(UsageError("no destination given".into()));
    }
    if up.effective && !up.print_config {
        return Err(UsageError(
            "--effective goes with -G (jumpgate up -G --effective HOST)".into(),
        ));
    }
    Ok(up)
}

fn no_value_flag(f: char, up: &mut UpArgs) -> Result<(), UsageError> {
    let o = &mut up.cmdline;
    match f {
        // As ssh: these set the option directly, over any file.
        '4' => o.address_family = Some(AddressFamily::Inet),
        '6' => o.address_family = Some(AddressFamily::Inet6),
        'C' => o.compression = Some(true),
        'g' => o.gateway_ports = Some(true),
        'G' => up.print_config = true,
        'h' => up.help = true,
        'v' => up.verbose = up.verbose.saturating_add(1),
        // jumpgate up never opens a shell, a tty or reads stdin.
        'N' | 'n' | 'T' | 'q' => {}
        'f' => {
            return Err(UsageError(
                "-f: jumpgate up stays in the foreground; run it under systemd, or with `&` \
                 and --ready-file to wait for it"
                    .into(),
            ))
        }
        _ => {
            return Err(UsageError(format!(
                "-{f} is an ssh option jumpgate up does not support"
            )))
        }
    }
    Ok(())
}

fn value_flag(f: char, v: &str, up: &mut UpArgs, local: &Local) -> Result<(), UsageError> {
    let o = &mut up.cmdline;
    match f {
        'D' => {
            let fwd = parse_forward(v, true, false)
                .ok_or_else(|| UsageError(format!("Bad dynamic forwarding specification '{v}'")))?;
            o.add_local_forward(fwd);
        }
        'L' => {
            let fwd = parse_forward(v, false, false)
                .ok_or_else(|| UsageError(format!("Bad local forwarding specification '{v}'")))?;
            o.add_local_forward(fwd);
        }
        'R' => {
            let fwd = parse_forward(v, false, true)
                .or_else(|| parse_forward(v, true, true))
                .ok_or_else(|| UsageError(format!("Bad remote forwarding specification '{v}'")))?;
            o.add_remote_forward(fwd);
        }
        'J' => {
            if o.jump.is_some() {
                return Err(UsageError(
                    "Only a single -J option is permitted (use commas to separate multiple jump hops)"
                        .into(),
                ));
            }
            if o.proxy_command.is_some() {
                return Err(UsageError("Cannot specify -J with ProxyCommand".into()));
            }
            let j = Jump::parse_cmdline(v)
                .map_err(|e| UsageError(e.lines(&format!("Invalid -J argument '{v}'"))))?;
            o.jump = Some(j);
            o.proxy_command = Some("none".into());
        }
        'p' => {
            let p = crate::ssh_config::spec::a2port(v)
                .filter(|p| *p > 0)
                .ok_or_else(|| UsageError(format!("Bad port '{v}'")))?;
            if o.port.is_none() {
                o.port = Some(p);
            }
        }
        'l' => {
            if o.user.is_none() {
                o.user = Some(v.to_owned());
            }
        }
        'i' => {
            let p = expand_tilde(v, local);
            match std::fs::metadata(&p) {
                Ok(_) => o.add_identity_file(p, true),
                Err(e) => up.warnings.push(format!(
                    "Warning: Identity file {p} not accessible: {}.",
                    crate::ssh_config::strerror(&e)
                )),
            }
        }
        'o' => {
            let w = apply_option(o, local, v).map_err(UsageError)?;
            up.warnings.extend(w);
        }
        'F' => up.files = ConfigFiles::from_flag(v),
        _ => {
            return Err(UsageError(format!(
                "-{f} is an ssh option jumpgate up does not support"
            )))
        }
    }
    Ok(())
}

fn expand_tilde(v: &str, local: &Local) -> String {
    match v.strip_prefix("~/") {
        Some(rest) => format!(
            "{}/{rest}",
            local.home.display().to_string().trim_end_matches('/')
        ),
        None if v == "~" => local.home.display().to_string(),
        None => v.to_owned(),
    }
}

/// `ssh://user@host:port`, `user@host`, or (a jumpgate extension)
/// `[user@]host:port` / `[user@][v6]:port`.
fn set_destination(dest: &str, up: &mut UpArgs) -> Result<(), UsageError> {
    let o = &mut up.cmdline;
    let bad = || UsageError(format!("bad destination {dest:?}"));
    if let Some(u) = parse_ssh_uri(dest).map_err(|()| bad())? {
        if o.user.is_none() {
            o.user = u.user;
        }
        if o.port.is_none() {
            o.port = u.port;
        }
        up.host = u.host;
        return Ok(());
    }
    let host = match dest.rfind('@') {
        Some(0) => return Err(bad()),
        Some(i) => {
            if o.user.is_none() {
                o.user = Some(dest[..i].to_owned());
            }
            &dest[i + 1..]
        }
        None => dest,
    };
    let (host, port) = split_host_port(host);
    if host.is_empty() || host.starts_with('-') || host.contains(char::is_whitespace) {
        return Err(bad());
    }
    if let Some(p) = port {
        if o.port.is_none() {
            o.port = Some(p);
        }
    }
    up.host = host.to_owned();
    Ok(())
}

fn split_host_port(h: &str) -> (&str, Option<u16>) {
    if let Some(inner) = h.strip_prefix('[') {
        if let Some((host, rest)) = inner.split_once(']') {
            if let Some(p) = rest.strip_prefix(':').and_then(|p| p.parse().ok()) {
                return (host, Some(p));
            }
        }
        return (h, None);
    }
    match h.split_once(':') {
        Some((host, p)) if !p.contains(':') => match p.parse::<u16>() {
            Ok(port) if port > 0 => (host, Some(port)),
            _ => (h, None),
        },
        _ => (h, None),
    }
}

/// `--admin`: `IP:PORT` (or a bare port, as `-D` takes), or the
/// `http://IP:PORT` URL that `jumpgate status --admin` takes, so that one
/// address can be pasted into both.
fn admin_bind(v: &str) -> Option<SocketAddr> {
    let bare = match v.strip_prefix("http://") {
        Some(rest) => rest.strip_suffix('/').unwrap_or(rest),
        None => v,
    };
    crate::config::parse_bind(bare)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> Local {
        Local {
            uid: 1,
            user: "me".into(),
            home: PathBuf::from("/home/me"),
            env_home: PathBuf::from("/home/me"),
            hostname: "h".into(),
        }
    }

    fn p(args: &[&str]) -> Result<UpArgs, UsageError> {
        let v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        parse(&v, &local())
    }

    #[test]
    fn ssh_style_clusters_and_order() {
        let u = p(&[
            "-ND1080", "-vvv", "-p2222", "-oUser=x", "bob@host", "-D", "2000",
        ])
        .unwrap();
        assert_eq!(u.verbose, 3);
        assert_eq!(u.host, "host");
        assert_eq!(u.cmdline.port, Some(2222));
        // -o User came first.
        assert_eq!(u.cmdline.user.as_deref(), Some("x"));
        assert_eq!(u.cmdline.local_forwards.len(), 2);
        let u = p(&["-o", "Port=3", "-p", "1", "h"]).unwrap();
        assert_eq!(u.cmdline.port, Some(3));
        let u = p(&["al@h", "-l", "bob", "-p", "3"]).unwrap();
        assert_eq!(
            (u.cmdline.user.as_deref(), u.cmdline.port),
            (Some("al"), Some(3))
        );
        let u = p(&["ssh://al@h:2200"]).unwrap();
        assert_eq!(
            (u.cmdline.user.as_deref(), u.cmdline.port),
            (Some("al"), Some(2200))
        );
        let u = p(&["al@h:2201", "--ready-file", "/tmp/r", "--admin=127.0.0.1:0"]).unwrap();
        assert_eq!((u.host.as_str(), u.cmdline.port), ("h", Some(2201)));
        assert!(u.ready_file.is_some() && u.admin.is_some());
        // The URL form `jumpgate status --admin` takes works here too.
        for url in ["http://127.0.0.1:9191", "http://127.0.0.1:9191/"] {
            let u = p(&["h", "--admin", url]).unwrap();
            assert_eq!(u.admin, Some(SocketAddr::from(([127, 0, 0, 1], 9191))));
        }
        let u = p(&["h", "--admin=http://[::1]:9191"]).unwrap();
        assert_eq!(
            u.admin.map(|a| a.to_string()).as_deref(),
            Some("[::1]:9191")
        );
        for bad in [
            "https://127.0.0.1:9191",
            "http://127.0.0.1:9191/status",
            "x",
        ] {
            let e = p(&["h", "--admin", bad]).expect_err(bad).0;
            assert!(e.contains("expected IP:PORT or http://IP:PORT"), "{e}");
        }
        assert_eq!(p(&["[::1]:22"]).unwrap().host, "::1");
        assert_eq!(p(&["::1"]).unwrap().host, "::1");
    }

    #[test]
    fn errors_read_like_ssh() {
        let e = |a: &[&str]| p(a).expect_err("usage").0;
        assert_eq!(
            e(&["-D", "abc", "h"]),
            "Bad dynamic forwarding specification 'abc'"
        );
        assert_eq!(e(&["-p", "0", "h"]), "Bad port '0'");
        assert!(e(&["-J", "a", "-J", "b", "h"]).contains("single -J"));
        assert_eq!(
            e(&["-o", "ProxyCommand=x", "-J", "b", "h"]),
            "Cannot specify -J with ProxyCommand"
        );
        assert_eq!(
            e(&["-o", "Port=x", "h"]),
            "command-line line 0: Bad port 'x'."
        );
        assert_eq!(e(&["-Z", "h"]), "unknown option -- Z");
        assert_eq!(e(&["-D"]), "option requires an argument -- D");
        assert_eq!(e(&["-D", "1080"]), "no destination given");
        assert!(e(&["h", "uptime"]).contains("no remote command"));
        assert!(e(&["-f", "h"]).contains("foreground"));
    }
}
