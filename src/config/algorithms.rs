//! The algorithm names an upstream's `kex`, `ciphers`, `macs` and
//! `host_key_algorithms` accept (OpenSSH spellings), jumpgate's default
//! lists, and [`resolve`], which applies a configured list to them. The
//! tables name exactly what russh 0.65 implements, minus `none`/`clear` (no
//! encryption or integrity); `ssh::algorithms` turns resolved names into
//! russh's preferences and its tests check every name here against russh.
//! Plain names, so that `config` needs nothing from the SSH layer.
//!
//! A list is either the names, most preferred first, or OpenSSH's modifiers
//! on our defaults: `+name` appends, `-name` removes, `^name` puts first (the
//! first entry's sign applies to the whole list, as in ssh_config). An entry
//! may also be a comma-separated list, as ssh_config writes them.

use super::model::Algorithms;

/// Which of an upstream's algorithm lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Kex,
    Cipher,
    Mac,
    HostKey,
}

impl Kind {
    /// The config key.
    pub fn key(self) -> &'static str {
        match self {
            Kind::Kex => "kex",
            Kind::Cipher => "ciphers",
            Kind::Mac => "macs",
            Kind::HostKey => "host_key_algorithms",
        }
    }

    /// Every name russh implements for this kind, in no particular order.
    pub fn supported(self) -> Vec<&'static str> {
        match self {
            Kind::Kex => KEX.to_vec(),
            Kind::Cipher => CIPHERS.to_vec(),
            Kind::Mac => MACS.to_vec(),
            Kind::HostKey => HOST_KEYS.iter().chain(HOST_CERTS).copied().collect(),
        }
    }

    /// jumpgate's default list, most preferred first.
    pub fn defaults(self) -> Vec<&'static str> {
        match self {
            Kind::Kex => DEFAULT_KEX.to_vec(),
            Kind::Cipher => DEFAULT_CIPHERS.to_vec(),
            Kind::Mac => DEFAULT_MACS.to_vec(),
            Kind::HostKey => HOST_KEYS.to_vec(),
        }
    }
}

/// Whether a host key algorithm name asks for a host certificate.
pub fn is_host_certificate(name: &str) -> bool {
    HOST_CERTS.contains(&name)
}

/// Key exchange methods russh implements (its `ext-info-c` and strict-kex
/// markers are not methods: `ssh::algorithms` always adds them).
const KEX: &[&str] = &[
    "mlkem768x25519-sha256",
    "curve25519-sha256",
    "curve25519-sha256@libssh.org",
    "ecdh-sha2-nistp256",
    "ecdh-sha2-nistp384",
    "ecdh-sha2-nistp521",
    "diffie-hellman-group-exchange-sha256",
    "diffie-hellman-group-exchange-sha1",
    "diffie-hellman-group18-sha512",
    "diffie-hellman-group17-sha512",
    "diffie-hellman-group16-sha512",
    "diffie-hellman-group15-sha512",
    "diffie-hellman-group14-sha256",
    "diffie-hellman-group14-sha1",
    "diffie-hellman-group1-sha1",
];

/// russh's own default order (its SAFE_KEX_ORDER): no SHA-1, no NIST curves.
const DEFAULT_KEX: &[&str] = &[
    "mlkem768x25519-sha256",
    "curve25519-sha256",
    "curve25519-sha256@libssh.org",
    "diffie-hellman-group-exchange-sha256",
    "diffie-hellman-group18-sha512",
    "diffie-hellman-group17-sha512",
    "diffie-hellman-group16-sha512",
    "diffie-hellman-group15-sha512",
    "diffie-hellman-group14-sha256",
];

const CIPHERS: &[&str] = &[
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "chacha20-poly1305@openssh.com",
    "aes128-ctr",
    "aes192-ctr",
    "aes256-ctr",
    "aes128-cbc",
    "aes192-cbc",
    "aes256-cbc",
];

