//! Private keys for public-key authentication: loaded once at start, with
//! OpenSSH's permission check and passphrases from an env var or a file (the
//! daemon never prompts), and the OpenSSH user certificates that go with
//! them (`<key>-cert.pub` next to a key, as ssh finds it, and the upstream's
//! `certificate_files`). Loaded by `daemon`, `cli` (check), `up` and `demo`;
//! used by `ssh::session` for authentication.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use russh::keys::{Certificate, HashAlg, PrivateKey};
use tracing::warn;

use crate::config::{Interface, PassphraseSource, Setting, Upstream};

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error(
        "{path}: UNPROTECTED PRIVATE KEY FILE: permissions {mode:04o} are too open. It is \
         required that your private key files are NOT accessible by others; this key is \
         refused. Fix: chmod 600 {path}"
    )]
    Unprotected { path: DisplayPath, mode: u32 },
    #[error("{path}: cannot read identity file: {source}")]
    Read {
        path: DisplayPath,
        source: std::io::Error,
    },
    #[error(
        "{path}: the key is encrypted and no passphrase is configured; set passphrase_env or \
         passphrase_file for this upstream"
    )]
    NeedsPassphrase { path: DisplayPath },
    #[error("{path}: wrong passphrase (from {source_desc})")]
    BadPassphrase {
        path: DisplayPath,
        source_desc: String,
    },
    #[error("{path}: not a private key jumpgate can read: {msg}")]
    Parse { path: DisplayPath, msg: String },
    #[error("{path}: cannot read certificate file: {source}")]
    CertRead {
        path: DisplayPath,
        source: std::io::Error,
    },
    #[error("{path}: not an OpenSSH certificate jumpgate can read: {msg}")]
    CertParse { path: DisplayPath, msg: String },
    #[error(
        "{path}: a host certificate; certificate_files takes user certificates \
         (ssh-keygen -s CA -I ID -n USER key.pub)"
    )]
    HostCert { path: DisplayPath },
    #[error(
        "{path}: certifies key {fingerprint}, which no identity file holds; add that key to \
         {} (certificates for agent keys are not supported)",
        .interface.key(Setting::IdentityFiles)
    )]
    CertUnmatched {
        path: DisplayPath,
        fingerprint: String,
        /// How the user names identity files (TOML key or ssh option).
        interface: Interface,
    },
    #[error("passphrase: environment variable {0} is not set")]
    PassphraseEnv(String),
    #[error("passphrase file {path}: {source}")]
    PassphraseFile {
        path: DisplayPath,
        source: std::io::Error,
    },
}

#[derive(Debug, Clone)]
pub struct DisplayPath(pub PathBuf);

impl std::fmt::Display for DisplayPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0.display())
    }
}

/// A loaded key and where it came from (for messages).
#[derive(Clone)]
pub struct Identity {
    pub path: PathBuf,
    pub key: Arc<PrivateKey>,
    /// User certificates for this key, tried before the plain key (as ssh).
    pub certificates: Vec<UserCert>,
}

/// An OpenSSH user certificate and where it came from.
#[derive(Clone, Debug)]
pub struct UserCert {
    pub path: PathBuf,
    pub cert: Certificate,
}

impl UserCert {
    /// Why the certificate is not valid at `now` (seconds since the epoch),
    /// judged by our clock; the server judges by its own.
    pub fn validity_problem(&self, now: u64) -> Option<String> {
        let at = |secs: u64| {
            let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
            humantime::format_rfc3339_seconds(t).to_string()
        };
        if now >= self.cert.valid_before() {
            Some(format!("EXPIRED at {}", at(self.cert.valid_before())))
        } else if now < self.cert.valid_after() {
            Some(format!("not valid before {}", at(self.cert.valid_after())))
        } else {
            None
        }
    }

    /// Why a server may refuse this certificate whatever its validity: russh
    /// 0.65 offers an RSA certificate only as `ssh-rsa-cert-v01@openssh.com`
    /// (the SHA-1 name), which OpenSSH 8.8 and later refuse by default.
    pub fn caveat(&self) -> Option<&'static str> {
        self.cert.algorithm().is_rsa().then_some(
            "RSA certificates go out as ssh-rsa-cert-v01@openssh.com, which OpenSSH 8.8+ \
             refuses by default; certify an ed25519 or ECDSA key instead",
        )
    }

    /// `path (algorithm, key id "ID")` for messages.
    pub fn describe(&self) -> String {
        format!(
            "{} ({}, key id {:?})",
            self.path.display(),
            self.cert.algorithm().to_certificate_type(),
            self.cert.key_id()
        )
    }
}

