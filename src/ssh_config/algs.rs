//! Algorithm lists (Ciphers, MACs, KexAlgorithms, HostKeyAlgorithms) with
//! OpenSSH's `+` (append), `-` (remove), `^` (prepend) modifiers and
//! wildcards, assembled against OpenSSH 9.2's own default and supported
//! lists (read off `ssh -G` and `ssh -Q` of Debian 12's 9.2p1), so that the
//! result is what `ssh -G` prints.

use super::pattern::{match_pattern_list, ListMatch};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlgKind {
    Ciphers,
    Macs,
    Kex,
    HostKey,
}

const DEFAULT_CIPHERS: &str = "chacha20-poly1305@openssh.com,aes128-ctr,aes192-ctr,aes256-ctr,\
aes128-gcm@openssh.com,aes256-gcm@openssh.com";
const ALL_CIPHERS: &str =
    "3des-cbc,aes128-cbc,aes192-cbc,aes256-cbc,aes128-ctr,aes192-ctr,aes256-ctr,\
aes128-gcm@openssh.com,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com";
const DEFAULT_MACS: &str = "umac-64-etm@openssh.com,umac-128-etm@openssh.com,\
hmac-sha2-256-etm@openssh.com,hmac-sha2-512-etm@openssh.com,hmac-sha1-etm@openssh.com,\
umac-64@openssh.com,umac-128@openssh.com,hmac-sha2-256,hmac-sha2-512,hmac-sha1";
const ALL_MACS: &str = "hmac-sha1,hmac-sha1-96,hmac-sha2-256,hmac-sha2-512,hmac-md5,hmac-md5-96,\
umac-64@openssh.com,umac-128@openssh.com,hmac-sha1-etm@openssh.com,hmac-sha1-96-etm@openssh.com,\
hmac-sha2-256-etm@openssh.com,hmac-sha2-512-etm@openssh.com,hmac-md5-etm@openssh.com,\
hmac-md5-96-etm@openssh.com,umac-64-etm@openssh.com,umac-128-etm@openssh.com";
const DEFAULT_KEX: &str = "sntrup761x25519-sha512,sntrup761x25519-sha512@openssh.com,\
curve25519-sha256,curve25519-sha256@libssh.org,ecdh-sha2-nistp256,ecdh-sha2-nistp384,\
ecdh-sha2-nistp521,diffie-hellman-group-exchange-sha256,diffie-hellman-group16-sha512,\
diffie-hellman-group18-sha512,diffie-hellman-group14-sha256";
const ALL_KEX: &str = "diffie-hellman-group1-sha1,diffie-hellman-group14-sha1,\
diffie-hellman-group14-sha256,diffie-hellman-group16-sha512,diffie-hellman-group18-sha512,\
diffie-hellman-group-exchange-sha1,diffie-hellman-group-exchange-sha256,ecdh-sha2-nistp256,\
ecdh-sha2-nistp384,ecdh-sha2-nistp521,curve25519-sha256,curve25519-sha256@libssh.org,\
sntrup761x25519-sha512,sntrup761x25519-sha512@openssh.com";
const DEFAULT_HOST_KEY: &str = "ssh-ed25519-cert-v01@openssh.com,\
ecdsa-sha2-nistp256-cert-v01@openssh.com,ecdsa-sha2-nistp384-cert-v01@openssh.com,\
ecdsa-sha2-nistp521-cert-v01@openssh.com,sk-ssh-ed25519-cert-v01@openssh.com,\
sk-ecdsa-sha2-nistp256-cert-v01@openssh.com,rsa-sha2-512-cert-v01@openssh.com,\
rsa-sha2-256-cert-v01@openssh.com,ssh-ed25519,ecdsa-sha2-nistp256,ecdsa-sha2-nistp384,\
ecdsa-sha2-nistp521,sk-ssh-ed25519@openssh.com,sk-ecdsa-sha2-nistp256@openssh.com,\
rsa-sha2-512,rsa-sha2-256";
const ALL_HOST_KEY: &str =
    "ssh-ed25519,ssh-ed25519-cert-v01@openssh.com,sk-ssh-ed25519@openssh.com,\
sk-ssh-ed25519-cert-v01@openssh.com,ecdsa-sha2-nistp256,ecdsa-sha2-nistp256-cert-v01@openssh.com,\
ecdsa-sha2-nistp384,ecdsa-sha2-nistp384-cert-v01@openssh.com,ecdsa-sha2-nistp521,\
ecdsa-sha2-nistp521-cert-v01@openssh.com,sk-ecdsa-sha2-nistp256@openssh.com,\
sk-ecdsa-sha2-nistp256-cert-v01@openssh.com,webauthn-sk-ecdsa-sha2-nistp256@openssh.com,ssh-dss,\
ssh-dss-cert-v01@openssh.com,ssh-rsa,ssh-rsa-cert-v01@openssh.com,rsa-sha2-256,\
rsa-sha2-256-cert-v01@openssh.com,rsa-sha2-512,rsa-sha2-512-cert-v01@openssh.com";

