//! Algorithm lists take effect: an sshd that offers exactly one cipher, key exchange,
//! MAC or host key type is reached when the upstream's list includes it (a real tunnel
//! through `jumpgate run`) and refused with OpenSSH's "no matching ... found" wording by
//! `jumpgate check` when it does not. Unknown names are config errors (exit 78) that
//! list what is supported.

use std::time::Duration;

use crate::support::gate::{check_expect_exit, spawn_expect_exit};
use crate::support::{targets, within, Gate, GateConfig, Sshd, SshdOptions};

const TEST_LIMIT: Duration = Duration::from_secs(120);

/// Exit code of `jumpgate check` when an upstream cannot be reached or logged in to.
const EXIT_RUNTIME: i32 = 1;

async fn sshd_offering(lines: &[&str]) -> Sshd {
    Sshd::start_with(SshdOptions {
        extra_config: lines.iter().map(|l| l.to_string()).collect(),
        ..SshdOptions::default()
    })
    .await
}

/// `jumpgate check` with `cfg`; returns (exit code, stdout and stderr).
fn check(cfg: &GateConfig) -> (Option<i32>, String) {
    let exit = check_expect_exit(cfg);
    (exit.code, format!("{}{}", exit.stdout, exit.stderr))
}

/// The list that includes the sshd's only algorithm logs in and carries a tunnel; one
/// without it (our defaults, and `refused`) fails with a message naming what the server
/// offers and which key to change.
async fn list_takes_effect(
    sshd_lines: &[&str],
    key: &str,
    accepted: &str,
    refused: &str,
    what: &str,
    offer: &str,
) {
    let sshd = sshd_offering(sshd_lines).await;
    let echo = targets::echo().await;

    let good = GateConfig::new(&sshd).upstream_line(&format!("{key} = {accepted}"));
    let gate = Gate::start(&good).await;
    gate.echo_roundtrip(echo.addr(), b"negotiated").await;
    drop(gate);
    let logins = sshd.logins();
    assert!(logins >= 1, "sshd log:\n{}", sshd.log());

    for (name, cfg) in [
        ("defaults", GateConfig::new(&sshd)),
        (
            "refused",
            GateConfig::new(&sshd).upstream_line(&format!("{key} = {refused}")),
        ),
    ] {
        let (code, out) = check(&cfg);
        assert_eq!(code, Some(EXIT_RUNTIME), "{name}: {out}");
        let want = format!("no matching {what} found. Their offer: {offer}");
        assert!(out.contains(&want), "{name}: want {want:?} in:\n{out}");
        assert!(out.contains(&format!("ours ({key})")), "{name}: {out}");
    }

    // The daemon says the same at ERROR, and keeps running (it retries).
    let refused = GateConfig::new(&sshd).upstream_line(&format!("{key} = {refused}"));
    let mut gate = Gate::start_unready(&refused).await;
    let want = format!("no matching {what} found. Their offer: {offer}");
    let line = gate
        .wait_log(Duration::from_secs(20), |l| l.contains(&want))
        .await
        .unwrap_or_else(|| panic!("no {want:?} in the log:\n{}", gate.log_text()));
    assert!(line.contains("ERROR"), "{line}");
    assert!(gate.exited().is_none(), "log:\n{}", gate.log_text());
    assert_eq!(
        sshd.logins(),
        logins,
        "logged in without a common algorithm"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ciphers_list_takes_effect() {
    within(TEST_LIMIT, "test", async {
        list_takes_effect(
            &["Ciphers aes128-cbc"],
            "ciphers",
            "[\"+aes128-cbc\"]",
            "[\"aes256-ctr\", \"chacha20-poly1305@openssh.com\"]",
            "cipher",
            "aes128-cbc",
        )
        .await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kex_list_takes_effect() {
    within(TEST_LIMIT, "test", async {
        list_takes_effect(
            &["KexAlgorithms ecdh-sha2-nistp384"],
            "kex",
            "[\"ecdh-sha2-nistp384\", \"curve25519-sha256\"]",
            "[\"ecdh-sha2-nistp256\"]",
            "key exchange method",
            "ecdh-sha2-nistp384",
        )
        .await;
    })
    .await;
}

/// A MAC matters only with a cipher that has none built in (not GCM or ChaCha20).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn macs_list_takes_effect() {
    within(TEST_LIMIT, "test", async {
        list_takes_effect(
            &["Ciphers aes128-ctr", "MACs hmac-sha1"],
            "macs",
            "[\"hmac-sha1\"]",
            "[\"hmac-sha2-256\", \"hmac-sha2-512-etm@openssh.com\"]",
            "MAC",
            "hmac-sha1",
        )
        .await;
    })
    .await;
}

/// The test sshd has only an ed25519 host key, so it offers only ssh-ed25519.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_key_algorithms_list_takes_effect() {
    within(TEST_LIMIT, "test", async {
        let sshd = sshd_offering(&[]).await;
        let echo = targets::echo().await;
        let good = GateConfig::new(&sshd)
            .upstream_line("host_key_algorithms = [\"rsa-sha2-512\", \"ssh-ed25519\"]");
        let gate = Gate::start(&good).await;
        gate.echo_roundtrip(echo.addr(), b"negotiated").await;
        drop(gate);
        let logins = sshd.logins();
        let bad = GateConfig::new(&sshd)
            .upstream_line("host_key_algorithms = [\"ecdsa-sha2-nistp256\", \"rsa-sha2-256\"]");
        let (code, out) = check(&bad);
        assert_eq!(code, Some(EXIT_RUNTIME), "{out}");
        assert!(
            out.contains("no matching host key type found. Their offer: ssh-ed25519"),
            "{out}"
        );
        assert!(
            out.contains("ours (host_key_algorithms): ecdsa-sha2-nistp256,rsa-sha2-256"),
            "{out}"
        );
        assert_eq!(sshd.logins(), logins, "sshd log:\n{}", sshd.log());
    })
    .await;
}

/// A name russh does not implement: exit 78 with `path:line:`, the bad name and the
/// names that would work.
#[test]
fn unknown_algorithm_name_is_a_config_error_listing_supported_ones() {
    for (line, bad, mentions) in [
        (
            "ciphers = [\"aes128-gcm@openssh.com\", \"3des-cbc\"]",
            "\"3des-cbc\"",
            &["aes256-ctr", "chacha20-poly1305@openssh.com"][..],
        ),
        (
            "kex = [\"sntrup761x25519-sha512@openssh.com\"]",
            "\"sntrup761x25519-sha512@openssh.com\"",
            &["mlkem768x25519-sha256", "curve25519-sha256"][..],
        ),
        (
            "macs = [\"umac-64-etm@openssh.com\"]",
            "\"umac-64-etm@openssh.com\"",
            &["hmac-sha2-256-etm@openssh.com"][..],
        ),
        (
            "host_key_algorithms = [\"ssh-dss\"]",
            "\"ssh-dss\"",
            &["ssh-ed25519", "rsa-sha2-512"][..],
        ),
    ] {
        let toml = format!(
            "[[upstream]]\nname = \"jump\"\nhost = \"127.0.0.1\"\nuser = \"root\"\n\
             identity_files = [\"/nonexistent/id\"]\n{line}\n\n\
             [[listener]]\nname = \"socks\"\nbind = \"127.0.0.1:0\"\n"
        );
        let exit = spawn_expect_exit(&toml);
        let path = exit.config.as_ref().expect("config path").display();
        assert_eq!(exit.code, Some(78), "{line}: {}", exit.stderr);
        let key = line.split(' ').next().unwrap_or_default();
        let want = format!("{path}:6: {key}: {bad} is not supported");
        assert!(
            exit.stderr.contains(&want),
            "want {want:?}:\n{}",
            exit.stderr
        );
        for m in mentions {
            assert!(exit.stderr.contains(m), "{line}: no {m}:\n{}", exit.stderr);
        }
    }
}
