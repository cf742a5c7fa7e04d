//! Reading ssh_config files and `-o` options into [`Options`] with OpenSSH's
//! semantics: `Host` and `Match` blocks decide which lines apply, `Include`
//! reads more files (globs; relative paths under ~/.ssh or /etc/ssh) without
//! letting their blocks leak out, errors carry `file line N:` and are all
//! reported before giving up, and unknown keywords are warnings.

use std::collections::HashSet;
use std::path::Path;

use super::algs::{self, AlgKind};
use super::jump::{vis, Jump, JumpError};
use super::lexer::{split_args, split_line, split_match};
use super::local::Local;
use super::options::{first, AddressFamily, Options, StrictHostKeyChecking};
use super::pattern::{match_hostname, match_pattern, match_pattern_list, ListMatch};
use super::spec::{a2port, parse_forward};
use super::SshConfigError;

/// OpenSSH's limit on nested Includes.
const MAX_DEPTH: usize = 16;

/// How a file is read (OpenSSH's SSHCONF_* flags).
#[derive(Debug, Clone, Copy, Default)]
pub struct Flags {
    /// A user config (`-F`, ~/.ssh/config): relative Includes live in ~/.ssh.
    pub user_conf: bool,
    /// Refuse files writable by others or owned by someone else.
    pub check_perm: bool,
    /// Inside an inactive block's Include: parse, apply nothing.
    pub never_match: bool,
}

enum LineErr {
    /// Counted; reading goes on and the file fails at its end.
    Bad(String),
    /// Stops everything at once.
    Fatal(SshConfigError),
}

impl From<String> for LineErr {
    fn from(s: String) -> Self {
        LineErr::Bad(s)
    }
}

/// Where a line comes from, for messages.
struct At<'a> {
    file: &'a str,
    line: usize,
    cmdline: bool,
    flags: Flags,
    depth: usize,
}

impl At<'_> {
    fn msg(&self, m: impl std::fmt::Display) -> String {
        format!("{} line {}: {m}", self.file, self.line)
    }
}

/// The remaining arguments of a line.
struct Args {
    v: Vec<String>,
    i: usize,
}

impl Args {
    fn next(&mut self) -> Option<String> {
        let a = self.v.get(self.i).cloned();
        if a.is_some() {
            self.i += 1;
        }
        a
    }
    fn consume(&mut self) {
        self.i = self.v.len();
    }
    fn left(&self) -> bool {
        self.i < self.v.len()
    }
}

pub struct Reader<'a> {
    pub local: &'a Local,
    /// The name `Host` patterns match: the destination as given (in the
    /// final pass: the host name).
    pub host: String,
    pub original_host: String,
    pub final_pass: bool,
    /// A `Match final` was seen: ssh reads the files a second time.
    pub want_final: bool,
    pub opts: Options,
    pub warnings: Vec<String>,
    warned: HashSet<String>,
    /// Unknown keywords seen (file, line, ssh's message): only warnings
    /// while the file is otherwise good, but counted among its bad lines
    /// when it fails, as ssh counts them.
    unknown: Vec<(String, usize, String)>,
}

