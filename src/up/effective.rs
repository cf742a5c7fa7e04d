//! `jumpgate up -G --effective`: the algorithm lists jumpgate will really
//! offer, in its order, beside what `ssh -G` would print. `-G` alone keeps
//! printing ssh's text word for word (that is its point); russh lacks some
//! of OpenSSH's algorithms (sntrup761x25519-sha512, the umac MACs, ...) and
//! offers others first (mlkem768x25519-sha256), and a user debugging a
//! negotiation needs the real lists. Each list names what ssh would offer
//! that jumpgate drops.

use std::fmt::Write as _;

use crate::config::Upstream;
use crate::ssh::session::offered;
use crate::ssh_config::Resolved;

/// The text printed after `-G`'s own lines.
pub fn render(resolved: &Resolved, upstream: &Upstream) -> String {
    let p = offered(upstream);
    // russh's pseudo-algorithms (ext-info-c, kex-strict-...) are signalling,
    // not key exchanges; ssh -G does not print its own either.
    let kex: Vec<String> = p
        .kex
        .iter()
        .map(|n| n.as_ref().to_owned())
        .filter(|n| !n.starts_with("ext-info-") && !n.starts_with("kex-strict-"))
        .collect();
    let ciphers: Vec<String> = p.cipher.iter().map(|n| n.as_ref().to_owned()).collect();
    let macs: Vec<String> = p.mac.iter().map(|n| n.as_ref().to_owned()).collect();
    let host_keys: Vec<String> = p
        .host_key_certificates
        .iter()
        .map(|a| a.to_certificate_type())
        .chain(p.key.iter().map(|a| a.as_str().to_owned()))
        .collect();

    let mut out = String::from(
        "# --effective: what jumpgate offers, in its order (ssh -G above prints ssh's lists)\n",
    );
    for (name, ours, ssh) in [
        ("kexalgorithms", &kex, &resolved.kex_algorithms),
        ("ciphers", &ciphers, &resolved.ciphers),
        ("macs", &macs, &resolved.macs),
        (
            "hostkeyalgorithms",
            &host_keys,
            &resolved.host_key_algorithms,
        ),
    ] {
        let _ = writeln!(out, "effective-{name} {}", ours.join(","));
        let dropped: Vec<&str> = ssh
            .iter()
            .filter(|n| !ours.contains(n))
            .map(String::as_str)
            .collect();
        if !dropped.is_empty() {
            let _ = writeln!(
                out,
                "# {name}: ssh would offer, jumpgate does not: {}",
                dropped.join(",")
            );
        }
    }
    out
}
