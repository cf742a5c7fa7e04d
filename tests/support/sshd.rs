//! A real OpenSSH sshd per test: a temp dir with a generated host key, client keys and
//! authorized_keys, an sshd_config written for the test, sshd started in the
//! foreground on an ephemeral loopback port (or on port 22 inside a test's network
//! namespace), readiness by reading its `SSH-2.0` banner, and a kill on drop.
//!
//! sshd on the host runs with the offline resolver (see `process`), so a name that is
//! not in /etc/hosts fails on the jump side without any DNS traffic.
//!
//! The e2e bench compiles this same file (benches/support/sshd.rs), so it may use only
//! `super::process` and `super::require` from its parent.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tempfile::TempDir;
use tokio::io::AsyncReadExt;

use super::process::{offline_command, run_ok, ChildGuard};

pub const SSHD: &str = "/usr/sbin/sshd";

/// How long ssh-keygen may take (RSA 3072 generation is the slow case).
const KEYGEN_LIMIT: Duration = Duration::from_secs(60);

/// How long sshd may take to show its banner.
const READY_LIMIT: Duration = Duration::from_secs(10);

/// Attempts with a fresh port when another process took ours before sshd bound it.
const BIND_ATTEMPTS: usize = 5;

/// Client key algorithms the tests log in with.
#[derive(Clone, Copy, Debug)]
pub enum KeyKind {
    Ed25519,
    /// ecdsa-sha2-nistp256.
    Ecdsa,
    /// ecdsa-sha2-nistp384.
    EcdsaP384,
    /// ecdsa-sha2-nistp521.
    EcdsaP521,
    /// RSA 3072; OpenSSH 9.2 accepts it only with rsa-sha2-256/512 signatures.
    Rsa,
}

impl KeyKind {
    fn keygen_args(self) -> &'static [&'static str] {
        match self {
            KeyKind::Ed25519 => &["-t", "ed25519"],
            KeyKind::Ecdsa => &["-t", "ecdsa", "-b", "256"],
            KeyKind::EcdsaP384 => &["-t", "ecdsa", "-b", "384"],
            KeyKind::EcdsaP521 => &["-t", "ecdsa", "-b", "521"],
            KeyKind::Rsa => &["-t", "rsa", "-b", "3072"],
        }
    }

    fn file_stem(self) -> &'static str {
        match self {
            KeyKind::Ed25519 => "id_ed25519",
            KeyKind::Ecdsa => "id_ecdsa",
            KeyKind::EcdsaP384 => "id_ecdsa384",
            KeyKind::EcdsaP521 => "id_ecdsa521",
            KeyKind::Rsa => "id_rsa",
        }
    }
}

/// Variations of the sshd a test needs.
#[derive(Clone, Debug, Default)]
pub struct SshdOptions {
    /// `PermitOpen` value (e.g. "127.0.0.1:1"): direct-tcpip channels to any other
    /// destination are refused as "administratively prohibited".
    pub permit_open: Option<String>,
    /// Extra sshd_config lines (e.g. "RekeyLimit 1G"). They come first, so they
    /// override the defaults (sshd keeps a keyword's first value).
    pub extra_config: Vec<String>,
    /// Run inside this network namespace, listening on this address, port 22.
    pub netns: Option<(String, Ipv4Addr)>,
    /// Present a host certificate signed by this CA (private key path), for the
    /// listen address as principal.
    pub host_ca: Option<PathBuf>,
}

/// A running sshd, killed on drop.
pub struct Sshd {
    dir: TempDir,
    host: IpAddr,
    port: u16,
    /// The public host key line (`ssh-ed25519 AAAA... comment`).
    host_pub: String,
    client_key: PathBuf,
    known_hosts: PathBuf,
    log: PathBuf,
    /// Makes the names of keys generated later unique.
    keys_made: AtomicU32,
    /// Kills sshd on drop.
    child: ChildGuard,
}

impl Sshd {
    pub async fn start() -> Sshd {
        Sshd::start_with(SshdOptions::default()).await
    }

