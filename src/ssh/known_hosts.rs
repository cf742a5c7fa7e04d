//! Host key verification against OpenSSH known_hosts files: the primary
//! file (read, and written by accept-new) and read-only extra files (ssh's
//! further UserKnownHostsFile entries and GlobalKnownHostsFile).
//!
//! russh's helpers stop at the first line they cannot parse and know no
//! wildcards, negation or markers, so we read the file ourselves: host
//! patterns (`*`, `?`, `!neg`, `[host]:port`), hashed entries (`|1|salt|hash`),
//! `@revoked` (refused) and `@cert-authority` (host certificate authorities,
//! see [`verify_certificate`]). Used by `ssh::session` from `check_server_key`.

use std::io::Write;
use std::path::{Path, PathBuf};

use hmac::{Hmac, KeyInit, Mac};
use russh::keys::{Certificate, HashAlg, PublicKey};
use sha1::Sha1;

use crate::config::{HostKeyCheck, Interface};

#[derive(Debug, thiserror::Error)]
pub enum HostKeyError {
    #[error(
        "host key for {host} is not known (strict checking): the server offered {algo} key \
         {fingerprint}; verify it with the server's admin, then add it with \
         `ssh-keyscan -p {port} {plain} >> {file}` or set {}",
        .interface.host_key_check(HostKeyCheck::AcceptNew)
    )]
    Unknown {
        /// How the user spells settings, for the accept-new hint.
        interface: Interface,
        host: String,
        plain: String,
        port: u16,
        algo: String,
        fingerprint: String,
        file: PathBuf,
    },
    #[error(
        "REMOTE HOST IDENTIFICATION HAS CHANGED for {host}: the server offered {algo} key \
         {fingerprint}, but {file}:{line} records a different one. Someone could be \
         eavesdropping (man-in-the-middle), or the host key was just changed. If you know it \
         changed, remove the old entry with `ssh-keygen -R '{host}' -f {file}`"
    )]
    Changed {
        host: String,
        algo: String,
        fingerprint: String,
        file: PathBuf,
        line: usize,
    },
    #[error("host key {fingerprint} for {host} is marked @revoked in {file}:{line}")]
    Revoked {
        host: String,
        fingerprint: String,
        file: PathBuf,
        line: usize,
    },
    #[error("host certificate of {host} refused: {reason} (@cert-authority lines in {file})")]
    Certificate {
        host: String,
        reason: String,
        file: PathBuf,
    },
    #[error("cannot read known_hosts {file}: {source}")]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot add host key to {file}: {source}")]
    Write {
        file: PathBuf,
        source: std::io::Error,
    },
}

/// What the check decided; `Learned` means accept-new appended the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Known,
    Learned,
    Unchecked,
}

/// The name under which OpenSSH records a host: `host`, or `[host]:port`.
pub fn host_entry_name(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_owned()
    } else {
        format!("[{host}]:{port}")
    }
}

pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// The known_hosts files of an upstream, as OpenSSH reads them.
#[derive(Debug, Clone, Copy)]
pub struct Files<'a> {
    /// Read, and the only file accept-new appends to.
    pub primary: &'a Path,
    /// Read only; a missing or unreadable one counts as empty (as in ssh).
    pub extra: &'a [PathBuf],
}

impl<'a> Files<'a> {
    /// Every file's text, the primary first; only the primary's read errors
    /// (other than not found) are errors.
    fn load(self) -> Result<Vec<(&'a Path, String)>, HostKeyError> {
        let mut texts = vec![(self.primary, read(self.primary)?)];
        for f in self.extra {
            match read(f) {
                Ok(t) => texts.push((f.as_path(), t)),
                Err(e) => tracing::debug!(error = %e, "known_hosts file skipped"),
            }
        }
        Ok(texts)
    }
}

