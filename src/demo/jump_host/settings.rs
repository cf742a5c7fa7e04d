//! The demo jump host's russh server settings: who may try which login method, which
//! ciphers are offered, rekey limits, keepalives and timeouts. Pure data for
//! `russh::server::run_stream`; used by the accept loop in `mod.rs` and nothing else.

use std::borrow::Cow;
use std::time::Duration;

use russh::keys::PrivateKey;
use russh::server;
use russh::{cipher, MethodKind, MethodSet, Preferred, SshId};

/// Ciphers we accept, aes128-gcm first. In SSH the client's order decides; listing
/// aes128-gcm at all matters because russh leaves it out by default and it is the
/// fastest cipher for both russh and OpenSSH here.
const CIPHERS: &[cipher::Name] = &[
    cipher::AES_128_GCM,
    cipher::CHACHA20_POLY1305,
    cipher::AES_256_GCM,
    cipher::AES_256_CTR,
    cipher::AES_192_CTR,
    cipher::AES_128_CTR,
];

/// The server configuration for a jump host with `host_key`: public-key logins only.
pub(super) fn server_config(host_key: PrivateKey) -> server::Config {
    let mut methods = MethodSet::empty();
    methods.push(MethodKind::PublicKey);
    // russh aborts a session (Error::Pending) when more than two windows of channel data
    // arrive during a rekey it started itself; with several busy channels that happens.
    // A loopback demo host gains nothing from byte-count rekeys, so only the hourly
    // time-based one remains. (`Limits::new` would assert on these values.)
    let limits = russh::Limits {
        rekey_read_limit: usize::MAX,
        rekey_write_limit: usize::MAX,
        ..russh::Limits::default()
    };
    server::Config {
        server_id: SshId::Standard(Cow::Borrowed(concat!(
            "SSH-2.0-jumpgate_",
            env!("CARGO_PKG_VERSION"),
            " demo-jump-host"
        ))),
        methods,
        // Rejections are deliberately slow in russh (1 s by default); here they only
        // slow down tests. OpenSSH probes with "none" first: answer that at once.
        auth_rejection_time: Duration::from_millis(50),
        auth_rejection_time_initial: Some(Duration::ZERO),
        keys: vec![host_key],
        limits,
        preferred: Preferred {
            cipher: Cow::Borrowed(CIPHERS),
            ..Preferred::default()
        },
        max_auth_attempts: 6,
        // Idle sessions are the normal state of a pool; dead peers are found by keepalives.
        inactivity_timeout: None,
        keepalive_interval: Some(Duration::from_secs(15)),
        keepalive_max: 3,
        nodelay: true,
        ..server::Config::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_key_only_and_aes128_gcm_first() {
        let key = super::super::generate_key().unwrap();
        let config = server_config(key);
        assert_eq!(&config.methods[..], &[MethodKind::PublicKey]);
        assert_eq!(config.preferred.cipher.first(), Some(&cipher::AES_128_GCM));
        assert_eq!(config.keys.len(), 1);
        assert!(
            matches!(&config.server_id, SshId::Standard(id) if id.ends_with(" demo-jump-host")),
            "{:?}",
            config.server_id
        );
    }
}
