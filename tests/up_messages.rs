//! `jumpgate up`'s messages speak ssh's language: a user who came through
//! ssh's flags and ssh_config is told ssh options (`-o
//! StrictHostKeyChecking=accept-new`, ssh's "no such identity" line), never
//! the TOML keys `run` users see. Against a real sshd on loopback.

use std::path::Path;
use std::time::Duration;

use crate::support::gate::{check_expect_exit, JUMPGATE};
use crate::support::process::offline_command;
use crate::support::{free_port, within, GateConfig, Sshd};

const LIMIT: Duration = Duration::from_secs(60);

/// `jumpgate up ARGS` run to its exit (bounded), in `dir`, with `dir` as
/// HOME (so no key of the machine's user is found) and no agent.
async fn up_exit(dir: &Path, args: &[String]) -> (Option<i32>, String) {
    let mut cmd = tokio::process::Command::from(offline_command(dir, JUMPGATE));
    cmd.arg("up")
        .args(args)
        .env("NO_COLOR", "1")
        .env("HOME", dir)
        .env_remove("SSH_AUTH_SOCK")
        .current_dir(dir);
    let out = crate::support::process::run_for(&mut cmd, Duration::from_secs(30)).await;
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// ssh's flags for `sshd`, without ssh_config, plus `extra`.
fn args(sshd: &Sshd, known_hosts: &Path, extra: &[String]) -> Vec<String> {
    let mut a = vec![
        "-F".to_owned(),
        "none".to_owned(),
        "-D".to_owned(),
        free_port().to_string(),
        "-p".to_owned(),
        sshd.port().to_string(),
        "-o".to_owned(),
        format!("UserKnownHostsFile={}", known_hosts.display()),
    ];
    a.extend_from_slice(extra);
    a.push(format!("{}@{}", sshd.user(), sshd.host()));
    a
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_host_key_hint_names_the_ssh_option() {
    within(LIMIT, "up unknown host key", async {
        let sshd = Sshd::start().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let key = sshd.client_key().display().to_string();
        let empty = sshd.empty_known_hosts();
        let (code, err) = up_exit(dir.path(), &args(&sshd, &empty, &["-i".into(), key])).await;
        assert_eq!(code, Some(78), "{err}");
        assert!(err.contains(&sshd.host_key_fingerprint()), "{err}");
        assert!(
            err.contains("-o StrictHostKeyChecking=accept-new"),
            "no ssh option in the hint:\n{err}"
        );
        assert!(!err.contains("host_key_check"), "a TOML key for up:\n{err}");
    })
    .await;
}

/// ssh 9.2 with `-o IdentityFile=/missing` (or IdentityFile in ssh_config)
/// says `no such identity: /missing: No such file or directory` before
/// "Permission denied"; with `-i /missing` it warns `Warning: Identity file
/// /missing not accessible: No such file or directory.` at start. Both
/// checked against real `ssh` on this machine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_identity_file_is_named_as_ssh_names_it() {
    within(LIMIT, "up missing identity", async {
        let sshd = Sshd::start().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("no-such-key");
        let shown = missing.display().to_string();
        let kh = sshd.known_hosts().to_path_buf();

        let opt = vec!["-o".to_owned(), format!("IdentityFile={shown}")];
        let (code, err) = up_exit(dir.path(), &args(&sshd, &kh, &opt)).await;
        assert_eq!(code, Some(78), "{err}");
        assert!(err.contains("Permission denied"), "{err}");
        assert!(
            err.contains(&format!(
                "no such identity: {shown}: No such file or directory"
            )),
            "not ssh's words:\n{err}"
        );
        assert!(!err.contains("identity_files"), "a TOML key for up:\n{err}");

        let dash_i = vec!["-i".to_owned(), shown.clone()];
        let (code, err) = up_exit(dir.path(), &args(&sshd, &kh, &dash_i)).await;
        assert_eq!(code, Some(78), "{err}");
        assert!(
            err.contains(&format!(
                "Warning: Identity file {shown} not accessible: No such file or directory."
            )),
            "not ssh's warning:\n{err}"
        );
        // No key at all: the hint is in ssh's terms.
        assert!(err.contains("-i KEY or IdentityFile"), "{err}");
        assert!(!err.contains("identity_files"), "a TOML key for up:\n{err}");
    })
    .await;
}

/// `ssh -Q WHAT`: the algorithms this machine's OpenSSH (the test sshd's
/// build) knows.
fn openssh_knows(what: &str) -> Vec<String> {
    let out = std::process::Command::new("ssh")
        .args(["-Q", what])
        .output()
        .expect("run ssh -Q");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// `-G` prints ssh's own lists (ssh_config's tests compare it with `ssh
/// -G`); `-G --effective` adds what jumpgate really offers, mlkem first, and
/// names what ssh would offer that jumpgate drops. Every kex and cipher it
/// prints that the test sshd also knows really negotiates (a login through
/// `jumpgate check` with that one algorithm); none it prints is unknown to
/// both OpenSSH and jumpgate's config (which would be a made-up name).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dash_g_effective_prints_what_is_really_offered_and_it_negotiates() {
    within(Duration::from_secs(240), "up -G --effective", async {
        let sshd = Sshd::start().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let kh = sshd.known_hosts().to_path_buf();
        let mut a = args(&sshd, &kh, &[]);
        a.insert(0, "-G".into());
        let plain = up_stdout(dir.path(), &a).await;
        assert!(
            !plain.contains("effective-"),
            "-G alone printed more than ssh:\n{plain}"
        );
        a.insert(1, "--effective".into());
        let text = up_stdout(dir.path(), &a).await;
        assert!(text.starts_with(&plain), "-G's own lines changed:\n{text}");
        let list = |key: &str| -> Vec<String> {
            let prefix = format!("effective-{key} ");
            let line = text
                .lines()
                .find_map(|l| l.strip_prefix(prefix.as_str()))
                .unwrap_or_else(|| panic!("no {prefix:?} line:\n{text}"));
            line.split(',').map(str::to_owned).collect()
        };
        let kex = list("kexalgorithms");
        assert_eq!(kex[0], "mlkem768x25519-sha256", "{text}");
        assert!(
            text.contains("# macs: ssh would offer, jumpgate does not: umac-64-etm@openssh.com"),
            "the dropped umac MACs are not named:\n{text}"
        );
        let ciphers = list("ciphers");
        assert!(!list("macs").is_empty() && !list("hostkeyalgorithms").is_empty());

        let mut tried = 0;
        for (key, names, what) in [("kex", &kex, "kex"), ("ciphers", &ciphers, "cipher")] {
            let known = openssh_knows(what);
            for name in names.iter().filter(|n| known.contains(n)) {
                let cfg = GateConfig::new(&sshd).upstream_line(&format!("{key} = [\"{name}\"]"));
                let exit = check_expect_exit(&cfg);
                assert_eq!(
                    exit.code,
                    Some(0),
                    "{key} = {name} printed by --effective but not negotiated:\n{}{}",
                    exit.stdout,
                    exit.stderr
                );
                tried += 1;
            }
        }
        assert!(tried >= 8, "only {tried} algorithms tried:\n{text}");
    })
    .await;
}

/// `jumpgate up ARGS`'s stdout, which must exit 0 (bounded).
async fn up_stdout(dir: &Path, args: &[String]) -> String {
    let mut cmd = tokio::process::Command::from(offline_command(dir, JUMPGATE));
    cmd.arg("up")
        .args(args)
        .env("HOME", dir)
        .env_remove("SSH_AUTH_SOCK")
        .current_dir(dir);
    let out = crate::support::process::run_for(&mut cmd, Duration::from_secs(30)).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