/// Verifies `key` for `host:port` with the given policy; `interface` words
/// the hint of an unknown key.
pub fn verify(
    policy: HostKeyCheck,
    interface: Interface,
    files: Files<'_>,
    host: &str,
    port: u16,
    key: &PublicKey,
) -> Result<Verdict, HostKeyError> {
    if policy == HostKeyCheck::Off {
        return Ok(Verdict::Unchecked);
    }
    let texts = files.load()?;
    let name = host_entry_name(host, port);
    match lookup_all(&texts, &name, key) {
        Found::Match => Ok(Verdict::Known),
        Found::Revoked(file, line) => Err(HostKeyError::Revoked {
            host: name,
            fingerprint: fingerprint(key),
            file: file.to_owned(),
            line,
        }),
        Found::Mismatch(file, line) => Err(HostKeyError::Changed {
            host: name,
            algo: key.algorithm().to_string(),
            fingerprint: fingerprint(key),
            file: file.to_owned(),
            line,
        }),
        Found::Unknown if policy == HostKeyCheck::AcceptNew => {
            append(files.primary, &name, key)?;
            Ok(Verdict::Learned)
        }
        Found::Unknown => Err(HostKeyError::Unknown {
            interface,
            host: name,
            plain: host.to_owned(),
            port,
            algo: key.algorithm().to_string(),
            fingerprint: fingerprint(key),
            file: files.primary.to_owned(),
        }),
    }
}

/// What all files together say about a key, with the file and line that
/// decided it.
#[derive(Debug, PartialEq, Eq)]
enum Found<'a> {
    Match,
    Mismatch(&'a Path, usize),
    Revoked(&'a Path, usize),
    Unknown,
}

/// OpenSSH's precedence over all files: `@revoked` anywhere refuses; else
/// the key recorded anywhere is known; else a different key recorded
/// anywhere (the first one, primary file first) means it changed.
fn lookup_all<'a>(texts: &[(&'a Path, String)], name: &str, key: &PublicKey) -> Found<'a> {
    let found: Vec<(&Path, Lookup)> = texts
        .iter()
        .map(|(f, t)| (*f, lookup(t, name, key)))
        .collect();
    if let Some((f, Lookup::Revoked(l))) =
        found.iter().find(|(_, r)| matches!(r, Lookup::Revoked(_)))
    {
        return Found::Revoked(f, *l);
    }
    if found.iter().any(|(_, r)| *r == Lookup::Match) {
        return Found::Match;
    }
    match found.iter().find(|(_, r)| matches!(r, Lookup::Mismatch(_))) {
        Some((f, Lookup::Mismatch(l))) => Found::Mismatch(f, *l),
        _ => Found::Unknown,
    }
}

