//! The algorithm names jumpgate accepts in an upstream's `kex`, `ciphers`,
//! `macs` and `host_key_algorithms` (OpenSSH spellings), jumpgate's defaults,
//! and the mapping onto russh's `Preferred`. The tables list exactly what
//! russh 0.65 implements, minus `none`/`clear` (no encryption or integrity).
//! `config` checks names with [`resolve`]; `ssh::session` builds the russh
//! client settings with [`preferred`].
//!
//! A list is either the names, most preferred first, or OpenSSH's modifiers
//! on our defaults: `+name` appends, `-name` removes, `^name` puts first (the
//! first entry's sign applies to the whole list, as in ssh_config). An entry
//! may also be a comma-separated list, as ssh_config writes them.

use std::borrow::Cow;

use russh::keys::{Algorithm, EcdsaCurve, HashAlg};
use russh::{cipher, kex, mac, Preferred};

use crate::config::Algorithms;

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
            Kind::Kex => KEX.iter().map(|n| n.as_ref()).collect(),
            Kind::Cipher => CIPHERS.iter().map(|n| n.as_ref()).collect(),
            Kind::Mac => MACS.iter().map(|n| n.as_ref()).collect(),
            Kind::HostKey => HOST_KEYS
                .iter()
                .chain(HOST_CERTS)
                .map(|(n, _)| *n)
                .collect(),
        }
    }

    /// jumpgate's default list, most preferred first.
    pub fn defaults(self) -> Vec<&'static str> {
        match self {
            Kind::Kex => DEFAULT_KEX.iter().map(|n| n.as_ref()).collect(),
            Kind::Cipher => DEFAULT_CIPHERS.iter().map(|n| n.as_ref()).collect(),
            Kind::Mac => DEFAULT_MACS.iter().map(|n| n.as_ref()).collect(),
            Kind::HostKey => HOST_KEYS.iter().map(|(n, _)| *n).collect(),
        }
    }
}

/// Key exchange methods russh implements (its `ext-info-c` and strict-kex
/// markers are not methods: we always add them).
const KEX: &[kex::Name] = &[
    kex::MLKEM768X25519_SHA256,
    kex::CURVE25519,
    kex::CURVE25519_PRE_RFC_8731,
    kex::ECDH_SHA2_NISTP256,
    kex::ECDH_SHA2_NISTP384,
    kex::ECDH_SHA2_NISTP521,
    kex::DH_GEX_SHA256,
    kex::DH_GEX_SHA1,
    kex::DH_G18_SHA512,
    kex::DH_G17_SHA512,
    kex::DH_G16_SHA512,
    kex::DH_G15_SHA512,
    kex::DH_G14_SHA256,
    kex::DH_G14_SHA1,
    kex::DH_G1_SHA1,
];

/// russh's own default order (its SAFE_KEX_ORDER): no SHA-1, no NIST curves.
const DEFAULT_KEX: &[kex::Name] = &[
    kex::MLKEM768X25519_SHA256,
    kex::CURVE25519,
    kex::CURVE25519_PRE_RFC_8731,
    kex::DH_GEX_SHA256,
    kex::DH_G18_SHA512,
    kex::DH_G17_SHA512,
    kex::DH_G16_SHA512,
    kex::DH_G15_SHA512,
    kex::DH_G14_SHA256,
];

/// Sent with every kex list: `ext-info-c` asks for server-sig-algs (which
/// picks rsa-sha2-512/256 for RSA keys), the strict-kex marker turns on
/// OpenSSH's Terrapin countermeasure. russh's defaults carry both.
const KEX_EXTENSIONS: &[kex::Name] = &[
    kex::EXTENSION_SUPPORT_AS_CLIENT,
    kex::EXTENSION_OPENSSH_STRICT_KEX_AS_CLIENT,
];

const CIPHERS: &[cipher::Name] = &[
    cipher::AES_128_GCM,
    cipher::AES_256_GCM,
    cipher::CHACHA20_POLY1305,
    cipher::AES_128_CTR,
    cipher::AES_192_CTR,
    cipher::AES_256_CTR,
    cipher::AES_128_CBC,
    cipher::AES_192_CBC,
    cipher::AES_256_CBC,
];

/// AES-GCM first: fastest where the CPU has AES instructions, and russh does
/// not list it by default (DESIGN.md, "Facts").
const DEFAULT_CIPHERS: &[cipher::Name] = &[
    cipher::AES_128_GCM,
    cipher::CHACHA20_POLY1305,
    cipher::AES_256_GCM,
    cipher::AES_256_CTR,
    cipher::AES_128_CTR,
];