impl AlgKind {
    fn default_list(self) -> &'static str {
        match self {
            Self::Ciphers => DEFAULT_CIPHERS,
            Self::Macs => DEFAULT_MACS,
            Self::Kex => DEFAULT_KEX,
            Self::HostKey => DEFAULT_HOST_KEY,
        }
    }

    fn all(self) -> &'static str {
        match self {
            Self::Ciphers => ALL_CIPHERS,
            Self::Macs => ALL_MACS,
            Self::Kex => ALL_KEX,
            Self::HostKey => ALL_HOST_KEY,
        }
    }

    /// OpenSSH's message for a bad list, e.g. "Bad SSH2 cipher spec".
    fn bad(self) -> &'static str {
        match self {
            Self::Ciphers => "Bad SSH2 cipher spec",
            Self::Macs => "Bad SSH2 MAC spec",
            Self::Kex => "Bad SSH2 KexAlgorithms",
            Self::HostKey => "Bad key types",
        }
    }
}

/// Checks a configured value as ssh does when reading it: every name (up to
/// an empty one) must be supported; host key names may be wildcards that
/// match something. A `-` list is not checked.
pub fn validate(kind: AlgKind, spec: &str) -> Result<(), String> {
    if spec.starts_with('-') {
        return Ok(());
    }
    let list = spec.strip_prefix(['+', '^']).unwrap_or(spec);
    let all: Vec<&str> = kind.all().split(',').collect();
    for name in list.split(',') {
        if name.is_empty() {
            break;
        }
        let ok = if kind == AlgKind::HostKey && name.contains(['*', '?']) {
            all.iter().any(|a| super::pattern::match_pattern(a, name))
        } else {
            all.contains(&name)
        };
        if !ok {
            return Err(format!("{} '{spec}'.", kind.bad()));
        }
    }
    Ok(())
}

/// The effective list for a configured value (None: the default).
pub fn assemble(kind: AlgKind, spec: Option<&str>) -> Result<Vec<String>, String> {
    let def = kind.default_list();
    let spec = match spec {
        None | Some("") => return Ok(split(def)),
        Some(s) => s,
    };
    let list = if let Some(rest) = spec.strip_prefix('+') {
        cat(def, rest)
    } else if let Some(rest) = spec.strip_prefix('-') {
        let out: Vec<String> = split(def)
            .into_iter()
            .filter(|n| match_pattern_list(n, rest, false) != ListMatch::Yes)
            .collect();
        return non_empty(kind, spec, out);
    } else if let Some(rest) = spec.strip_prefix('^') {
        cat(rest, def)
    } else {
        spec.to_owned()
    };
    let all = split(kind.all());
    let mut out: Vec<String> = Vec::new();
    for pat in list.split(',') {
        if pat.starts_with('!') {
            return Err(format!(
                "{} '{spec}': negation is not allowed here.",
                kind.bad()
            ));
        }
        for name in &all {
            if match_pattern_list(name, pat, false) == ListMatch::Yes && !out.contains(name) {
                out.push(name.clone());
            }
        }
    }
    non_empty(kind, spec, out)
}

fn non_empty(kind: AlgKind, spec: &str, out: Vec<String>) -> Result<Vec<String>, String> {
    if out.is_empty() {
        Err(format!("{} '{spec}': no algorithm left.", kind.bad()))
    } else {
        Ok(out)
    }
}

fn split(s: &str) -> Vec<String> {
    s.split(',')
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `a` then the names of `b` not already in `a` (kex_names_cat).
fn cat(a: &str, b: &str) -> String {
    let mut out: Vec<&str> = a.split(',').filter(|n| !n.is_empty()).collect();
    for n in b.split(',') {
        if !n.is_empty() && !out.contains(&n) {
            out.push(n);
        }
    }
    out.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn joined(kind: AlgKind, spec: &str) -> String {
        assemble(kind, Some(spec)).expect("assembles").join(",")
    }

    #[test]
    fn modifiers_as_ssh_prints_them() {
        assert_eq!(
            joined(AlgKind::Ciphers, "^aes256-gcm@openssh.com"),
            "aes256-gcm@openssh.com,chacha20-poly1305@openssh.com,aes128-ctr,aes192-ctr,aes256-ctr,aes128-gcm@openssh.com"
        );
        assert_eq!(
            joined(AlgKind::Ciphers, "-aes128*,chacha20-poly1305@openssh.com"),
            "aes192-ctr,aes256-ctr,aes256-gcm@openssh.com"
        );
        assert_eq!(
            joined(AlgKind::Ciphers, "aes128-ctr,aes128-ctr"),
            "aes128-ctr"
        );
        assert_eq!(
            joined(AlgKind::HostKey, "ssh-ed*"),
            "ssh-ed25519,ssh-ed25519-cert-v01@openssh.com"
        );
        assert!(joined(AlgKind::Kex, "+diffie-hellman-group1-sha1")
            .ends_with(",diffie-hellman-group14-sha256,diffie-hellman-group1-sha1"));
        assert_eq!(assemble(AlgKind::Macs, None).unwrap().len(), 10);
    }

    #[test]
    fn validation_messages() {
        assert_eq!(
            validate(AlgKind::Ciphers, "bogus"),
            Err("Bad SSH2 cipher spec 'bogus'.".into())
        );
        assert!(validate(AlgKind::Ciphers, "aes*").is_err());
        assert!(validate(AlgKind::HostKey, "ssh-ed*").is_ok());
        assert!(validate(AlgKind::HostKey, "aes*").is_err());
        assert!(validate(AlgKind::Kex, "-anything").is_ok());
        assert!(validate(AlgKind::Macs, "+hmac-md5").is_ok());
    }
}