fn read(file: &Path) -> Result<String, HostKeyError> {
    match std::fs::read_to_string(file) {
        Ok(t) => Ok(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(source) => Err(HostKeyError::Read {
            file: file.to_owned(),
            source,
        }),
    }
}

/// Verifies a host certificate against the `@cert-authority` lines for
/// `host:port`, as OpenSSH does: signed by a CA trusted for this host, a host
/// certificate, valid now, `host` among its principals (when it lists any),
/// and neither it nor its CA `@revoked`. `Ok(None)` when no CA is trusted for
/// this host: the caller then checks the certificate's key like a plain key
/// (OpenSSH, too, falls back to the plain key).
pub fn verify_certificate(
    policy: HostKeyCheck,
    files: Files<'_>,
    host: &str,
    port: u16,
    cert: &Certificate,
    now: u64,
) -> Result<Option<Verdict>, HostKeyError> {
    if policy == HostKeyCheck::Off {
        return Ok(Some(Verdict::Unchecked));
    }
    let texts = files.load()?;
    let name = host_entry_name(host, port);
    let mut cas = Vec::new();
    // The file named in errors: the first that trusts a CA for this host.
    let mut ca_file = None;
    for (f, t) in &texts {
        let found = cert_authorities(t, &name);
        if !found.is_empty() && ca_file.is_none() {
            ca_file = Some(*f);
        }
        cas.extend(found);
    }
    let Some(ca_file) = ca_file else {
        return Ok(None);
    };
    let refuse = |reason: String| HostKeyError::Certificate {
        host: name.clone(),
        reason,
        file: ca_file.to_owned(),
    };
    let ca = PublicKey::new(cert.signature_key().clone(), "");
    let inner = PublicKey::new(cert.public_key().clone(), "");
    for (what, k) in [("its CA key", &ca), ("its key", &inner)] {
        for (f, t) in &texts {
            if let Lookup::Revoked(line) = lookup(t, &name, k) {
                let at = if *f == ca_file {
                    format!("line {line}")
                } else {
                    format!("{}:{line}", f.display())
                };
                return Err(refuse(format!(
                    "{what} {} is marked @revoked at {at}",
                    fingerprint(k)
                )));
            }
        }
    }
    if !cert.cert_type().is_host() {
        return Err(refuse(
            "it is a user certificate, not a host certificate".into(),
        ));
    }
    let trusted: Vec<_> = cas.iter().map(|k| k.fingerprint(HashAlg::Sha256)).collect();
    if !trusted.contains(&ca.fingerprint(HashAlg::Sha256)) {
        return Err(refuse(format!(
            "signed by CA {}, which is not trusted for {name}",
            fingerprint(&ca)
        )));
    }
    let at = |secs: u64| {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
        humantime::format_rfc3339_seconds(t).to_string()
    };
    if now >= cert.valid_before() {
        return Err(refuse(format!("expired at {}", at(cert.valid_before()))));
    }
    if now < cert.valid_after() {
        return Err(refuse(format!(
            "not valid before {}",
            at(cert.valid_after())
        )));
    }
    if cert.validate_at(now, &trusted).is_err() {
        return Err(refuse("its CA signature does not verify".into()));
    }
    let principals = cert.valid_principals();
    if !principals.is_empty() && !principals.iter().any(|p| p.eq_ignore_ascii_case(host)) {
        return Err(refuse(format!(
            "it is not valid for {host} (principals: {})",
            principals.join(", ")
        )));
    }
    Ok(Some(Verdict::Known))
}

/// Whether any of `files` trusts a host CA for any of `hosts`
/// (`host_entry_name` forms); only then do we ask servers for host
/// certificates.
pub fn has_cert_authority(files: Files<'_>, hosts: &[String]) -> bool {
    let texts = files.load().unwrap_or_default();
    texts
        .iter()
        .any(|(_, t)| hosts.iter().any(|h| !cert_authorities(t, h).is_empty()))
}

/// The CA keys of `@cert-authority` lines whose patterns match `name`.
fn cert_authorities(text: &str, name: &str) -> Vec<PublicKey> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            if f.next() != Some("@cert-authority") {
                return None;
            }
            let (patterns, algo, b64) = (f.next()?, f.next()?, f.next()?);
            if !hosts_match(patterns, name) {
                return None;
            }
            PublicKey::from_openssh(&format!("{algo} {b64}")).ok()
        })
        .collect()
}

#[derive(Debug, PartialEq, Eq)]
enum Lookup {
    Match,
    /// A recorded key of the same type differs (1-based line).
    Mismatch(usize),
    Revoked(usize),
    Unknown,
}

fn lookup(text: &str, name: &str, key: &PublicKey) -> Lookup {
    let mut mismatch = None;
    let mut matched = false;
    for (i, raw) in text.lines().enumerate() {
        let lineno = i + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let Some(mut first) = fields.next() else {
            continue;
        };
        let mut revoked = false;
        if first.starts_with('@') {
            match first {
                "@revoked" => revoked = true,
                // CA keys vouch for certificates only (`verify_certificate`).
                _ => continue,
            }
            let Some(next) = fields.next() else { continue };
            first = next;
        }
        let (Some(algo), Some(b64)) = (fields.next(), fields.next()) else {
            continue;
        };
        if !revoked && !hosts_match(first, name) {
            continue;
        }
        // A line we cannot parse is skipped, as OpenSSH does.
        let Ok(recorded) = PublicKey::from_openssh(&format!("{algo} {b64}")) else {
            continue;
        };
        let same = recorded.key_data() == key.key_data();
        if revoked {
            if same {
                return Lookup::Revoked(lineno);
            }
            continue;
        }
        if same {
            matched = true;
        } else if recorded.algorithm() == key.algorithm() && mismatch.is_none() {
            mismatch = Some(lineno);
        }
    }
    match (matched, mismatch) {
        (true, _) => Lookup::Match,
        (false, Some(l)) => Lookup::Mismatch(l),
        (false, None) => Lookup::Unknown,
    }
}

/// OpenSSH semantics: comma-separated patterns; a matching negated pattern
/// vetoes the line; hashed entries match the exact name only.
fn hosts_match(patterns: &str, name: &str) -> bool {
    if let Some(hashed) = patterns.strip_prefix("|1|") {
        return hashed_match(hashed, name);
    }
    let mut hit = false;
    for p in patterns.split(',') {
        if let Some(neg) = p.strip_prefix('!') {
            if glob(&neg.to_ascii_lowercase(), &name.to_ascii_lowercase()) {
                return false;
            }
        } else if glob(&p.to_ascii_lowercase(), &name.to_ascii_lowercase()) {
            hit = true;
        }
    }
    hit
}