impl<'a> Reader<'a> {
    pub fn new(local: &'a Local, host: &str, original_host: &str, opts: Options) -> Reader<'a> {
        Reader {
            local,
            host: host.to_owned(),
            original_host: original_host.to_owned(),
            final_pass: false,
            want_final: false,
            opts,
            warnings: Vec::new(),
            warned: HashSet::new(),
            unknown: Vec::new(),
        }
    }

    /// One `-o` option; errors read like ssh's (`command-line line 0: ...`).
    pub fn command_line(&mut self, line: &str) -> Result<(), String> {
        let at = At {
            file: "command-line",
            line: 0,
            cmdline: true,
            flags: Flags {
                user_conf: true,
                ..Flags::default()
            },
            depth: 0,
        };
        let mut active = true;
        match self.process(line, &at, &mut active) {
            Ok(()) => Ok(()),
            Err(LineErr::Bad(m)) => Err(m),
            Err(LineErr::Fatal(e)) => Err(e.to_string()),
        }
    }

    /// Reads one file; Ok(false) if it does not exist.
    pub fn read_file(
        &mut self,
        path: &Path,
        flags: Flags,
        active: &mut bool,
        depth: usize,
    ) -> Result<bool, SshConfigError> {
        if depth > MAX_DEPTH {
            return Err(SshConfigError::Fatal(
                "Too many recursive configuration includes".into(),
            ));
        }
        let shown = path.display().to_string();
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(source) => {
                return Err(SshConfigError::Open {
                    path: shown,
                    source,
                })
            }
        };
        if flags.check_perm {
            use std::os::unix::fs::MetadataExt;
            let m = std::fs::metadata(path).map_err(|source| SshConfigError::Open {
                path: shown.clone(),
                source,
            })?;
            if (m.uid() != 0 && m.uid() != self.local.uid) || m.mode() & 0o022 != 0 {
                return Err(SshConfigError::Fatal(format!(
                    "Bad owner or permissions on {shown}"
                )));
            }
        }
        let text = String::from_utf8_lossy(&bytes);
        let mut bad: Vec<(usize, String)> = Vec::new();
        for (i, line) in text.split('\n').enumerate() {
            let at = At {
                file: &shown,
                line: i + 1,
                cmdline: false,
                flags,
                depth,
            };
            match self.process(line, &at, active) {
                Ok(()) => {}
                Err(LineErr::Bad(m)) => bad.push((i + 1, m)),
                Err(LineErr::Fatal(e)) => return Err(e),
            }
        }
        if !bad.is_empty() {
            bad.extend(
                self.unknown
                    .iter()
                    .filter(|(file, _, _)| *file == shown)
                    .map(|(_, line, m)| (*line, m.clone())),
            );
            bad.sort_by_key(|(line, _)| *line);
            // `Match final` reads the files twice.
            bad.dedup();
            let n = bad.len();
            let mut bad: Vec<String> = bad.into_iter().map(|(_, m)| m).collect();
            bad.push(format!(
                "{shown}: terminating, {n} bad configuration options"
            ));
            return Err(SshConfigError::Bad(bad));
        }
        Ok(true)
    }

    fn warn_once(&mut self, key: String, msg: String) {
        if self.warned.insert(key) {
            self.warnings.push(msg);
        }
    }