    pub async fn start_with(opts: SshdOptions) -> Sshd {
        check_tools();
        let dir = tempfile::Builder::new()
            .prefix("jg-sshd-")
            .tempdir()
            .expect("create sshd temp dir");
        let host_key = dir.path().join("ssh_host_ed25519_key");
        keygen(&host_key, &["-t", "ed25519"], None);
        let host_pub = read_pub(&host_key);
        let client_key = dir.path().join("id_ed25519");
        keygen(&client_key, &["-t", "ed25519"], None);
        let authorized_keys = dir.path().join("authorized_keys");
        std::fs::write(&authorized_keys, read_pub(&client_key) + "\n")
            .expect("write authorized_keys");
        // sshd's privilege separation directory; Debian creates it from systemd only.
        std::fs::create_dir_all("/run/sshd").expect("create /run/sshd");
        let log = dir.path().join("sshd.log");

        let (host, fixed_port) = match &opts.netns {
            Some((_, addr)) => (IpAddr::V4(*addr), Some(22)),
            None => (IpAddr::V4(Ipv4Addr::LOCALHOST), None),
        };
        if let Some(ca) = &opts.host_ca {
            run_ok(
                Command::new("ssh-keygen")
                    .arg("-q")
                    .arg("-s")
                    .arg(ca)
                    .args(["-h", "-I", "jg-host", "-n"])
                    .arg(host.to_string())
                    .arg(dir.path().join("ssh_host_ed25519_key.pub")),
                KEYGEN_LIMIT,
            );
        }
        let mut last_log = String::new();
        for attempt in 1..=BIND_ATTEMPTS {
            let port = fixed_port.unwrap_or_else(super::process::free_port);
            let config = dir.path().join("sshd_config");
            let text = sshd_config(dir.path(), host, port, &opts);
            std::fs::write(&config, &text).expect("write sshd_config");
            let logfile = std::fs::File::create(&log).expect("create sshd.log");
            let mut cmd = match &opts.netns {
                Some((ns, _)) => {
                    let mut c = Command::new("ip");
                    c.args(["netns", "exec", ns, SSHD]);
                    c
                }
                None => offline_command(dir.path(), SSHD),
            };
            cmd.arg("-D")
                .arg("-e")
                .arg("-f")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(logfile);
            let mut child = ChildGuard::spawn("sshd", &mut cmd);
            match wait_banner(&mut child, SocketAddr::new(host, port)).await {
                Ok(()) => {
                    let known_hosts = dir.path().join("known_hosts");
                    std::fs::write(
                        &known_hosts,
                        format!("{} {}\n", known_hosts_name(host, port), host_pub),
                    )
                    .expect("write known_hosts");
                    return Sshd {
                        host,
                        port,
                        host_pub,
                        client_key,
                        known_hosts,
                        log,
                        keys_made: AtomicU32::new(0),
                        child,
                        dir,
                    };
                }
                Err(why) => {
                    drop(child);
                    last_log = std::fs::read_to_string(&log).unwrap_or_default();
                    let port_taken = last_log.contains("Address already in use")
                        || last_log.contains("Cannot bind any address");
                    if !(port_taken && fixed_port.is_none() && attempt < BIND_ATTEMPTS) {
                        panic!("sshd did not start: {why}\nsshd_config:\n{text}\nsshd log:\n{last_log}");
                    }
                }
            }
        }
        panic!("sshd could not bind a port in {BIND_ATTEMPTS} attempts:\n{last_log}");
    }

    pub fn host(&self) -> IpAddr {
        self.host
    }

    /// The listening sshd (its per-connection children do the work: the bench
    /// counts their CPU).
    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The login user: the one sshd runs as (root in tests and CI).
    pub fn user(&self) -> &'static str {
        current_user()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The default client key (ed25519, no passphrase), authorized.
    pub fn client_key(&self) -> &Path {
        &self.client_key
    }

    /// A known_hosts file with the right host key, as `[127.0.0.1]:PORT key`.
    pub fn known_hosts(&self) -> &Path {
        &self.known_hosts
    }