/// Seconds since the epoch by the local clock.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Identity({}, {}, {} certificates)",
            self.path.display(),
            self.key.algorithm(),
            self.certificates.len()
        )
    }
}

/// OpenSSH's default identities, in its order, used when none are configured.
pub fn default_identity_paths(home: &Path) -> Vec<PathBuf> {
    ["id_ed25519", "id_ecdsa", "id_rsa"]
        .iter()
        .map(|n| home.join(".ssh").join(n))
        .collect()
}

/// Loads every configured key; with none configured, the default ones that
/// exist (missing defaults are not an error, as with ssh).
pub fn load_all(
    configured: &[PathBuf],
    passphrase: Option<&PassphraseSource>,
) -> Result<Vec<Identity>, IdentityError> {
    let pass = passphrase.map(read_passphrase).transpose()?;
    let pass_desc = passphrase.map(|p| format!("{p:?}")).unwrap_or_default();
    if configured.is_empty() {
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/"));
        return default_identity_paths(&home)
            .into_iter()
            .filter(|p| p.exists())
            .map(|p| load(&p, pass.as_deref(), &pass_desc))
            .collect();
    }
    configured
        .iter()
        .map(|p| load(p, pass.as_deref(), &pass_desc))
        .collect()
}

/// The upstream's keys, without certificates. Identity files that came
/// from ssh_config (`Upstream::skip_encrypted_identities`) and need a
/// passphrase are skipped with a warning and left to the agent, as
/// `jumpgate up` never prompts; other problems (permissions, format) are
/// reported with the file named.
pub fn load_keys(u: &Upstream) -> Result<Vec<Identity>, IdentityError> {
    if !u.skip_encrypted_identities {
        return load_all(&u.identity_files, u.passphrase.as_ref());
    }
    let usable: Vec<PathBuf> = u
        .identity_files
        .iter()
        .filter(|p| match load(p, None, "") {
            Err(IdentityError::NeedsPassphrase { .. }) => {
                warn!(identity = %p.display(), "encrypted key skipped: jumpgate up does not prompt; add it to ssh-agent");
                false
            }
            _ => true,
        })
        .cloned()
        .collect();
    load_all(&usable, u.passphrase.as_ref())
}

/// The upstream's identities with their certificates: `<identity>-cert.pub`
/// when it exists and certifies that key (as ssh), then each of
/// `certificate_files`, given to the identity whose key it certifies.
pub fn load_upstream(u: &Upstream) -> Result<Vec<Identity>, IdentityError> {
    let mut ids = load_keys(u)?;
    for id in &mut ids {
        let mut path = id.path.clone().into_os_string();
        path.push("-cert.pub");
        let path = PathBuf::from(path);
        if !path.exists() {
            continue;
        }
        // ssh, too, only warns about a companion certificate it cannot use.
        match load_cert(&path) {
            Ok(c) if c.cert.public_key() == id.key.public_key().key_data() => {
                id.certificates.push(c)
            }
            Ok(_) => warn!(
                certificate = %path.display(), key = %id.path.display(),
                "certificate does not certify the key next to it; not used"
            ),
            Err(e) => warn!(error = %e, "certificate next to an identity file not used"),
        }
    }
    for path in &u.certificate_files {
        let c = load_cert(path)?;
        let owner = ids
            .iter_mut()
            .find(|id| c.cert.public_key() == id.key.public_key().key_data());
        match owner {
            Some(id) => {
                if !id.certificates.iter().any(|have| have.cert == c.cert) {
                    id.certificates.push(c);
                }
            }
            None => {
                return Err(IdentityError::CertUnmatched {
                    interface: u.interface,
                    path: DisplayPath(path.clone()),
                    fingerprint: c.cert.public_key().fingerprint(HashAlg::Sha256).to_string(),
                })
            }
        }
    }
    let now = unix_now();
    for c in ids.iter().flat_map(|id| &id.certificates) {
        if let Some(problem) = c.validity_problem(now) {
            warn!(certificate = %c.describe(), "certificate {problem}: the server will refuse it");
        }
        if let Some(caveat) = c.caveat() {
            warn!(certificate = %c.describe(), "{caveat}");
        }
    }
    Ok(ids)
}

/// Reads a user certificate (`ssh-keygen -s` output).
pub fn load_cert(path: &Path) -> Result<UserCert, IdentityError> {
    let dp = || DisplayPath(path.to_owned());
    let text = std::fs::read_to_string(path)
        .map_err(|source| IdentityError::CertRead { path: dp(), source })?;
    let cert = Certificate::from_openssh(text.trim()).map_err(|e| IdentityError::CertParse {
        path: dp(),
        msg: e.to_string(),
    })?;
    if cert.cert_type().is_host() {
        return Err(IdentityError::HostCert { path: dp() });
    }
    Ok(UserCert {
        path: path.to_owned(),
        cert,
    })
}

