//! From an upstream's algorithm lists (OpenSSH names, checked and resolved
//! by `config::algorithms`) to russh's `Preferred`, which `ssh::session`
//! puts into the russh client settings. The tests check that every name
//! `config::algorithms` accepts is one russh implements.

use std::borrow::Cow;

use russh::keys::Algorithm;
use russh::{cipher, kex, mac, Preferred};

use crate::config::algorithms::{is_host_certificate, resolve, Kind};
use crate::config::Algorithms;

/// Sent with every kex list: `ext-info-c` asks for server-sig-algs (which
/// picks rsa-sha2-512/256 for RSA keys), the strict-kex marker turns on
/// OpenSSH's Terrapin countermeasure. russh's defaults carry both.
const KEX_EXTENSIONS: &[kex::Name] = &[
    kex::EXTENSION_SUPPORT_AS_CLIENT,
    kex::EXTENSION_OPENSSH_STRICT_KEX_AS_CLIENT,
];

/// russh's preference lists for `a`. Lists that do not resolve (which config
/// validation rules out) fall back to the defaults rather than to nothing;
/// names russh does not know (which the tests rule out) are left out.
pub fn preferred(a: &Algorithms) -> Preferred {
    let names = |kind: Kind, list: &Option<Vec<String>>| {
        resolve(kind, list.as_deref()).unwrap_or_else(|_| kind.defaults())
    };
    let kex = names(Kind::Kex, &a.kex)
        .into_iter()
        .filter_map(|n| kex::Name::try_from(n).ok())
        .chain(KEX_EXTENSIONS.iter().copied())
        .collect::<Vec<_>>();
    let cipher = names(Kind::Cipher, &a.ciphers)
        .into_iter()
        .filter_map(|n| cipher::Name::try_from(n).ok())
        .collect::<Vec<_>>();
    let mac = names(Kind::Mac, &a.macs)
        .into_iter()
        .filter_map(|n| mac::Name::try_from(n).ok())
        .collect::<Vec<_>>();
    let (certs, keys): (Vec<&str>, Vec<&str>) = names(Kind::HostKey, &a.host_key_algorithms)
        .into_iter()
        .partition(|n| is_host_certificate(n));
    Preferred {
        kex: Cow::Owned(kex),
        key: Cow::Owned(keys.iter().filter_map(|n| host_key(n)).collect()),
        host_key_certificates: Cow::Owned(certs.iter().filter_map(|n| host_cert(n)).collect()),
        cipher: Cow::Owned(cipher),
        mac: Cow::Owned(mac),
        ..Preferred::default()
    }
}

/// A plain host key algorithm; `Algorithm::new` maps unknown names to
/// `Other`, which russh cannot use, so those are refused here.
fn host_key(name: &str) -> Option<Algorithm> {
    Algorithm::new(name)
        .ok()
        .filter(|a| !matches!(a, Algorithm::Other(_)))
}

/// The key algorithm of a host certificate type.
fn host_cert(name: &str) -> Option<Algorithm> {
    Algorithm::new_certificate(name)
        .ok()
        .filter(|a| !matches!(a, Algorithm::Other(_)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::algorithms::check;
    use russh::keys::HashAlg;

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
        for n in Kind::HostKey.supported() {
            if is_host_certificate(n) {
                let a = host_cert(n).expect(n);
                assert_eq!(a.to_certificate_type(), n);
            } else {
                let a = host_key(n).expect(n);
                assert_eq!(a.as_str(), n);
            }
        }
    }

    #[test]
    fn defaults_are_ours_when_absent() {
        let p = preferred(&Algorithms::default());
        assert_eq!(p.cipher.first(), Some(&cipher::AES_128_GCM));
        assert_eq!(p.cipher.len(), Kind::Cipher.defaults().len());
        let macs: Vec<&str> = p.mac.iter().map(|m| m.as_ref()).collect();
        assert_eq!(macs, Kind::Mac.defaults());
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
}