    /// The host's name as known_hosts spells it (`[host]:port`, or `host` for 22).
    pub fn known_hosts_name(&self) -> String {
        known_hosts_name(self.host, self.port)
    }

    /// `SHA256:...` of the host key, as `ssh-keygen -l` prints it.
    pub fn host_key_fingerprint(&self) -> String {
        let out = run_ok(
            Command::new("ssh-keygen")
                .arg("-l")
                .arg("-f")
                .arg(self.dir.path().join("ssh_host_ed25519_key.pub")),
            KEYGEN_LIMIT,
        );
        out.split_whitespace()
            .find(|w| w.starts_with("SHA256:"))
            .unwrap_or_else(|| panic!("no fingerprint in ssh-keygen -l output: {out}"))
            .to_string()
    }

    /// Generates a client key of `kind` (encrypted when `passphrase` is given), adds
    /// it to authorized_keys (sshd reads it at each login) and returns its path.
    pub fn new_client_key(&self, kind: KeyKind, passphrase: Option<&str>) -> PathBuf {
        let n = self.keys_made.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.path().join(format!("{}_{n}", kind.file_stem()));
        keygen(&path, kind.keygen_args(), passphrase);
        let mut ak = std::fs::read_to_string(self.dir.path().join("authorized_keys"))
            .expect("read authorized_keys");
        ak.push_str(&read_pub(&path));
        ak.push('\n');
        std::fs::write(self.dir.path().join("authorized_keys"), ak).expect("write authorized_keys");
        path
    }

    /// Generates a client key of `kind` that authorized_keys does not list (a key
    /// that can log in only with a certificate).
    pub fn new_unlisted_key(&self, kind: KeyKind) -> PathBuf {
        let n = self.keys_made.fetch_add(1, Ordering::Relaxed);
        let path = self
            .dir
            .path()
            .join(format!("{}_unlisted_{n}", kind.file_stem()));
        keygen(&path, kind.keygen_args(), None);
        path
    }

    /// A known_hosts file that lists a different ed25519 key for this host (a "changed
    /// host key", as after a MITM or a reinstall).
    pub fn wrong_known_hosts(&self) -> PathBuf {
        let other = self.dir.path().join("other_host_key");
        if !other.exists() {
            keygen(&other, &["-t", "ed25519"], None);
        }
        let path = self.dir.path().join("known_hosts.wrong");
        std::fs::write(
            &path,
            format!("{} {}\n", self.known_hosts_name(), read_pub(&other)),
        )
        .expect("write wrong known_hosts");
        path
    }

    /// A copy of the known_hosts file with hashed host names (`ssh-keygen -H`).
    pub fn hashed_known_hosts(&self) -> PathBuf {
        let path = self.dir.path().join("known_hosts.hashed");
        std::fs::copy(&self.known_hosts, &path).expect("copy known_hosts");
        run_ok(
            Command::new("ssh-keygen").arg("-H").arg("-f").arg(&path),
            KEYGEN_LIMIT,
        );
        let text = std::fs::read_to_string(&path).expect("read hashed known_hosts");
        assert!(
            text.starts_with("|1|") && !text.contains(&self.host.to_string()),
            "ssh-keygen -H did not hash the entry: {text}"
        );
        path
    }

    /// An empty known_hosts file.
    pub fn empty_known_hosts(&self) -> PathBuf {
        let path = self.dir.path().join("known_hosts.empty");
        std::fs::write(&path, "").expect("write empty known_hosts");
        path
    }

    /// Whether `file` has an entry for this host with the right key, asked of
    /// `ssh-keygen -F` (it understands hashed entries).
    pub fn known_hosts_has_host_key(&self, file: &Path) -> bool {
        let out = Command::new("ssh-keygen")
            .arg("-F")
            .arg(self.known_hosts_name())
            .arg("-f")
            .arg(file)
            .output()
            .expect("run ssh-keygen -F");
        let key_b64 = self.host_pub.split_whitespace().nth(1).unwrap_or("-");
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains(key_b64)
    }