fn read_passphrase(src: &PassphraseSource) -> Result<String, IdentityError> {
    match src {
        PassphraseSource::Env(var) => {
            std::env::var(var).map_err(|_| IdentityError::PassphraseEnv(var.clone()))
        }
        PassphraseSource::File(path) => std::fs::read_to_string(path)
            // A trailing newline from `echo pass > file` is not part of it.
            .map(|s| s.trim_end_matches(['\r', '\n']).to_owned())
            .map_err(|source| IdentityError::PassphraseFile {
                path: DisplayPath(path.clone()),
                source,
            }),
    }
}

pub fn load(
    path: &Path,
    passphrase: Option<&str>,
    pass_desc: &str,
) -> Result<Identity, IdentityError> {
    let dp = || DisplayPath(path.to_owned());
    let meta =
        std::fs::metadata(path).map_err(|source| IdentityError::Read { path: dp(), source })?;
    let mode = meta.permissions().mode() & 0o7777;
    // Same rule as OpenSSH's sshkey_perm_ok: nothing for group or others.
    if mode & 0o077 != 0 {
        return Err(IdentityError::Unprotected { path: dp(), mode });
    }
    let text = std::fs::read_to_string(path)
        .map_err(|source| IdentityError::Read { path: dp(), source })?;
    let key = match russh::keys::decode_secret_key(&text, passphrase) {
        Ok(k) => k,
        Err(russh::keys::Error::KeyIsEncrypted) => {
            return Err(IdentityError::NeedsPassphrase { path: dp() })
        }
        Err(e) if passphrase.is_some() && looks_like_bad_passphrase(&e) => {
            return Err(IdentityError::BadPassphrase {
                path: dp(),
                source_desc: pass_desc.to_owned(),
            })
        }
        Err(e) => {
            return Err(IdentityError::Parse {
                path: dp(),
                msg: e.to_string(),
            })
        }
    };
    Ok(Identity {
        path: path.to_owned(),
        key: Arc::new(key),
        certificates: Vec::new(),
    })
}

fn looks_like_bad_passphrase(e: &russh::keys::Error) -> bool {
    let s = format!("{e:?} {e}").to_ascii_lowercase();
    s.contains("crypto")
        || s.contains("decrypt")
        || s.contains("passphrase")
        || s.contains("padding")
}

#[cfg(test)]
mod tests {
    use super::*;
    use russh::keys::{Algorithm, PrivateKey};

    fn write_key(dir: &Path, mode: u32, pass: Option<&str>) -> PathBuf {
        let mut k =
            PrivateKey::random(&mut russh::keys::key::safe_rng(), Algorithm::Ed25519).expect("key");
        if let Some(p) = pass {
            k = k
                .encrypt(&mut russh::keys::key::safe_rng(), p)
                .expect("encrypt");
        }
        let path = dir.join(format!("id_{mode:o}_{}", pass.is_some()));
        let pem = k.to_openssh(Default::default()).expect("pem");
        std::fs::write(&path, pem.as_bytes()).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        path
    }