    fn process(&mut self, raw: &str, at: &At<'_>, active: &mut bool) -> Result<(), LineErr> {
        let Some(line) = split_line(raw).map_err(|m| at.msg(m))? else {
            return Ok(());
        };
        let kw = line.keyword.as_str();
        let v = split_args(&line.rest).map_err(|m| at.msg(m))?;
        let mut args = Args { v, i: 0 };
        let on = *active;
        let o = &mut self.opts;
        match kw {
            "host" => {
                if at.cmdline {
                    return Err("Host directive not supported as a command-line option"
                        .to_string()
                        .into());
                }
                *active = false;
                while let Some(arg) = args.next() {
                    if arg.is_empty() {
                        return Err(at.msg(format!("keyword {kw} empty argument")).into());
                    }
                    if at.flags.never_match {
                        args.consume();
                        break;
                    }
                    let (negated, pat) = match arg.strip_prefix('!') {
                        Some(p) => (true, p),
                        None => (false, arg.as_str()),
                    };
                    if match_pattern(&self.host, pat) {
                        if negated {
                            *active = false;
                            args.consume();
                            break;
                        }
                        *active = true;
                    }
                }
            }
            "match" => {
                if at.cmdline {
                    return Err("Host directive not supported as a command-line option"
                        .to_string()
                        .into());
                }
                let (v, left_over) = split_match(&line.rest);
                let value = self.match_line(&mut Args { v, i: 0 }, at)?;
                if left_over {
                    return Err(at
                        .msg(format!("keyword {kw} extra arguments at end of line"))
                        .into());
                }
                args.consume();
                *active = value && !at.flags.never_match;
            }
            "include" => {
                if at.cmdline {
                    return Err("Include directive not supported as a command-line option"
                        .to_string()
                        .into());
                }
                while let Some(arg) = args.next() {
                    self.include(&arg, at, active)?;
                }
            }
            "ignoreunknown" => {
                let a = one(&mut args, at)?;
                if on {
                    first(&mut o.ignore_unknown, a);
                }
            }
            "hostname" => {
                let a = one(&mut args, at)?;
                if on {
                    first(&mut o.hostname, a);
                }
            }
            "user" => {
                let a = one(&mut args, at)?;
                if on {
                    first(&mut o.user, a);
                }
            }
            "port" => {
                let a = one(&mut args, at)?;
                let p = a2port(&a)
                    .filter(|p| *p > 0)
                    .ok_or_else(|| at.msg(format!("Bad port '{a}'.")))?;
                if on {
                    first(&mut o.port, p);
                }
            }
            "identityfile" => {
                let a = one(&mut args, at)?;
                if on {
                    o.add_identity_file(a, at.flags.user_conf);
                }
            }
            "certificatefile" => {
                let a = one(&mut args, at)?;
                if on {
                    o.add_certificate_file(a, at.flags.user_conf);
                }
            }
            "identityagent" => {
                let a = one(&mut args, at)?;
                if on {
                    first(&mut o.identity_agent, a);
                }
            }
            "identitiesonly" => set_flag(&mut o.identities_only, &mut args, at, on)?,
            "batchmode" => set_flag(&mut o.batch_mode, &mut args, at, on)?,
            "exitonforwardfailure" => set_flag(&mut o.exit_on_forward_failure, &mut args, at, on)?,
            "gatewayports" => set_flag(&mut o.gateway_ports, &mut args, at, on)?,
            "compression" => {
                let a = one(&mut args, at)?;
                let v = match a.to_ascii_lowercase().as_str() {
                    "yes" => true,
                    "no" => false,
                    _ => return Err(at.msg(format!("unsupported option \"{a}\".")).into()),
                };
                if on {
                    first(&mut o.compression, v);
                }
            }
            "stricthostkeychecking" => {
                let a = one(&mut args, at)?;
                let v = match a.to_ascii_lowercase().as_str() {
                    "yes" | "true" => StrictHostKeyChecking::Yes,
                    "no" | "false" | "off" => StrictHostKeyChecking::No,
                    "ask" => StrictHostKeyChecking::Ask,
                    "accept-new" => StrictHostKeyChecking::AcceptNew,
                    _ => return Err(at.msg(format!("unsupported option \"{a}\".")).into()),
                };
                if on {
                    first(&mut o.strict_host_key_checking, v);
                }
            }
            "addressfamily" => {
                let a = one(&mut args, at)?;
                let v = match a.to_ascii_lowercase().as_str() {
                    "any" => AddressFamily::Any,
                    "inet" => AddressFamily::Inet,
                    "inet6" => AddressFamily::Inet6,
                    _ => return Err(at.msg(format!("unsupported option \"{a}\".")).into()),
                };
                if on {
                    first(&mut o.address_family, v);
                }
            }
            "serveraliveinterval" | "connecttimeout" => {
                let a = args.next().unwrap_or_default();
                if a.is_empty() {
                    return Err(at.msg("missing time value.").into());
                }
                // "none" leaves the option unset (a later line may set it).
                if a != "none" {
                    let secs = convtime(&a).ok_or_else(|| at.msg("invalid time value."))?;
                    if on {
                        if kw == "connecttimeout" {
                            first(&mut o.connect_timeout, secs);
                        } else {
                            first(&mut o.server_alive_interval, secs);
                        }
                    }
                }
            }
            "serveralivecountmax" => {
                let a = args.next().unwrap_or_default();
                let v = atoi(&a).map_err(|e| at.msg(format!("integer value {e}.")))?;
                if on {
                    first(&mut o.server_alive_count_max, v);
                }
            }
            "userknownhostsfile" | "globalknownhostsfile" => {
                let mut files = Vec::new();
                while let Some(a) = args.next() {
                    if a.is_empty() {
                        return Err(at.msg(format!("keyword {kw} empty argument")).into());
                    }
                    files.push(a);
                }
                if on {
                    let slot = if kw == "userknownhostsfile" {
                        &mut o.user_known_hosts_files
                    } else {
                        &mut o.global_known_hosts_files
                    };
                    first(slot, files);
                }
            }
            "ciphers" | "macs" | "kexalgorithms" | "hostkeyalgorithms" => {
                let a = one(&mut args, at)?;
                let kind = match kw {
                    "ciphers" => AlgKind::Ciphers,
                    "macs" => AlgKind::Macs,
                    "kexalgorithms" => AlgKind::Kex,
                    _ => AlgKind::HostKey,
                };
                algs::validate(kind, &a).map_err(|m| at.msg(m))?;
                if on {
                    let slot = match kind {
                        AlgKind::Ciphers => &mut o.ciphers,
                        AlgKind::Macs => &mut o.macs,
                        AlgKind::Kex => &mut o.kex_algorithms,
                        AlgKind::HostKey => &mut o.host_key_algorithms,
                    };
                    first(slot, a);
                }
            }
            "proxycommand" => {
                // The rest of the line, unsplit; ignored once ProxyJump names
                // hops (`ProxyJump none` does not block it).
                args.consume();
                if on && !matches!(o.jump, Some(Jump::Hops { .. })) {
                    first(&mut o.proxy_command, line.rest.clone());
                }
            }
            "proxyjump" => {
                args.consume();
                // Only the command line checks hop names (ssh does the same:
                // `ProxyJump a;b` in a file is accepted).
                let jump = if at.cmdline {
                    Jump::parse_cmdline(&line.rest)
                } else {
                    Jump::parse(&line.rest).ok_or(JumpError::Syntax)
                };
                let jump = jump.map_err(|e| {
                    e.lines(&at.msg(format!("Invalid ProxyJump \"{}\"", vis(&line.rest))))
                })?;
                if on && o.proxy_command.is_none() && o.jump.is_none() {
                    if !matches!(jump, Jump::Disabled) {
                        o.proxy_command = Some("none".into());
                    }
                    o.jump = Some(jump);
                }
            }
            "localforward" | "remoteforward" | "dynamicforward" => {
                let a = one(&mut args, at)?;
                let remote = kw == "remoteforward";
                let mut dynamic = kw == "dynamicforward";
                let mut spec = a.clone();
                if !dynamic {
                    match args.next().filter(|t| !t.is_empty()) {
                        Some(target) => spec = format!("{a}:{target}"),
                        None if remote => dynamic = true,
                        None => return Err(at.msg("Missing target argument.").into()),
                    }
                }
                let fwd = parse_forward(&spec, dynamic, remote)
                    .ok_or_else(|| at.msg("Bad forwarding specification."))?;
                if on {
                    if remote {
                        o.add_remote_forward(fwd);
                    } else {
                        o.add_local_forward(fwd);
                    }
                }
            }
            _ => {
                args.consume();
                self.other_keyword(kw, at, on, &args)?;
            }
        }
        if args.left() {
            return Err(at
                .msg(format!("keyword {kw} extra arguments at end of line"))
                .into());
        }
        Ok(())
    }

