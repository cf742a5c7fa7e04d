//! The real OpenSSH client (`ssh -W`) against the demo jump host: it gets the page,
//! sshd-like refusals, and "Permission denied" for a key it does not know.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::time::timeout;

use super::super::generate_key;
use super::super::hello::tests::split_response;
use super::{start, Fixture, LOOPBACK};

/// A temp dir with the client key (mode 0600) and a known_hosts line for the host.
struct OpenSsh {
    dir: tempfile::TempDir,
    port: u16,
}

impl OpenSsh {
    fn new(f: &Fixture) -> OpenSsh {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let key_path = dir.path().join("id_ed25519");
        let pem = f
            .client_key
            .to_openssh(russh::keys::ssh_key::LineEnding::LF)
            .unwrap();
        std::fs::write(&key_path, pem.as_bytes()).unwrap();
        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let port = f.host.addr().port();
        std::fs::write(dir.path().join("known_hosts"), f.host.known_hosts_line()).unwrap();
        OpenSsh { dir, port }
    }

    /// `ssh -W target` with `stdin` as the tunnelled request; (status, stdout, stderr).
    async fn stdio_forward(&self, target: &str, stdin: &[u8]) -> (bool, Vec<u8>, String) {
        let dir = self.dir.path();
        let mut child = tokio::process::Command::new("ssh")
            .args(["-F", "/dev/null", "-T", "-o", "BatchMode=yes"])
            .args(["-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none"])
            .args(["-o", "StrictHostKeyChecking=yes"])
            .arg("-o")
            .arg(format!(
                "UserKnownHostsFile={}",
                dir.join("known_hosts").display()
            ))
            .arg("-i")
            .arg(dir.join("id_ed25519"))
            .args(["-p", &self.port.to_string(), "-W", target, "demo@127.0.0.1"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("OpenSSH client `ssh` not found: install openssh-client");
        let mut input = child.stdin.take().unwrap();
        input.write_all(stdin).await.unwrap();
        drop(input); // EOF, sent on as channel EOF
        let out = timeout(Duration::from_secs(20), child.wait_with_output())
            .await
            .expect("ssh did not finish")
            .unwrap();
        (
            out.status.success(),
            out.stdout,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

#[tokio::test]
async fn openssh_client_gets_the_page_and_sshd_like_refusals() {
    let f = start().await;
    let ssh = OpenSsh::new(&f);

    let (ok, stdout, stderr) = ssh
        .stdio_forward(
            "hello.jumpgate:80",
            b"GET / HTTP/1.1\r\nHost: hello.jumpgate\r\n\r\n",
        )
        .await;
    assert!(ok, "ssh -W failed: {stderr}");
    let (head, body) = split_response(&stdout);
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}\n{stderr}");
    assert!(String::from_utf8_lossy(&body).contains("jumpgate"));

    let closed_port = {
        let l = TcpListener::bind(LOOPBACK).await.unwrap();
        l.local_addr().unwrap().port()
    };
    let (ok, _, stderr) = ssh
        .stdio_forward(&format!("127.0.0.1:{closed_port}"), b"")
        .await;
    assert!(!ok);
    assert!(
        stderr.contains("open failed: connect failed: Connection refused"),
        "{stderr}"
    );

    let (ok, _, stderr) = ssh.stdio_forward("no-such-host.invalid:80", b"").await;
    assert!(!ok);
    assert!(
        stderr.contains("open failed: connect failed: Name or service not known"),
        "{stderr}"
    );
}

#[tokio::test]
async fn openssh_client_with_unknown_key_is_refused() {
    let f = start().await;
    let stranger = Fixture {
        host: f.host,
        host_key: f.host_key,
        client_key: generate_key().unwrap(),
    };
    let ssh = OpenSsh::new(&stranger);
    let (ok, _, stderr) = ssh.stdio_forward("hello.jumpgate:80", b"").await;
    assert!(!ok);
    assert!(stderr.contains("Permission denied (publickey)"), "{stderr}");
}