    /// sshd's own log (stderr), for assertions and failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// How many logins sshd accepted so far (one per SSH session).
    pub fn logins(&self) -> usize {
        self.log()
            .lines()
            .filter(|l| l.contains("Accepted publickey for"))
            .count()
    }

    /// How many TCP connections sshd accepted so far (logins or not), including the
    /// readiness probe's.
    pub fn connections(&self) -> usize {
        self.log()
            .lines()
            .filter(|l| l.starts_with("Connection from "))
            .count()
    }

    /// Arguments for OpenSSH `ssh` to log in here with `key` and strict host key
    /// checking against `known_hosts` (for validating the fixture and for the `ssh -D`
    /// stand-in).
    pub fn ssh_args(&self, key: &Path, known_hosts: &Path) -> Vec<String> {
        vec![
            "-F".into(),
            "/dev/null".into(),
            "-i".into(),
            key.display().to_string(),
            "-o".into(),
            "IdentitiesOnly=yes".into(),
            "-o".into(),
            format!("UserKnownHostsFile={}", known_hosts.display()),
            "-o".into(),
            "GlobalKnownHostsFile=/dev/null".into(),
            "-o".into(),
            "StrictHostKeyChecking=yes".into(),
            "-o".into(),
            "BatchMode=yes".into(),
            "-p".into(),
            self.port.to_string(),
            format!("{}@{}", self.user(), self.host),
        ]
    }
}

/// A certificate authority: an ed25519 key that signs user certificates (an sshd
/// trusts it with `TrustedUserCAKeys`, see [`CertAuthority::sshd_line`]) or host
/// certificates (`SshdOptions::host_ca`, trusted by `@cert-authority` in known_hosts).
pub struct CertAuthority {
    dir: TempDir,
    key: PathBuf,
}

impl CertAuthority {
    pub fn new() -> CertAuthority {
        check_tools();
        let dir = tempfile::Builder::new()
            .prefix("jg-ca-")
            .tempdir()
            .expect("create CA temp dir");
        let key = dir.path().join("user_ca");
        keygen(&key, &["-t", "ed25519"], None);
        CertAuthority { dir, key }
    }

    /// The sshd_config line that makes sshd trust this CA.
    pub fn sshd_line(&self) -> String {
        format!("TrustedUserCAKeys {}.pub", self.key.display())
    }

    /// Signs `key`'s public half for `principal`, valid for `validity` (ssh-keygen's
    /// `-V` syntax, e.g. "20200101:20200102"; None: forever), with key id `id`.
    /// ssh-keygen writes `<key>-cert.pub`, whose path is returned.
    pub fn sign(&self, key: &Path, id: &str, principal: &str, validity: Option<&str>) -> PathBuf {
        let mut cmd = Command::new("ssh-keygen");
        cmd.arg("-q")
            .arg("-s")
            .arg(&self.key)
            .args(["-I", id, "-n", principal]);
        if let Some(v) = validity {
            cmd.args(["-V", v]);
        }
        let mut public = key.as_os_str().to_owned();
        public.push(".pub");
        cmd.arg(&public);
        run_ok(&mut cmd, KEYGEN_LIMIT);
        let mut cert = key.as_os_str().to_owned();
        cert.push("-cert.pub");
        let cert = PathBuf::from(cert);
        assert!(cert.exists(), "ssh-keygen -s wrote no {}", cert.display());
        cert
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The CA's private key.
    pub fn key(&self) -> &Path {
        &self.key
    }

    /// The CA's public key line (`ssh-ed25519 AAAA... comment`).
    pub fn public(&self) -> String {
        read_pub(&self.key)
    }
}

fn known_hosts_name(host: IpAddr, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

fn sshd_config(dir: &Path, host: IpAddr, port: u16, opts: &SshdOptions) -> String {
    let mut c = String::new();
    let d = dir.display();
    let _ = writeln!(c, "ListenAddress {host}");
    let _ = writeln!(c, "Port {port}");
    let _ = writeln!(c, "HostKey {d}/ssh_host_ed25519_key");
    if opts.host_ca.is_some() {
        let _ = writeln!(c, "HostCertificate {d}/ssh_host_ed25519_key-cert.pub");
    }
    let _ = writeln!(c, "AuthorizedKeysFile {d}/authorized_keys");
    let _ = writeln!(c, "PidFile {d}/sshd.pid");
    for line in &opts.extra_config {
        let _ = writeln!(c, "{line}");
    }
    for line in [
        "UsePAM no",
        "StrictModes no",
        "AllowTcpForwarding yes",
        "PermitRootLogin prohibit-password",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "LogLevel VERBOSE",
        "MaxStartups 100:30:200",
        // A session whose client vanished without a FIN (a cut link, a deleted
        // namespace) would otherwise outlive the test forever.
        "ClientAliveInterval 5",
        "ClientAliveCountMax 3",
    ] {
        let _ = writeln!(c, "{line}");
    }
    if per_source_penalties_supported() {
        let _ = writeln!(c, "PerSourcePenalties no");
    }
    if let Some(p) = &opts.permit_open {
        let _ = writeln!(c, "PermitOpen {p}");
    }
    c
}

/// OpenSSH 9.8 added PerSourcePenalties (which would punish tests that open many
/// sessions); 9.2 rejects the keyword. Asked of `sshd -t` once per test process.
fn per_source_penalties_supported() -> bool {
    static SUPPORTED: OnceLock<bool> = OnceLock::new();
    *SUPPORTED.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let key = dir.path().join("k");
        keygen(&key, &["-t", "ed25519"], None);
        let cfg = dir.path().join("c");
        std::fs::write(
            &cfg,
            format!("HostKey {}\nPerSourcePenalties no\n", key.display()),
        )
        .expect("write probe config");
        Command::new(SSHD)
            .arg("-t")
            .arg("-f")
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    })
}

