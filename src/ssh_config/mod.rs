//! ssh_config with OpenSSH's semantics, so that `jumpgate up` and an
//! upstream with `ssh_config = "~/.ssh/config"` connect where `ssh` would:
//! the destination and flags are applied first, then the files (first value
//! wins), `Host`/`Match` blocks, `Include`, `%` tokens and `~`, defaults
//! and algorithm lists as OpenSSH 9.2 has them. `print` renders the result
//! as `ssh -G` does, which is how the tests compare us with OpenSSH.
//!
//! Used by `up` (the command line) and `config` (TOML `ssh_config =`).

mod algs;
mod jump;
mod lexer;
mod local;
mod options;
mod parse;
mod pattern;
pub mod print;
pub mod spec;
mod tokens;

use std::path::{Path, PathBuf};

pub use algs::AlgKind;
pub use jump::{Jump, JumpError};
pub use local::Local;
pub use options::{AddressFamily, Options, StrictHostKeyChecking};
pub use spec::{Forward, UserHostPort};

use parse::{Flags, Reader};

#[derive(Debug, thiserror::Error)]
pub enum SshConfigError {
    #[error("Can't open user config file {path}: {}", strerror(source))]
    Open {
        path: String,
        source: std::io::Error,
    },
    /// Every bad line of a file, then "FILE: terminating, N bad
    /// configuration options", as ssh reports them.
    #[error("{}", .0.join("\n"))]
    Bad(Vec<String>),
    #[error("{0}")]
    Fatal(String),
}

/// An I/O error as C's strerror words it (`No such file or directory`),
/// as ssh prints it: without Rust's ` (os error N)`.
pub fn strerror(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error ") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

/// Which files to read (ssh's `-F`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigFiles {
    /// ~/.ssh/config, then /etc/ssh/ssh_config (ssh without -F).
    Default,
    /// `-F none`.
    Nothing,
    /// `-F FILE`.
    File(PathBuf),
}

impl ConfigFiles {
    pub fn from_flag(f: &str) -> ConfigFiles {
        if f.eq_ignore_ascii_case("none") {
            ConfigFiles::Nothing
        } else {
            ConfigFiles::File(PathBuf::from(f))
        }
    }
}

/// What to resolve: the destination as given (user@ and port already taken
/// into `cmdline`), the command-line options, and the files.
#[derive(Debug, Clone)]
pub struct Request {
    pub host: String,
    pub cmdline: Options,
    pub files: ConfigFiles,
}

/// The configuration for one destination, defaults filled in and values
/// expanded (except IdentityFile/CertificateFile, which `ssh -G` prints as
/// written; `identity_paths` has them expanded).
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The destination as given (`%n`, `host` in `ssh -G`).
    pub host: String,
    pub hostname: String,
    pub user: String,
    pub port: u16,
    pub identity_files: Vec<String>,
    pub identity_paths: Vec<PathBuf>,
    /// `identity_paths` were named by the user (IdentityFile, `-i`), not
    /// ssh's defaults: ssh says "no such identity" only for those.
    pub identity_paths_given: bool,
    pub certificate_files: Vec<String>,
    pub certificate_paths: Vec<PathBuf>,
    pub identities_only: bool,
    pub identity_agent: Option<String>,
    pub proxy_command: Option<String>,
    /// ProxyCommand with ssh's tokens expanded and every `%` doubled, so
    /// that the transport's own `%h %p %r %n` expansion leaves it as is.
    pub proxy_command_expanded: Option<String>,
    pub jump: Option<Jump>,
    pub dynamic_forwards: Vec<Forward>,
    pub local_forwards: Vec<Forward>,
    pub remote_forwards: Vec<Forward>,
    pub server_alive_interval: u32,
    pub server_alive_count_max: u32,
    pub connect_timeout: Option<u32>,
    pub strict_host_key_checking: StrictHostKeyChecking,
    pub user_known_hosts_files: Vec<String>,
    pub global_known_hosts_files: Vec<String>,
    pub host_key_algorithms: Vec<String>,
    pub kex_algorithms: Vec<String>,
    pub ciphers: Vec<String>,
    pub macs: Vec<String>,
    /// Whether each list was configured (None = OpenSSH's default).
    pub algorithms_set: [bool; 4],
    pub compression: bool,
    pub exit_on_forward_failure: bool,
    pub gateway_ports: bool,
    pub batch_mode: bool,
    pub address_family: AddressFamily,
    /// Unknown keywords, unsupported ones that apply, Match criteria we
    /// cannot evaluate: for the caller to log.
    pub warnings: Vec<String>,
}