const MACS: &[mac::Name] = &[
    mac::HMAC_SHA512_ETM,
    mac::HMAC_SHA256_ETM,
    mac::HMAC_SHA1_ETM,
    mac::HMAC_SHA512,
    mac::HMAC_SHA256,
    mac::HMAC_SHA1,
];

/// russh's default: SHA-2 only, encrypt-then-MAC first.
const DEFAULT_MACS: &[mac::Name] = &[
    mac::HMAC_SHA512_ETM,
    mac::HMAC_SHA256_ETM,
    mac::HMAC_SHA512,
    mac::HMAC_SHA256,
];

/// Host key algorithms, in russh's default order (which is also ours).
const HOST_KEYS: &[(&str, Algorithm)] = &[
    ("ssh-ed25519", Algorithm::Ed25519),
    (
        "ecdsa-sha2-nistp256",
        Algorithm::Ecdsa {
            curve: EcdsaCurve::NistP256,
        },
    ),
    (
        "ecdsa-sha2-nistp384",
        Algorithm::Ecdsa {
            curve: EcdsaCurve::NistP384,
        },
    ),
    (
        "ecdsa-sha2-nistp521",
        Algorithm::Ecdsa {
            curve: EcdsaCurve::NistP521,
        },
    ),
    (
        "rsa-sha2-512",
        Algorithm::Rsa {
            hash: Some(HashAlg::Sha512),
        },
    ),
    (
        "rsa-sha2-256",
        Algorithm::Rsa {
            hash: Some(HashAlg::Sha256),
        },
    ),
    ("ssh-rsa", Algorithm::Rsa { hash: None }),
];