fn current_user() -> &'static str {
    static USER: OnceLock<String> = OnceLock::new();
    USER.get_or_init(|| {
        run_ok(Command::new("id").arg("-un"), KEYGEN_LIMIT)
            .trim()
            .to_string()
    })
}

/// Fails with a message that says which tool is missing (never skip silently).
fn check_tools() {
    super::require::program(SSHD, "openssh-server");
    super::require::program("/usr/bin/ssh-keygen", "openssh-client");
}

fn keygen(path: &Path, type_args: &[&str], passphrase: Option<&str>) {
    run_ok(
        Command::new("ssh-keygen")
            .arg("-q")
            .args(type_args)
            .arg("-N")
            .arg(passphrase.unwrap_or(""))
            .arg("-C")
            .arg("jumpgate-test")
            .arg("-f")
            .arg(path),
        KEYGEN_LIMIT,
    );
}

fn read_pub(key: &Path) -> String {
    let mut p = key.as_os_str().to_owned();
    p.push(".pub");
    std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("read {}: {e}", Path::new(&p).display()))
        .trim()
        .to_string()
}

/// Waits until `addr` answers with an SSH-2.0 banner, or the child exits, or
/// [`READY_LIMIT`] passes.
async fn wait_banner(child: &mut ChildGuard, addr: SocketAddr) -> Result<(), String> {
    let started = Instant::now();
    let mut last_err = String::from("not tried");
    while started.elapsed() < READY_LIMIT {
        if let Some(status) = child.exited() {
            return Err(format!("sshd exited: {status}"));
        }
        match try_banner(addr).await {
            Ok(()) => return Ok(()),
            Err(e) => last_err = e,
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(format!(
        "no SSH banner on {addr} within {READY_LIMIT:?}: {last_err}"
    ))
}

async fn try_banner(addr: SocketAddr) -> Result<(), String> {
    let limit = Duration::from_secs(2);
    let mut s = tokio::time::timeout(limit, tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|e| format!("connect: {e}"))?;
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(limit, s.read(&mut buf))
        .await
        .map_err(|_| "banner timed out".to_string())?
        .map_err(|e| format!("read banner: {e}"))?;
    if buf[..n].starts_with(b"SSH-2.0-") {
        Ok(())
    } else {
        Err(format!(
            "unexpected banner {:?}",
            String::from_utf8_lossy(&buf[..n])
        ))
    }
}