/// Applies one `-o` option to `opts` (errors read like ssh's).
pub fn apply_option(opts: &mut Options, local: &Local, line: &str) -> Result<Vec<String>, String> {
    let mut r = Reader::new(local, "", "", std::mem::take(opts));
    let res = r.command_line(line);
    *opts = r.opts;
    res.map(|()| r.warnings)
}

/// Reads the files for `req.host` and fills in defaults.
pub fn resolve(req: &Request, local: &Local) -> Result<Resolved, SshConfigError> {
    let mut r = Reader::new(local, &req.host, &req.host, req.cmdline.clone());
    read_files(&mut r, &req.files)?;
    if r.want_final {
        // ssh's second pass ("Match final"): the host name is now known and
        // is what Host lines match; values already set stay.
        let host = resolved_hostname(&r.opts, &req.host)?;
        r.opts.hostname = Some(host.clone());
        r.host = host;
        r.final_pass = true;
        read_files(&mut r, &req.files)?;
    }
    finish(r.opts, &req.host, local, r.warnings)
}

fn read_files(r: &mut Reader<'_>, files: &ConfigFiles) -> Result<(), SshConfigError> {
    match files {
        ConfigFiles::Nothing => {}
        ConfigFiles::File(p) => {
            let user = Flags {
                user_conf: true,
                ..Flags::default()
            };
            let mut active = true;
            if !r.read_file(p, user, &mut active, 0)? {
                return Err(SshConfigError::Open {
                    path: p.display().to_string(),
                    // ENOENT, so that it reads as ssh's message.
                    source: std::io::Error::from_raw_os_error(2),
                });
            }
        }
        ConfigFiles::Default => {
            let user_file = r.local.home.join(".ssh/config");
            let flags = Flags {
                user_conf: true,
                check_perm: true,
                never_match: false,
            };
            let mut active = true;
            r.read_file(&user_file, flags, &mut active, 0)?;
            let mut active = true;
            r.read_file(
                Path::new("/etc/ssh/ssh_config"),
                Flags::default(),
                &mut active,
                0,
            )?;
        }
    }
    Ok(())
}

/// HostName with `%h` expanded (else the destination), lowercased unless
/// it looks like an address (ssh's is_addr_fast: a `%` or `:`, or only
/// digits and dots).
fn resolved_hostname(o: &Options, host: &str) -> Result<String, SshConfigError> {
    let name = match &o.hostname {
        Some(h) => tokens::percent(h, &[('h', host)])
            .map_err(|e| SshConfigError::Fatal(format!("HostName: {e} (it may use %h and %%)")))?,
        None => host.to_owned(),
    };
    let looks_like_address =
        name.contains(['%', ':']) || name.chars().all(|c| c.is_ascii_digit() || c == '.');
    Ok(if looks_like_address {
        name
    } else {
        name.to_ascii_lowercase()
    })
}

/// OpenSSH's GlobalKnownHostsFile default; missing files are fine.
pub const DEFAULT_GLOBAL_KNOWN_HOSTS: [&str; 2] =
    ["/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2"];

/// OpenSSH's default identity files, in its order.
const DEFAULT_IDENTITIES: [&str; 7] = [
    "~/.ssh/id_rsa",
    "~/.ssh/id_ecdsa",
    "~/.ssh/id_ecdsa_sk",
    "~/.ssh/id_ed25519",
    "~/.ssh/id_ed25519_sk",
    "~/.ssh/id_xmss",
    "~/.ssh/id_dsa",
];

