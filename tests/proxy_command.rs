//! `proxy_command` (ssh's ProxyCommand): the SSH connection runs over a real
//! `ssh -W %h:%p` through the test's sshd, and a command that dies says so.

use std::time::Duration;

use crate::support::gate::check_expect_exit;
use crate::support::{targets, within, Gate, GateConfig, Sshd};

const TEST_LIMIT: Duration = Duration::from_secs(60);

/// TOML for `proxy_command`: OpenSSH's own client carrying the connection.
fn ssh_w(sshd: &Sshd) -> String {
    let mut args = sshd.ssh_args(sshd.client_key(), sshd.known_hosts());
    args.insert(0, "ssh".into());
    args.push("-W".into());
    args.push("%h:%p".into());
    let cmd = args.join(" ");
    format!("proxy_command = {cmd:?}")
}

/// Running `ssh ... -W 127.0.0.1:PORT` processes (our expanded command).
fn ssh_w_processes(port: u16) -> usize {
    let want = format!("-W\0127.0.0.1:{port}\0");
    std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(Result::ok)
                .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
                .filter(|c| String::from_utf8_lossy(c).contains(&want))
                .count()
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tunnels_run_over_ssh_w() {
    within(TEST_LIMIT, "test", async {
        let sshd = Sshd::start().await;
        let echo = targets::echo().await;
        let cfg = GateConfig::new(&sshd).upstream_line(&ssh_w(&sshd));
        let gate = Gate::start(&cfg).await;
        for i in 0..5u8 {
            gate.echo_roundtrip(echo.addr(), &[i; 1000]).await;
        }
        // One login for `ssh -W`, one for jumpgate's session inside it.
        assert_eq!(sshd.logins(), 2, "sshd log:\n{}", sshd.log());
        // The command runs while the session lives, and goes with the gate.
        let port = sshd.port();
        assert_eq!(ssh_w_processes(port), 1, "log:\n{}", gate.log_text());
        drop(gate);
        let mut left = ssh_w_processes(port);
        for _ in 0..50 {
            if left == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            left = ssh_w_processes(port);
        }
        assert_eq!(left, 0, "the ProxyCommand outlived jumpgate");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dying_command_is_named_with_its_status() {
    within(TEST_LIMIT, "test", async {
        let sshd = Sshd::start().await;
        let cfg = GateConfig::new(&sshd)
            .upstream_line("proxy_command = \"sh -c 'echo no route >&2; exit 3'\"");
        let exit = check_expect_exit(&cfg);
        assert_eq!(
            exit.code,
            Some(1),
            "stdout:\n{}\nstderr:\n{}",
            exit.stdout,
            exit.stderr
        );
        let all = format!("{}{}", exit.stdout, exit.stderr);
        assert!(
            all.contains(
                "ProxyCommand \"sh -c 'echo no route >&2; exit 3'\" exited with exit status: 3"
            ),
            "{all}"
        );
        // The command's stderr reaches ours, as with ssh.
        assert!(exit.stderr.contains("no route"), "{all}");
        assert_eq!(sshd.logins(), 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_command_and_proxy_jump_together_are_a_config_error() {
    within(TEST_LIMIT, "test", async {
        let sshd = Sshd::start().await;
        let cfg = GateConfig::new(&sshd)
            .proxy_jump(&["outer:22".into()])
            .upstream_line("proxy_command = \"nc %h %p\"");
        let exit = check_expect_exit(&cfg);
        assert_eq!(exit.code, Some(78), "{}", exit.stderr);
        assert!(
            exit.stderr
                .contains("set proxy_command or proxy_jump, not both"),
            "{}",
            exit.stderr
        );
    })
    .await;
}