/// AES-GCM first: fastest where the CPU has AES instructions (with it, russh
/// matched OpenSSH's throughput on loopback), and russh does not list it by
/// default.
const DEFAULT_CIPHERS: &[&str] = &[
    "aes128-gcm@openssh.com",
    "chacha20-poly1305@openssh.com",
    "aes256-gcm@openssh.com",
    "aes256-ctr",
    "aes128-ctr",
];

const MACS: &[&str] = &[
    "hmac-sha2-512-etm@openssh.com",
    "hmac-sha2-256-etm@openssh.com",
    "hmac-sha1-etm@openssh.com",
    "hmac-sha2-512",
    "hmac-sha2-256",
    "hmac-sha1",
];

/// russh's default: SHA-2 only, encrypt-then-MAC first.
const DEFAULT_MACS: &[&str] = &[
    "hmac-sha2-512-etm@openssh.com",
    "hmac-sha2-256-etm@openssh.com",
    "hmac-sha2-512",
    "hmac-sha2-256",
];

/// Host key algorithms, in russh's default order (which is also ours).
const HOST_KEYS: &[&str] = &[
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "rsa-sha2-512",
    "rsa-sha2-256",
    "ssh-rsa",
];

/// Host certificate types: listing one asks the server for that certificate
/// (ahead of plain keys, as ssh). Not in the defaults: `ssh::session` asks for
/// certificates by default only where known_hosts trusts a host CA.
const HOST_CERTS: &[&str] = &[
    "ssh-ed25519-cert-v01@openssh.com",
    "ecdsa-sha2-nistp256-cert-v01@openssh.com",
    "ecdsa-sha2-nistp384-cert-v01@openssh.com",
    "ecdsa-sha2-nistp521-cert-v01@openssh.com",
    "rsa-sha2-512-cert-v01@openssh.com",
    "rsa-sha2-256-cert-v01@openssh.com",
    "ssh-rsa-cert-v01@openssh.com",
];

/// Why a configured list is not usable; shown after `path:line: `.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AlgorithmError {
    #[error("{key} = []: list at least one algorithm (or leave {key} out for the defaults)")]
    Empty { key: &'static str },
    #[error("{key}: {name:?} is not supported by jumpgate (russh); supported: {supported}")]
    Unknown {
        key: &'static str,
        name: String,
        supported: String,
    },
    #[error("{key}: removing {removed} leaves no algorithm")]
    NothingLeft { key: &'static str, removed: String },
}

/// The effective list for `kind` (canonical names, most preferred first):
/// `list` checked against what russh implements, with OpenSSH's `+`/`-`/`^`
/// modifiers applied to our defaults. `None` means the defaults.
pub fn resolve(kind: Kind, list: Option<&[String]>) -> Result<Vec<&'static str>, AlgorithmError> {
    let defaults = kind.defaults();
    let Some(list) = list else {
        return Ok(defaults);
    };
    let key = kind.key();
    let entries: Vec<&str> = list
        .iter()
        .flat_map(|e| e.split(','))
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .collect();
    let Some(first) = entries.first() else {
        return Err(AlgorithmError::Empty { key });
    };
    let modifier = first
        .chars()
        .next()
        .filter(|c| matches!(c, '+' | '-' | '^'));
    let supported = kind.supported();
    let mut names = Vec::new();
    for e in &entries {
        let bare = match modifier {
            Some(m) => e.strip_prefix(m).unwrap_or(e),
            None => e,
        };
        match supported.iter().find(|s| **s == bare) {
            Some(s) if !names.contains(s) => names.push(*s),
            Some(_) => {}
            None => {
                return Err(AlgorithmError::Unknown {
                    key,
                    name: (*e).to_owned(),
                    supported: supported.join(", "),
                })
            }
        }
    }
    Ok(match modifier {
        None => names,
        Some('+') => {
            let extra: Vec<_> = names
                .into_iter()
                .filter(|n| !defaults.contains(n))
                .collect();
            defaults.into_iter().chain(extra).collect()
        }
        Some('^') => {
            let rest: Vec<_> = defaults
                .into_iter()
                .filter(|d| !names.contains(d))
                .collect();
            names.into_iter().chain(rest).collect()
        }
        Some(_) => {
            let out: Vec<_> = defaults
                .into_iter()
                .filter(|d| !names.contains(d))
                .collect();
            if out.is_empty() {
                return Err(AlgorithmError::NothingLeft {
                    key,
                    removed: names.join(", "),
                });
            }
            out
        }
    })
}