/// Host certificate types: listing one asks the server for that certificate
/// (ahead of plain keys, as ssh). Not in the defaults: `ssh::session` asks for
/// certificates by default only where known_hosts trusts a host CA.
const HOST_CERTS: &[(&str, Algorithm)] = &[
    ("ssh-ed25519-cert-v01@openssh.com", Algorithm::Ed25519),
    (
        "ecdsa-sha2-nistp256-cert-v01@openssh.com",
        Algorithm::Ecdsa {
            curve: EcdsaCurve::NistP256,
        },
    ),
    (
        "ecdsa-sha2-nistp384-cert-v01@openssh.com",
        Algorithm::Ecdsa {
            curve: EcdsaCurve::NistP384,
        },
    ),
    (
        "ecdsa-sha2-nistp521-cert-v01@openssh.com",
        Algorithm::Ecdsa {
            curve: EcdsaCurve::NistP521,
        },
    ),
    (
        "rsa-sha2-512-cert-v01@openssh.com",
        Algorithm::Rsa {
            hash: Some(HashAlg::Sha512),
        },
    ),
    (
        "rsa-sha2-256-cert-v01@openssh.com",
        Algorithm::Rsa {
            hash: Some(HashAlg::Sha256),
        },
    ),
    (
        "ssh-rsa-cert-v01@openssh.com",
        Algorithm::Rsa { hash: None },
    ),
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

/// Checks all four lists (for config validation).
pub fn check(a: &Algorithms) -> Result<(), AlgorithmError> {
    resolve(Kind::Kex, a.kex.as_deref())?;
    resolve(Kind::Cipher, a.ciphers.as_deref())?;
    resolve(Kind::Mac, a.macs.as_deref())?;
    resolve(Kind::HostKey, a.host_key_algorithms.as_deref())?;
    Ok(())
}

/// russh's preference lists for `a`. Lists that do not resolve (which config
/// validation rules out) fall back to the defaults rather than to nothing.
pub fn preferred(a: &Algorithms) -> Preferred {
    let names = |kind: Kind, list: &Option<Vec<String>>| {
        resolve(kind, list.as_deref()).unwrap_or_else(|_| kind.defaults())
    };
    let kex = names(Kind::Kex, &a.kex)
        .into_iter()
        .filter_map(|n| KEX.iter().find(|k| k.as_ref() == n).copied())
        .chain(KEX_EXTENSIONS.iter().copied())
        .collect::<Vec<_>>();
    let cipher = names(Kind::Cipher, &a.ciphers)
        .into_iter()
        .filter_map(|n| CIPHERS.iter().find(|c| c.as_ref() == n).copied())
        .collect::<Vec<_>>();
    let mac = names(Kind::Mac, &a.macs)
        .into_iter()
        .filter_map(|n| MACS.iter().find(|m| m.as_ref() == n).copied())
        .collect::<Vec<_>>();
    let host_keys = names(Kind::HostKey, &a.host_key_algorithms);
    let pick = |table: &[(&str, Algorithm)]| {
        host_keys
            .iter()
            .filter_map(|n| table.iter().find(|(k, _)| k == n).map(|(_, a)| a.clone()))
            .collect::<Vec<_>>()
    };
    Preferred {
        kex: Cow::Owned(kex),
        key: Cow::Owned(pick(HOST_KEYS)),
        host_key_certificates: Cow::Owned(pick(HOST_CERTS)),
        cipher: Cow::Owned(cipher),
        mac: Cow::Owned(mac),
        ..Preferred::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn tables_match_what_russh_parses() {
        for n in Kind::Cipher.supported() {
            assert!(cipher::Name::try_from(n).is_ok(), "{n}");
        }
        for n in Kind::Kex.supported() {
            assert!(kex::Name::try_from(n).is_ok(), "{n}");
        }
        for n in Kind::Mac.supported() {
            assert!(mac::Name::try_from(n).is_ok(), "{n}");
        }
        for (n, a) in HOST_KEYS {
            assert_eq!(a.as_str(), *n);
        }
        for (n, a) in HOST_CERTS {
            assert_eq!(a.to_certificate_type(), *n);
        }
    }

    #[test]
    fn defaults_are_ours_when_absent() {
        let p = preferred(&Algorithms::default());
        assert_eq!(p.cipher.first(), Some(&cipher::AES_128_GCM));
        assert_eq!(p.cipher.len(), DEFAULT_CIPHERS.len());
        assert_eq!(p.mac.as_ref(), DEFAULT_MACS);
        assert_eq!(p.key.as_ref(), Preferred::DEFAULT.key.as_ref());
        // Same kex list as russh's default, extensions included.
        let mut ours: Vec<_> = p.kex.iter().map(|k| k.as_ref().to_owned()).collect();
        let mut theirs: Vec<_> = Preferred::DEFAULT
            .kex
            .iter()
            .filter(|k| {
                ![
                    kex::EXTENSION_SUPPORT_AS_SERVER,
                    kex::EXTENSION_OPENSSH_STRICT_KEX_AS_SERVER,
                ]
                .contains(k)
            })
            .map(|k| k.as_ref().to_owned())
            .collect();
        ours.sort();
        theirs.sort();
        assert_eq!(ours, theirs);
    }

    #[test]
    fn explicit_list_keeps_order_and_adds_kex_extensions() {
        let a = Algorithms {
            kex: Some(list(&["ecdh-sha2-nistp384", "curve25519-sha256"])),
            ciphers: Some(list(&["aes256-ctr", "aes128-cbc"])),
            macs: Some(list(&["hmac-sha1"])),
            host_key_algorithms: Some(list(&["rsa-sha2-256"])),
        };
        check(&a).expect("valid");
        let p = preferred(&a);
        let kex: Vec<&str> = p.kex.iter().map(|k| k.as_ref()).collect();
        assert_eq!(
            kex,
            [
                "ecdh-sha2-nistp384",
                "curve25519-sha256",
                "ext-info-c",
                "kex-strict-c-v00@openssh.com"
            ]
        );
        assert_eq!(
            p.cipher.as_ref(),
            [cipher::AES_256_CTR, cipher::AES_128_CBC]
        );
        assert_eq!(p.mac.as_ref(), [mac::HMAC_SHA1]);
        assert_eq!(
            p.key.as_ref(),
            [Algorithm::Rsa {
                hash: Some(HashAlg::Sha256)
            }]
        );
    }

    #[test]
    fn host_certificate_names_ask_for_certificates() {
        let p = preferred(&Algorithms::default());
        assert!(p.host_key_certificates.is_empty());
        let a = Algorithms {
            host_key_algorithms: Some(list(&[
                "ssh-ed25519-cert-v01@openssh.com",
                "ssh-ed25519",
                "rsa-sha2-512-cert-v01@openssh.com",
            ])),
            ..Algorithms::default()
        };
        let p = preferred(&a);
        assert_eq!(p.key.as_ref(), [Algorithm::Ed25519]);
        assert_eq!(
            p.host_key_certificates.as_ref(),
            [
                Algorithm::Ed25519,
                Algorithm::Rsa {
                    hash: Some(HashAlg::Sha512)
                }
            ]
        );
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
}