    /// Keywords jumpgate does not act on: OpenSSH's own are ignored (with a
    /// warning when they would change how the connection is made), unknown
    /// ones warn unless IgnoreUnknown lists them (ssh refuses them).
    fn other_keyword(
        &mut self,
        kw: &str,
        at: &At<'_>,
        on: bool,
        args: &Args,
    ) -> Result<(), LineErr> {
        if KNOWN_IGNORED.contains(&kw) {
            let value = args.v.first().map(|s| s.to_ascii_lowercase());
            let harmless = kw == "canonicalizehostname" && value.as_deref() == Some("no");
            if on && !harmless && WARN_IGNORED.contains(&kw) && !at.cmdline {
                self.warn_once(
                    kw.to_owned(),
                    at.msg(format!("{kw} is not supported by jumpgate and is ignored")),
                );
            }
            return Ok(());
        }
        if let Some(list) = &self.opts.ignore_unknown {
            if match_pattern_list(kw, list, true) == ListMatch::Yes {
                return Ok(());
            }
        }
        let msg = format!(
            "{}: line {}: Bad configuration option: {kw}",
            at.file, at.line
        );
        if at.cmdline {
            return Err(msg.into());
        }
        self.unknown
            .push((at.file.to_owned(), at.line, msg.clone()));
        self.warn_once(
            format!("{}:{}", at.file, at.line),
            format!("{msg} (ignored)"),
        );
        Ok(())
    }