fn hashed_match(hashed: &str, name: &str) -> bool {
    use data_encoding::BASE64;
    let mut parts = hashed.splitn(2, '|');
    let (Some(salt), Some(hash)) = (parts.next(), parts.next()) else {
        return false;
    };
    let (Ok(salt), Ok(hash)) = (
        BASE64.decode(salt.as_bytes()),
        BASE64.decode(hash.as_bytes()),
    ) else {
        return false;
    };
    let Ok(mut mac) = <Hmac<Sha1> as KeyInit>::new_from_slice(&salt) else {
        return false;
    };
    mac.update(name.as_bytes());
    mac.verify_slice(&hash).is_ok()
}

/// `*` and `?` wildcards over bytes.
fn glob(pattern: &str, s: &str) -> bool {
    let (p, s) = (pattern.as_bytes(), s.as_bytes());
    let (mut pi, mut si) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while si < s.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == s[si]) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            mark = si;
            pi += 1;
        } else if let Some(st) = star {
            pi = st + 1;
            mark += 1;
            si = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len()
}

fn append(file: &Path, name: &str, key: &PublicKey) -> Result<(), HostKeyError> {
    let werr = |source| HostKeyError::Write {
        file: file.to_owned(),
        source,
    };
    let openssh = key
        .to_openssh()
        .map_err(|e| werr(std::io::Error::other(e.to_string())))?;
    // Drop the comment: the entry is "name algo base64".
    let mut parts = openssh.split_whitespace();
    let (Some(algo), Some(b64)) = (parts.next(), parts.next()) else {
        return Err(werr(std::io::Error::other("cannot encode host key")));
    };
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(werr)?;
    }
    let needs_newline = std::fs::read(file)
        .map(|b| b.last().is_some_and(|c| *c != b'\n'))
        .unwrap_or(false);
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .map_err(werr)?;
    let lead = if needs_newline { "\n" } else { "" };
    f.write_all(format!("{lead}{name} {algo} {b64}\n").as_bytes())
        .map_err(werr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use russh::keys::{Algorithm, PrivateKey};

    fn only(file: &Path) -> Files<'_> {
        Files {
            primary: file,
            extra: &[],
        }
    }

    fn key() -> PublicKey {
        PrivateKey::random(&mut russh::keys::key::safe_rng(), Algorithm::Ed25519)
            .expect("keygen")
            .public_key()
            .clone()
    }

    fn line(name: &str, k: &PublicKey) -> String {
        let o = k.to_openssh().expect("enc");
        let mut p = o.split_whitespace();
        format!("{name} {} {}", p.next().expect("a"), p.next().expect("b"))
    }

    fn hashed(name: &str) -> String {
        use data_encoding::BASE64;
        let salt = [7u8; 20];
        let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(&salt).expect("hmac");
        mac.update(name.as_bytes());
        let h = mac.finalize().into_bytes();
        format!("|1|{}|{}", BASE64.encode(&salt), BASE64.encode(&h))
    }

    #[test]
    fn plain_hashed_and_wildcard_entries_match() {
        let k = key();
        let n = host_entry_name("10.0.0.1", 2222);
        assert_eq!(n, "[10.0.0.1]:2222");
        assert_eq!(lookup(&line(&n, &k), &n, &k), Lookup::Match);
        assert_eq!(lookup(&line(&hashed(&n), &k), &n, &k), Lookup::Match);
        assert_eq!(
            lookup(&line("*.corp,bastion", &k), "b.corp", &k),
            Lookup::Match
        );
        assert_eq!(
            lookup(&line("*.corp,!b.corp", &k), "b.corp", &k),
            Lookup::Unknown
        );
        assert_eq!(lookup(&line("bastio?", &k), "bastion", &k), Lookup::Match);
    }

    #[test]
    fn changed_key_reports_its_line_and_junk_is_skipped() {
        let (k, other) = (key(), key());
        let text = format!(
            "# comment\n\ngarbage line here\n@cert-authority * {}\n{}\n",
            line("", &other).trim(),
            line("bastion", &other)
        );
        assert_eq!(lookup(&text, "bastion", &k), Lookup::Mismatch(5));
        let both = format!("{text}{}\n", line("bastion", &k));
        assert_eq!(lookup(&both, "bastion", &k), Lookup::Match);
    }

    #[test]
    fn revoked_key_is_refused() {
        let k = key();
        let text = format!("@revoked {}\n{}\n", line("*", &k), line("bastion", &k));
        assert_eq!(lookup(&text, "bastion", &k), Lookup::Revoked(1));
    }

    #[test]
    fn policies() {
        let dir = tempfile::tempdir().expect("tmp");
        let file = dir.path().join("sub/known_hosts");
        let k = key();
        let e = verify(
            HostKeyCheck::Strict,
            Interface::Toml,
            only(&file),
            "h",
            2200,
            &k,
        )
        .expect_err("unknown");
        let msg = e.to_string();
        assert!(msg.contains("SHA256:") && msg.contains("[h]:2200"), "{msg}");
        assert!(msg.contains("set host_key_check = \"accept-new\""), "{msg}");
        // An `up` user is told the ssh option, never the TOML key.
        let e = verify(
            HostKeyCheck::Strict,
            Interface::Ssh,
            only(&file),
            "h",
            2200,
            &k,
        )
        .expect_err("unknown");
        let msg = e.to_string();
        assert!(msg.contains("-o StrictHostKeyChecking=accept-new"), "{msg}");
        assert!(!msg.contains("host_key_check"), "{msg}");
        assert_eq!(
            verify(
                HostKeyCheck::AcceptNew,
                Interface::Toml,
                only(&file),
                "h",
                2200,
                &k
            )
            .expect("learn"),
            Verdict::Learned
        );
        assert_eq!(
            verify(
                HostKeyCheck::Strict,
                Interface::Toml,
                only(&file),
                "h",
                2200,
                &k
            )
            .expect("known"),
            Verdict::Known
        );
        let e = verify(
            HostKeyCheck::AcceptNew,
            Interface::Toml,
            only(&file),
            "h",
            2200,
            &key(),
        )
        .expect_err("changed");
        assert!(e.to_string().contains("HAS CHANGED"), "{e}");
        assert!(e.to_string().contains("known_hosts:1"), "{e}");
        assert_eq!(
            verify(
                HostKeyCheck::Off,
                Interface::Toml,
                only(&file),
                "h",
                2200,
                &key()
            )
            .expect("off"),
            Verdict::Unchecked
        );
    }

    /// A host certificate for `key` signed by `ca`, valid in [after, before).
    fn host_cert(
        ca: &PrivateKey,
        key: &PublicKey,
        principal: &str,
        after: u64,
        before: u64,
    ) -> Certificate {
        let mut b = russh::keys::ssh_key::certificate::Builder::new(
            vec![0u8; 32],
            key.key_data().clone(),
            after,
            before,
        )
        .expect("builder");
        b.cert_type(russh::keys::ssh_key::certificate::CertType::Host)
            .expect("type");
        b.key_id("h").expect("id");
        b.valid_principal(principal).expect("principal");
        b.sign(ca).expect("sign")
    }

    #[test]
    fn host_certificates_need_a_trusted_ca_validity_and_principal() {
        let dir = tempfile::tempdir().expect("tmp");
        let file = dir.path().join("known_hosts");
        let ca =
            PrivateKey::random(&mut russh::keys::key::safe_rng(), Algorithm::Ed25519).expect("ca");
        let ca_pub = ca.public_key().clone();
        let k = key();
        let now = 1_800_000_000;
        let good = host_cert(&ca, &k, "bastion", now - 10, now + 10);
        let check = |c: &Certificate| {
            verify_certificate(HostKeyCheck::Strict, only(&file), "bastion", 2222, c, now)
        };
        // No CA for the host: fall back to the plain key check.
        std::fs::write(&file, line("other.host", &ca_pub)).expect("write");
        assert!(matches!(check(&good), Ok(None)));
        std::fs::write(
            &file,
            format!("@cert-authority {}\n", line("[bastion]:22*", &ca_pub)),
        )
        .expect("write");
        assert!(has_cert_authority(only(&file), &["[bastion]:2222".into()]));
        assert!(!has_cert_authority(only(&file), &["bastion".into()]));
        assert_eq!(check(&good).expect("trusted"), Some(Verdict::Known));
        let expired = host_cert(&ca, &k, "bastion", now - 10, now);
        let e = check(&expired).expect_err("expired").to_string();
        assert!(e.contains("expired at"), "{e}");
        let elsewhere = host_cert(&ca, &k, "other", now - 10, now + 10);
        let e = check(&elsewhere).expect_err("principal").to_string();
        assert!(
            e.contains("not valid for bastion (principals: other)"),
            "{e}"
        );
        let rogue = PrivateKey::random(&mut russh::keys::key::safe_rng(), Algorithm::Ed25519)
            .expect("rogue");
        let e = check(&host_cert(&rogue, &k, "bastion", now - 10, now + 10))
            .expect_err("rogue")
            .to_string();
        assert!(e.contains("which is not trusted for [bastion]:2222"), "{e}");
        let revoked = format!(
            "@cert-authority {}\n@revoked {}\n",
            line("*", &ca_pub),
            line("*", &k)
        );
        std::fs::write(&file, revoked).expect("write");
        let e = check(&good).expect_err("revoked").to_string();
        assert!(e.contains("@revoked at line 2"), "{e}");
    }

    #[test]
    fn precedence_over_several_files() {
        let (k, other) = (key(), key());
        let (a, b) = (Path::new("/a"), Path::new("/b"));
        let check = |ta: String, tb: String| lookup_all(&[(a, ta), (b, tb)], "h", &k);
        // Known in any file wins over a different key in another.
        assert_eq!(check(line("h", &other), line("h", &k)), Found::Match);
        assert_eq!(check(line("h", &k), line("h", &other)), Found::Match);
        // @revoked in any file refuses, even when another file knows the key.
        let revoked = format!("# x\n@revoked {}", line("*", &k));
        assert_eq!(check(line("h", &k), revoked), Found::Revoked(b, 2));
        // A different key only: changed, naming the first file that has one.
        assert_eq!(
            check(String::new(), line("h", &other)),
            Found::Mismatch(b, 1)
        );
        assert_eq!(
            check(line("h", &other), line("h", &other)),
            Found::Mismatch(a, 1)
        );
        assert_eq!(check(String::new(), line("x", &other)), Found::Unknown);
    }

    #[test]
    fn extra_files_are_read_but_never_written() {
        let dir = tempfile::tempdir().expect("tmp");
        let primary = dir.path().join("known_hosts");
        let global = dir.path().join("global");
        let extra = [dir.path().join("missing"), global.clone()];
        let files = Files {
            primary: &primary,
            extra: &extra,
        };
        let (k, other) = (key(), key());
        std::fs::write(&global, line("[h]:2200", &k)).expect("write");
        assert_eq!(
            verify(
                HostKeyCheck::AcceptNew,
                Interface::Toml,
                files,
                "h",
                2200,
                &k
            )
            .expect("known"),
            Verdict::Known
        );
        assert!(!primary.exists(), "accept-new wrote the primary file");
        let e = verify(
            HostKeyCheck::AcceptNew,
            Interface::Toml,
            files,
            "h",
            2200,
            &other,
        )
        .expect_err("changed");
        assert!(
            e.to_string().contains(&format!("{}:1", global.display())),
            "{e}"
        );
        assert!(!primary.exists(), "accept-new wrote the primary file");
        // Unknown everywhere: accept-new learns it into the primary only.
        assert_eq!(
            verify(
                HostKeyCheck::AcceptNew,
                Interface::Toml,
                files,
                "new",
                2200,
                &k
            )
            .expect("learn"),
            Verdict::Learned
        );
        assert!(std::fs::read_to_string(&primary)
            .expect("primary")
            .starts_with("[new]:2200 "));
        assert_eq!(
            std::fs::read_to_string(&global).expect("global"),
            line("[h]:2200", &k)
        );
        // A CA trusted in an extra file counts.
        let ca = key();
        std::fs::write(&global, format!("@cert-authority {}\n", line("*", &ca))).expect("write");
        assert!(has_cert_authority(files, &["[h]:2200".into()]));
        assert!(!has_cert_authority(only(&primary), &["[h]:2200".into()]));
    }

    #[test]
    fn glob_edge_cases() {
        assert!(glob("*", ""));
        assert!(glob("a*b*c", "axxbyyc"));
        assert!(!glob("a*b", "axxc"));
        assert!(glob("[h]:22*", "[h]:2222"));
    }
}