fn finish(
    o: Options,
    host: &str,
    local: &Local,
    warnings: Vec<String>,
) -> Result<Resolved, SshConfigError> {
    let fatal = SshConfigError::Fatal;
    let hostname = resolved_hostname(&o, host)?;
    let user = o.user.clone().unwrap_or_else(|| local.user.clone());
    let port = o.port.unwrap_or(22);
    let port_s = port.to_string();
    let uid = local.uid.to_string();
    let home = local.home.display().to_string();
    let hash = conn_hash(&local.hostname, &hostname, &port_s, &user);
    let tokens: [(char, &str); 11] = [
        ('C', &hash),
        ('L', local.short_hostname()),
        ('i', &uid),
        ('k', host),
        ('l', &local.hostname),
        ('n', host),
        ('p', &port_s),
        ('d', &home),
        ('h', &hostname),
        ('r', &user),
        ('u', &local.user),
    ];
    let expand = |what: &str, s: &str| -> Result<String, SshConfigError> {
        let t = tokens::tilde(s, local).map_err(|e| fatal(format!("{what}: {e}")))?;
        let t = tokens::percent(&t, &tokens).map_err(|e| fatal(format!("{what}: {e}")))?;
        tokens::env_vars(&t).map_err(|e| fatal(format!("{what}: {e}")))
    };
    let identity_files: Vec<String> = if o.identity_files.is_empty() {
        DEFAULT_IDENTITIES.iter().map(|s| s.to_string()).collect()
    } else {
        o.identity_files.iter().map(|e| e.path.clone()).collect()
    };
    let identity_paths = identity_files
        .iter()
        .map(|f| expand("IdentityFile", f).map(PathBuf::from))
        .collect::<Result<_, _>>()?;
    let certificate_files: Vec<String> =
        o.certificate_files.iter().map(|e| e.path.clone()).collect();
    let certificate_paths = certificate_files
        .iter()
        .map(|f| expand("CertificateFile", f).map(PathBuf::from))
        .collect::<Result<_, _>>()?;
    let known = o
        .user_known_hosts_files
        .clone()
        .unwrap_or_else(|| vec!["~/.ssh/known_hosts".into(), "~/.ssh/known_hosts2".into()]);
    let user_known_hosts_files = known
        .iter()
        .map(|f| expand("UserKnownHostsFile", f))
        .collect::<Result<_, _>>()?;
    let global_known_hosts_files = match &o.global_known_hosts_files {
        Some(files) => files
            .iter()
            .map(|f| expand("GlobalKnownHostsFile", f))
            .collect::<Result<_, _>>()?,
        None => DEFAULT_GLOBAL_KNOWN_HOSTS
            .iter()
            .map(|s| s.to_string())
            .collect(),
    };
    let identity_agent = match &o.identity_agent {
        Some(a) if a == "SSH_AUTH_SOCK" || a == "none" => Some(a.clone()),
        Some(a) => Some(expand("IdentityAgent", a)?),
        None => None,
    };
    let alg =
        |kind: AlgKind, spec: &Option<String>| algs::assemble(kind, spec.as_deref()).map_err(fatal);
    let proxy_command_expanded = match o.proxy_command.as_deref() {
        Some(c) if c != "none" => Some(
            tokens::percent(c, &tokens)
                .map_err(|e| fatal(format!("ProxyCommand: {e}")))?
                .replace('%', "%%"),
        ),
        _ => None,
    };
    let (dynamic_forwards, local_forwards): (Vec<Forward>, Vec<Forward>) = o
        .local_forwards
        .iter()
        .cloned()
        .partition(|f| f.is_dynamic());
    Ok(Resolved {
        host: host.to_owned(),
        hostname,
        user,
        port,
        identity_files,
        identity_paths,
        identity_paths_given: !o.identity_files.is_empty(),
        certificate_files,
        certificate_paths,
        identities_only: o.identities_only.unwrap_or(false),
        identity_agent,
        proxy_command_expanded,
        proxy_command: o.proxy_command.clone().filter(|c| c != "none"),
        jump: o.jump.clone().filter(|j| *j != Jump::Disabled),
        dynamic_forwards,
        local_forwards,
        remote_forwards: o.remote_forwards.clone(),
        server_alive_interval: o.server_alive_interval.unwrap_or(0),
        server_alive_count_max: o.server_alive_count_max.unwrap_or(3),
        connect_timeout: o.connect_timeout,
        strict_host_key_checking: o
            .strict_host_key_checking
            .unwrap_or(StrictHostKeyChecking::Ask),
        user_known_hosts_files,
        global_known_hosts_files,
        host_key_algorithms: alg(AlgKind::HostKey, &o.host_key_algorithms)?,
        kex_algorithms: alg(AlgKind::Kex, &o.kex_algorithms)?,
        ciphers: alg(AlgKind::Ciphers, &o.ciphers)?,
        macs: alg(AlgKind::Macs, &o.macs)?,
        algorithms_set: [
            o.ciphers.is_some(),
            o.kex_algorithms.is_some(),
            o.macs.is_some(),
            o.host_key_algorithms.is_some(),
        ],
        compression: o.compression.unwrap_or(false),
        exit_on_forward_failure: o.exit_on_forward_failure.unwrap_or(false),
        gateway_ports: o.gateway_ports.unwrap_or(false),
        batch_mode: o.batch_mode.unwrap_or(false),
        address_family: o.address_family.unwrap_or(AddressFamily::Any),
        warnings,
    })
}

/// `%C`: SHA-1 of local host name, host name, port and user (OpenSSH 9.2).
fn conn_hash(l: &str, h: &str, p: &str, r: &str) -> String {
    use sha1::{Digest, Sha1};
    let mut s = Sha1::new();
    for part in [l, h, p, r] {
        s.update(part.as_bytes());
    }
    s.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests;