    fn include(&mut self, arg: &str, at: &At<'_>, active: &mut bool) -> Result<(), LineErr> {
        if arg.is_empty() {
            return Err(at.msg("keyword include empty argument").into());
        }
        if arg.starts_with('~') && !at.flags.user_conf {
            return Err(at.msg(format!("bad include path {arg}.")).into());
        }
        let path = if !arg.starts_with('/') && !arg.starts_with('~') {
            if at.flags.user_conf {
                format!("~/.ssh/{arg}")
            } else {
                format!("/etc/ssh/{arg}")
            }
        } else {
            arg.to_owned()
        };
        let path = self.glob_tilde(&path).map_err(|m| at.msg(m))?;
        let outer = *active;
        for file in super::pattern::glob(&path) {
            let flags = Flags {
                check_perm: true,
                never_match: at.flags.never_match || !outer,
                ..at.flags
            };
            let r = self.read_file(&file, flags, active, at.depth + 1);
            // Blocks inside the included file do not leak out of it.
            *active = outer;
            match r {
                Ok(_) => {}
                Err(e) => return Err(LineErr::Fatal(e)),
            }
        }
        Ok(())
    }

    /// `~` as glob(3) with GLOB_TILDE expands it: $HOME first.
    fn glob_tilde(&self, p: &str) -> Result<String, String> {
        let Some(rest) = p.strip_prefix('~') else {
            return Ok(p.to_owned());
        };
        let (user, tail) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let home = if user.is_empty() {
            self.local.env_home.clone()
        } else {
            match self.local.home_of(user) {
                Some(h) => h,
                None => return Ok(p.to_owned()),
            }
        };
        Ok(format!(
            "{}{tail}",
            home.display().to_string().trim_end_matches('/')
        ))
    }

    /// OpenSSH's match_cfg_line: every criterion must hold. Criteria
    /// jumpgate cannot evaluate (exec, localnetwork, tagged) warn and make
    /// the block not apply.
    fn match_line(&mut self, args: &mut Args, at: &At<'_>) -> Result<bool, LineErr> {
        let bad = |inner: String| -> LineErr {
            LineErr::Bad(format!("{inner}\n{}", at.msg("Bad Match condition")))
        };
        let mut result = true;
        let mut attributes = 0;
        while let Some(oattr) = args.next() {
            if oattr.starts_with('#') {
                args.consume();
                break;
            }
            let (negate, attr) = match oattr.strip_prefix('!') {
                Some(a) => (true, a.to_ascii_lowercase()),
                None => (false, oattr.to_ascii_lowercase()),
            };
            if attr == "all" {
                let more = args.next().filter(|a| !a.is_empty());
                if attributes > 1 || more.as_deref().is_some_and(|a| !a.starts_with('#')) {
                    return Err(bad(at.msg(format!(
                        "'{oattr}' cannot be combined with other Match attributes"
                    ))));
                }
                args.consume();
                if result {
                    result = !negate;
                }
                return Ok(result);
            }
            attributes += 1;
            if attr == "canonical" || attr == "final" {
                if attr == "final" && !negate {
                    self.want_final = true;
                }
                if self.final_pass == negate {
                    result = false;
                }
                continue;
            }
            let arg = match args.next() {
                Some(a) if !a.is_empty() && !a.starts_with('#') => a,
                _ => return Err(bad(format!("Missing Match criteria for {attr}"))),
            };
            let hit = match attr.as_str() {
                "host" => {
                    let host = self.match_host_name();
                    match_hostname(&host, &arg) == ListMatch::Yes
                }
                "originalhost" => match_hostname(&self.original_host, &arg) == ListMatch::Yes,
                "user" => {
                    let ruser = self
                        .opts
                        .user
                        .clone()
                        .unwrap_or_else(|| self.local.user.clone());
                    match_pattern_list(&ruser, &arg, false) == ListMatch::Yes
                }
                "localuser" => match_pattern_list(&self.local.user, &arg, false) == ListMatch::Yes,
                "exec" | "localnetwork" | "tagged" => {
                    self.warn_once(
                        format!("{}:{}:match", at.file, at.line),
                        at.msg(format!(
                            "Match {attr} is not supported by jumpgate: this Match block does not apply"
                        )),
                    );
                    result = false;
                    continue;
                }
                _ => return Err(bad(format!("Unsupported Match attribute {attr}"))),
            };
            if hit == negate {
                result = false;
            }
        }
        if attributes == 0 {
            return Err(bad("One or more attributes required for Match".into()));
        }
        Ok(result)
    }