    #[test]
    fn group_readable_key_is_refused_with_chmod_advice() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = write_key(dir.path(), 0o644, None);
        let e = load(&p, None, "").expect_err("0644").to_string();
        assert!(e.contains("UNPROTECTED PRIVATE KEY FILE"), "{e}");
        assert!(e.contains(&format!("chmod 600 {}", p.display())), "{e}");
        assert!(e.contains("0644"), "{e}");
        assert!(load(&write_key(dir.path(), 0o600, None), None, "").is_ok());
    }

    #[test]
    fn encrypted_key_needs_the_right_passphrase() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = write_key(dir.path(), 0o600, Some("s3cret"));
        let e = load(&p, None, "").expect_err("no pass").to_string();
        assert!(e.contains("passphrase_env"), "{e}");
        assert!(load(&p, Some("s3cret"), "env:X").is_ok());
        let e = load(&p, Some("wrong"), "env:X")
            .expect_err("bad pass")
            .to_string();
        assert!(
            e.contains("wrong passphrase") || e.contains("not a private key"),
            "{e}"
        );
    }

    /// A certificate of `cert_type` for `key`'s public half, signed by a fresh CA.
    fn cert_for(key: &Path, cert_type: russh::keys::ssh_key::certificate::CertType) -> String {
        use russh::keys::ssh_key::certificate::Builder;
        let private = russh::keys::load_secret_key(key, None).expect("load key");
        let ca =
            PrivateKey::random(&mut russh::keys::key::safe_rng(), Algorithm::Ed25519).expect("ca");
        let mut b = Builder::new(
            vec![0u8; 32],
            private.public_key().key_data().clone(),
            0,
            10,
        )
        .expect("builder");
        b.cert_type(cert_type).expect("type");
        b.key_id("unit").expect("id");
        b.valid_principal("ci").expect("principal");
        b.sign(&ca).expect("sign").to_openssh().expect("encode")
    }

    fn upstream(key: &Path, certs: &[&Path]) -> Upstream {
        let list = |ps: &[&Path]| {
            ps.iter()
                .map(|p| format!("{:?}", p.display().to_string()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let toml = format!(
            "[[upstream]]\nname = \"u\"\nhost = \"h\"\nuser = \"ci\"\n\
             identity_files = [{}]\ncertificate_files = [{}]\n\
             [[listener]]\nname = \"l\"\nbind = \"127.0.0.1:0\"\n",
            list(&[key]),
            list(certs)
        );
        crate::config::Config::from_toml(&toml, Path::new("t.toml"))
            .expect("config")
            .upstreams
            .remove(0)
    }

    #[test]
    fn certificates_are_found_next_to_keys_and_matched_by_key() {
        use russh::keys::ssh_key::certificate::CertType;
        let dir = tempfile::tempdir().expect("tmp");
        let key = write_key(dir.path(), 0o600, None);
        let other = write_key(dir.path(), 0o400, None);
        let companion = PathBuf::from(format!("{}-cert.pub", key.display()));

        // A companion that certifies another key is ignored (ssh warns, too).
        std::fs::write(&companion, cert_for(&other, CertType::User)).expect("write");
        let ids = load_upstream(&upstream(&key, &[])).expect("load");
        assert!(ids[0].certificates.is_empty());

        std::fs::write(&companion, cert_for(&key, CertType::User)).expect("write");
        let ids = load_upstream(&upstream(&key, &[])).expect("load");
        assert_eq!(ids[0].certificates.len(), 1);
        let c = &ids[0].certificates[0];
        assert!(c.describe().contains("key id \"unit\""), "{}", c.describe());
        assert_eq!(
            c.validity_problem(100).as_deref(),
            Some("EXPIRED at 1970-01-01T00:00:10Z")
        );
        assert_eq!(c.validity_problem(5), None);

        // Listed again in certificate_files: still one.
        let ids = load_upstream(&upstream(&key, &[&companion])).expect("load");
        assert_eq!(ids[0].certificates.len(), 1);

        let stranger = dir.path().join("stranger-cert.pub");
        std::fs::write(&stranger, cert_for(&other, CertType::User)).expect("write");
        let e = load_upstream(&upstream(&key, &[&stranger])).expect_err("unmatched");
        assert!(matches!(e, IdentityError::CertUnmatched { .. }), "{e}");
        let host = dir.path().join("host-cert.pub");
        std::fs::write(&host, cert_for(&key, CertType::Host)).expect("write");
        let e = load_upstream(&upstream(&key, &[&host])).expect_err("host cert");
        assert!(e.to_string().contains("a host certificate"), "{e}");
        let junk = dir.path().join("junk-cert.pub");
        std::fs::write(&junk, "ssh-ed25519-cert-v01@openssh.com AAAA").expect("write");
        let e = load_upstream(&upstream(&key, &[&junk])).expect_err("junk");
        assert!(e.to_string().contains("not an OpenSSH certificate"), "{e}");
    }

    #[test]
    fn encrypted_keys_from_ssh_config_are_left_to_the_agent() {
        let dir = tempfile::tempdir().expect("tmp");
        let plain = write_key(dir.path(), 0o600, None);
        let locked = write_key(dir.path(), 0o600, Some("s3cret"));
        let mut u = upstream(&plain, &[]);
        u.identity_files = vec![locked.clone(), plain.clone()];
        // Listed in the TOML table: the encrypted key must load.
        let e = load_keys(&u).expect_err("no passphrase");
        assert!(matches!(e, IdentityError::NeedsPassphrase { .. }), "{e}");
        // From ssh_config: skipped, the others load.
        u.skip_encrypted_identities = true;
        let ids = load_keys(&u).expect("skipped");
        let paths: Vec<&Path> = ids.iter().map(|i| i.path.as_path()).collect();
        assert_eq!(paths, [plain.as_path()]);
    }

    #[test]
    fn passphrase_file_drops_trailing_newline() {
        let dir = tempfile::tempdir().expect("tmp");
        let f = dir.path().join("pass");
        std::fs::write(&f, "s3cret\n").expect("write");
        let got = read_passphrase(&PassphraseSource::File(f)).expect("read");
        assert_eq!(got, "s3cret");
    }
}
