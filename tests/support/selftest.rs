//! Tests of the test support itself, kept out of the support files because the e2e
//! bench compiles some of them (`process`, `require`, `sshd`): the fixture sshd,
//! the resolver and log helpers, and the prerequisite checks.

use std::path::Path;
use std::time::Duration;

use super::process::{offline_nsswitch, run_for, strip_ansi};
use super::require::{on_path, program};
use super::sshd::{KeyKind, Sshd};

// === process ===

#[test]
fn strip_ansi_removes_colours() {
    assert_eq!(
        strip_ansi("\u{1b}[2m2026\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m listening"),
        "2026  INFO listening"
    );
}

#[test]
fn offline_nsswitch_keeps_other_databases() {
    let nss = offline_nsswitch("passwd: files\nhosts:   files dns\ngroup: files\n");
    assert!(nss.contains("passwd: files\n"));
    assert!(nss.contains("group: files\n"));
    assert!(nss.contains("hosts: files\n"));
    assert!(!nss.contains("dns"));
}

// === require ===

#[test]
#[should_panic(expected = "this test cannot run: none of [\"jg-no-such-program\"]")]
fn a_missing_program_fails_the_test() {
    on_path(&["jg-no-such-program"], "nothing");
}

#[test]
fn a_present_program_is_found() {
    assert!(program("/bin/sh", "dash").is_file());
    assert!(on_path(&["jg-no-such-program", "sh"], "dash").is_file());
}

// === sshd ===

/// The fixture itself: OpenSSH's client logs in with strict host key checking and
/// every key kind, and the wrong known_hosts is refused. If this fails, every
/// jumpgate test would fail for a reason that is not jumpgate's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixture_sshd_accepts_openssh_client() {
    let sshd = Sshd::start().await;
    // The PID is sshd's own (the offline-resolver wrapper execs it): the bench
    // counts CPU from there.
    let comm = std::fs::read_to_string(format!("/proc/{}/comm", sshd.pid())).unwrap_or_default();
    assert_eq!(comm.trim(), "sshd", "pid {} is not sshd", sshd.pid());
    let ssh = |key: &Path, kh: &Path| {
        let mut c = tokio::process::Command::new("ssh");
        c.args(sshd.ssh_args(key, kh)).arg("true");
        c
    };
    let limit = Duration::from_secs(30);
    let out = run_for(&mut ssh(sshd.client_key(), sshd.known_hosts()), limit).await;
    assert!(
        out.status.success(),
        "ssh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for kind in [KeyKind::Ecdsa, KeyKind::Rsa] {
        let key = sshd.new_client_key(kind, None);
        let out = run_for(&mut ssh(&key, sshd.known_hosts()), limit).await;
        assert!(
            out.status.success(),
            "ssh {kind:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let hashed = sshd.hashed_known_hosts();
    assert!(sshd.known_hosts_has_host_key(&hashed));
    let out = run_for(&mut ssh(sshd.client_key(), &hashed), limit).await;
    assert!(
        out.status.success(),
        "ssh hashed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let wrong = sshd.wrong_known_hosts();
    assert!(!sshd.known_hosts_has_host_key(&wrong));
    let out = run_for(&mut ssh(sshd.client_key(), &wrong), limit).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains(&sshd.host_key_fingerprint()),
        "{err}"
    );
    assert_eq!(sshd.logins(), 4, "sshd log:\n{}", sshd.log());
}