    /// The name `Match host` compares: the HostName so far (with `%h`).
    fn match_host_name(&self) -> String {
        if self.final_pass {
            return self
                .opts
                .hostname
                .clone()
                .unwrap_or_else(|| self.host.clone());
        }
        match &self.opts.hostname {
            Some(h) => {
                super::tokens::percent(h, &[('h', &self.host)]).unwrap_or_else(|_| h.clone())
            }
            None => self.host.clone(),
        }
    }
}

fn one(args: &mut Args, at: &At<'_>) -> Result<String, String> {
    match args.next() {
        Some(a) if !a.is_empty() => Ok(a),
        _ => Err(at.msg("Missing argument.")),
    }
}

fn set_flag(slot: &mut Option<bool>, args: &mut Args, at: &At<'_>, on: bool) -> Result<(), String> {
    let a = args.next().unwrap_or_default();
    let v = match a.to_ascii_lowercase().as_str() {
        "yes" | "true" => true,
        "no" | "false" => false,
        _ => return Err(at.msg(format!("unsupported option \"{a}\"."))),
    };
    if on {
        first(slot, v);
    }
    Ok(())
}

/// OpenSSH's convtime: `90`, `1m30s`, `1h`, `2d`, `1w`; None if invalid.
pub fn convtime(s: &str) -> Option<u32> {
    if s.is_empty() {
        return None;
    }
    let mut total: u64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits_end = rest
            .char_indices()
            .find(|(i, c)| !(c.is_ascii_digit() || (*i == 0 && *c == '+')))
            .map(|(i, _)| i)
            .unwrap_or(rest.len());
        let n: u64 = rest[..digits_end].parse().ok()?;
        let mut chars = rest[digits_end..].chars();
        let mult = match chars.next() {
            None => 1,
            Some('s' | 'S') => 1,
            Some('m' | 'M') => 60,
            Some('h' | 'H') => 3600,
            Some('d' | 'D') => 86400,
            Some('w' | 'W') => 604800,
            Some(_) => return None,
        };
        total = total.checked_add(n.checked_mul(mult)?)?;
        if total > i32::MAX as u64 {
            return None;
        }
        rest = chars.as_str();
    }
    u32::try_from(total).ok()
}

/// OpenSSH's atoi_err: 0..INT_MAX, with its error words.
fn atoi(s: &str) -> Result<u32, &'static str> {
    if s.is_empty() {
        return Err("missing");
    }
    match s.parse::<i64>() {
        Ok(n) if n < 0 => Err("too small"),
        Ok(n) if n > i64::from(i32::MAX) => Err("too large"),
        Ok(n) => Ok(n as u32),
        Err(_) => Err("invalid"),
    }
}

