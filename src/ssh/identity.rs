//! Private keys for public-key authentication: loaded once at start, with
//! OpenSSH's permission check and passphrases from an env var or a file (the
//! daemon never prompts). Used by `ssh::session` for authentication.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use russh::keys::PrivateKey;

use crate::config::PassphraseSource;

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
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Identity({}, {})",
            self.path.display(),
            self.key.algorithm()
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

    #[test]
    fn passphrase_file_drops_trailing_newline() {
        let dir = tempfile::tempdir().expect("tmp");
        let f = dir.path().join("pass");
        std::fs::write(&f, "s3cret\n").expect("write");
        let got = read_passphrase(&PassphraseSource::File(f)).expect("read");
        assert_eq!(got, "s3cret");
    }
}
