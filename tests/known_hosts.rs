//! Host keys from several known_hosts files, as OpenSSH reads them: the
//! `known_hosts` file (written by accept-new) and read-only
//! `global_known_hosts` files; and the ssh-agent at `agent_socket` (ssh's
//! IdentityAgent PATH) instead of `$SSH_AUTH_SOCK`. Driven by `jumpgate
//! check` against a real sshd and a real ssh-agent.

use std::path::Path;
use std::time::Duration;

use crate::support::gate::{check_expect_exit, Exit};
use crate::support::process::ChildGuard;
use crate::support::{within, GateConfig, KeyKind, Sshd};

const TEST_LIMIT: Duration = Duration::from_secs(120);
/// `jumpgate check` for an unknown or changed host key or a refused login (as `up`).
const EX_CONFIG: i32 = 78;

fn output(exit: &Exit) -> String {
    format!("stdout:\n{}\nstderr:\n{}", exit.stdout, exit.stderr)
}

fn global(files: &[&Path]) -> String {
    let list: Vec<String> = files
        .iter()
        .map(|f| format!("{:?}", f.display().to_string()))
        .collect();
    format!("global_known_hosts = [{}]", list.join(", "))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_key_only_in_a_global_file_logs_in() {
    within(TEST_LIMIT, "test", async {
        let sshd = Sshd::start().await;
        let empty = sshd.empty_known_hosts();
        let cfg = GateConfig::new(&sshd).known_hosts(Some(&empty));
        // The fixture relies on the global file: without it, strict refuses.
        let exit = check_expect_exit(&cfg);
        assert_eq!(exit.code, Some(EX_CONFIG), "{}", output(&exit));
        assert!(exit.stdout.contains("is not known"), "{}", output(&exit));

        let missing = sshd.empty_known_hosts().with_extension("missing");
        let cfg = cfg.upstream_line(&global(&[&missing, sshd.known_hosts()]));
        let exit = check_expect_exit(&cfg);
        assert_eq!(exit.code, Some(0), "{}", output(&exit));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_key_in_a_global_file_names_that_file_and_line() {
    within(TEST_LIMIT, "test", async {
        let sshd = Sshd::start().await;
        let empty = sshd.empty_known_hosts();
        let wrong = sshd.wrong_known_hosts();
        let cfg = GateConfig::new(&sshd)
            .known_hosts(Some(&empty))
            .host_key_check("accept-new")
            .upstream_line(&global(&[&wrong]));
        let exit = check_expect_exit(&cfg);
        assert_eq!(exit.code, Some(EX_CONFIG), "{}", output(&exit));
        let at = format!("{}:1", wrong.display());
        assert!(
            exit.stdout
                .contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
                && exit.stdout.contains(&at),
            "expected a changed-key error naming {at}; {}",
            output(&exit)
        );
        assert_eq!(std::fs::read_to_string(&empty).expect("read"), "");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_new_does_not_copy_a_globally_known_key() {
    within(TEST_LIMIT, "test", async {
        let sshd = Sshd::start().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let primary = dir.path().join("known_hosts");
        let cfg = GateConfig::new(&sshd)
            .known_hosts(Some(&primary))
            .host_key_check("accept-new");
        let with_global = cfg.clone().upstream_line(&global(&[sshd.known_hosts()]));
        let exit = check_expect_exit(&with_global);
        assert_eq!(exit.code, Some(0), "{}", output(&exit));
        assert!(!primary.exists(), "accept-new wrote {primary:?}");
        // Without the global file the same check learns the key: the
        // assertion above can fail.
        let exit = check_expect_exit(&cfg.upstream_line(&global(&[])));
        assert_eq!(exit.code, Some(0), "{}", output(&exit));
        assert!(sshd.known_hosts_has_host_key(&primary));
    })
    .await;
}

/// A real `ssh-agent -D -a SOCKET` holding `key`, killed (by PID) on drop.
pub struct Agent {
    pub socket: std::path::PathBuf,
    _child: ChildGuard,
    _dir: tempfile::TempDir,
}

impl Agent {
    pub async fn start(key: &Path) -> Agent {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("agent.sock");
        let child = ChildGuard::spawn(
            "ssh-agent",
            std::process::Command::new("ssh-agent")
                .arg("-D")
                .arg("-a")
                .arg(&socket)
                .stdout(std::process::Stdio::null()),
        );
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "ssh-agent did not create {socket:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let added = std::process::Command::new("ssh-add")
            .arg(key)
            .env("SSH_AUTH_SOCK", &socket)
            .output()
            .expect("run ssh-add");
        assert!(
            added.status.success(),
            "ssh-add: {}",
            String::from_utf8_lossy(&added.stderr)
        );
        Agent {
            socket,
            _child: child,
            _dir: dir,
        }
    }
}

/// `agent_socket`: the key is only in an agent that `SSH_AUTH_SOCK` does not
/// name (the gate runs without SSH_AUTH_SOCK).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_socket_logs_in_without_ssh_auth_sock() {
    within(TEST_LIMIT, "test", async {
        let sshd = Sshd::start().await;
        let key = sshd.new_client_key(KeyKind::Ed25519, None);
        let agent = Agent::start(&key).await;
        let mut cfg = GateConfig::new(&sshd);
        cfg.identity_files = vec![];
        // Without the socket there is no key to offer.
        let exit = check_expect_exit(&cfg);
        assert_eq!(exit.code, Some(EX_CONFIG), "{}", output(&exit));
        let cfg = cfg.upstream_line(&format!(
            "agent_socket = {:?}",
            agent.socket.display().to_string()
        ));
        let exit = check_expect_exit(&cfg);
        assert_eq!(exit.code, Some(0), "{}", output(&exit));
        assert!(
            sshd.log().contains("Accepted publickey"),
            "sshd log:\n{}",
            sshd.log()
        );
    })
    .await;
}