/// OpenSSH 9.x client keywords jumpgate does not act on.
const KNOWN_IGNORED: &[&str] = &[
    "addkeystoagent",
    "bindaddress",
    "bindinterface",
    "canonicaldomains",
    "canonicalizefallbacklocal",
    "canonicalizehostname",
    "canonicalizemaxdots",
    "canonicalizepermittedcnames",
    "casignaturealgorithms",
    "challengeresponseauthentication",
    "channeltimeout",
    "checkhostip",
    "clearallforwardings",
    "connectionattempts",
    "controlmaster",
    "controlpath",
    "controlpersist",
    "dsaauthentication",
    "enableescapecommandline",
    "enablesshkeysign",
    "escapechar",
    "fingerprinthash",
    "forkafterauthentication",
    "forwardagent",
    "forwardx11",
    "forwardx11timeout",
    "forwardx11trusted",
    "gssapiauthentication",
    "gssapiclientidentity",
    "gssapidelegatecredentials",
    "gssapikeyexchange",
    "gssapikexalgorithms",
    "gssapirenewalforcesrekey",
    "gssapiserveridentity",
    "gssapitrustdns",
    "hashknownhosts",
    "hostbasedacceptedalgorithms",
    "hostbasedauthentication",
    "hostbasedkeytypes",
    "hostkeyalias",
    "ipqos",
    "kbdinteractiveauthentication",
    "kbdinteractivedevices",
    "knownhostscommand",
    "localcommand",
    "loglevel",
    "logverbose",
    "nohostauthenticationforlocalhost",
    "numberofpasswordprompts",
    "obscurekeystroketiming",
    "passwordauthentication",
    "permitlocalcommand",
    "permitremoteopen",
    "pkcs11provider",
    "preferredauthentications",
    "protocol",
    "proxyusefdpass",
    "pubkeyacceptedalgorithms",
    "pubkeyacceptedkeytypes",
    "pubkeyauthentication",
    "rekeylimit",
    "remotecommand",
    "requesttty",
    "requiredrsasize",
    "revokedhostkeys",
    "securitykeyprovider",
    "sendenv",
    "sessiontype",
    "setenv",
    "skeyauthentication",
    "smartcarddevice",
    "stdinnull",
    "streamlocalbindmask",
    "streamlocalbindunlink",
    "syslogfacility",
    "tag",
    "tcpkeepalive",
    "tisauthentication",
    "tunnel",
    "tunneldevice",
    "updatehostkeys",
    "usekeychain",
    "useprivilegedport",
    "useroaming",
    "verifyhostkeydns",
    "visualhostkey",
    "xauthlocation",
    "cipher",
    "compressionlevel",
    "fallbacktorsh",
    "globalknownhostsfile2",
    "identityfile2",
    "rhostsauthentication",
    "rhostsrsaauthentication",
    "rsaauthentication",
    "userknownhostsfile2",
    "usersh",
    "keepalive",
    "kerberosauthentication",
    "kerberostgtpassing",
    "afstokenpassing",
    "refuseconnection",
    "warnweakcrypto",
];

/// Of those, the ones whose absence changes where or how we connect, log in
/// or check the host: a warning when they apply.
const WARN_IGNORED: &[&str] = &[
    "bindaddress",
    "bindinterface",
    "canonicalizehostname",
    "casignaturealgorithms",
    "clearallforwardings",
    "connectionattempts",
    "hostkeyalias",
    "knownhostscommand",
    "permitremoteopen",
    "pkcs11provider",
    "preferredauthentications",
    "pubkeyacceptedalgorithms",
    "pubkeyacceptedkeytypes",
    "pubkeyauthentication",
    "revokedhostkeys",
    "securitykeyprovider",
    "smartcarddevice",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn convtime_like_openssh() {
        assert_eq!(convtime("90"), Some(90));
        assert_eq!(convtime("1m30s"), Some(90));
        assert_eq!(convtime("1h"), Some(3600));
        assert_eq!(convtime("1W"), Some(604800));
        assert_eq!(convtime("1x"), None);
        assert_eq!(convtime("-1"), None);
        assert_eq!(convtime("m"), None);
        assert_eq!(convtime(""), None);
    }

    #[test]
    fn atoi_words() {
        assert_eq!(atoi("3"), Ok(3));
        assert_eq!(atoi("x"), Err("invalid"));
        assert_eq!(atoi("-1"), Err("too small"));
        assert_eq!(atoi("99999999999"), Err("too large"));
    }
}