/// Checks all four lists at once (validation checks each list where it is
/// written, in `config::upstream`).
pub fn check(a: &Algorithms) -> Result<(), AlgorithmError> {
    resolve(Kind::Kex, a.kex.as_deref())?;
    resolve(Kind::Cipher, a.ciphers.as_deref())?;
    resolve(Kind::Mac, a.macs.as_deref())?;
    resolve(Kind::HostKey, a.host_key_algorithms.as_deref())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn unknown_name_lists_the_supported_ones() {
        let e = resolve(
            Kind::Cipher,
            Some(&list(&["aes128-gcm@openssh.com", "3des-cbc"])),
        )
        .expect_err("3des");
        let msg = e.to_string();
        assert!(
            msg.starts_with("ciphers: \"3des-cbc\" is not supported"),
            "{msg}"
        );
        assert!(msg.contains("chacha20-poly1305@openssh.com"), "{msg}");
        assert!(!msg.contains("none"), "{msg}");
        let e = resolve(Kind::Kex, Some(&list(&["none"]))).expect_err("none");
        assert!(e.to_string().contains("curve25519-sha256"), "{e}");
        assert_eq!(
            resolve(Kind::Mac, Some(&[])),
            Err(AlgorithmError::Empty { key: "macs" })
        );
    }

    #[test]
    fn openssh_modifiers_apply_to_the_defaults() {
        let plus = resolve(Kind::Cipher, Some(&list(&["+aes128-cbc,aes256-ctr"]))).expect("+");
        assert_eq!(plus.len(), DEFAULT_CIPHERS.len() + 1);
        assert_eq!(plus.last(), Some(&"aes128-cbc"));
        let minus = resolve(Kind::Cipher, Some(&list(&["-aes128-gcm@openssh.com"]))).expect("-");
        assert_eq!(minus.first(), Some(&"chacha20-poly1305@openssh.com"));
        assert!(!minus.contains(&"aes128-gcm@openssh.com"));
        let caret = resolve(Kind::HostKey, Some(&list(&["^rsa-sha2-512"]))).expect("^");
        assert_eq!(caret[0], "rsa-sha2-512");
        assert_eq!(caret.len(), HOST_KEYS.len());
        let plus = resolve(
            Kind::HostKey,
            Some(&list(&["+ssh-ed25519-cert-v01@openssh.com"])),
        )
        .expect("+cert");
        assert_eq!(plus.len(), HOST_KEYS.len() + 1);
        let all: Vec<String> = Kind::Mac
            .defaults()
            .iter()
            .map(|m| format!("-{m}"))
            .collect();
        assert!(matches!(
            resolve(Kind::Mac, Some(&all)),
            Err(AlgorithmError::NothingLeft { .. })
        ));
    }

    #[test]
    fn defaults_are_supported_and_certificates_are_told_apart() {
        for kind in [Kind::Kex, Kind::Cipher, Kind::Mac, Kind::HostKey] {
            let supported = kind.supported();
            assert!(kind.defaults().iter().all(|d| supported.contains(d)));
        }
        assert!(is_host_certificate("ssh-ed25519-cert-v01@openssh.com"));
        assert!(!is_host_certificate("ssh-ed25519"));
        assert!(Kind::HostKey
            .defaults()
            .iter()
            .all(|n| !is_host_certificate(n)));
    }
}
