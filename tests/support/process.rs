//! Child processes for tests (and the bench's sshd, which shares this file): a guard that kills its own child by PID on drop, log
//! capture from pipes, commands with a deadline, and the "offline resolver" wrapper
//! that keeps name lookups of a child inside /etc/hosts; and free loopback ports.
//!
//! Why the offline resolver: the host's resolver here is a non-loopback address, and a
//! test must never send traffic off the machine. Every sshd, jumpgate and curl that
//! could resolve a name runs in a private mount namespace in which /etc/nsswitch.conf
//! says `hosts: files` and /etc/resolv.conf points at 127.0.0.1. An unknown name then
//! fails at once with "Name or service not known", which is exactly the NXDOMAIN case
//! the tests want, and a jumpgate that wrongly resolved names locally could not leak.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A loopback TCP port that nothing listens on right now (bound, read, released).
///
/// Another process may take it before we use it: callers that bind it retry, callers
/// that want a refused port accept that small race.
pub fn free_port() -> u16 {
    let l =
        std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}

/// A child process that is killed (SIGKILL, by its PID) and reaped when dropped.
pub struct ChildGuard {
    /// What the child is, for messages.
    what: String,
    child: Child,
}

impl ChildGuard {
    pub fn spawn(what: &str, cmd: &mut Command) -> ChildGuard {
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what} ({cmd:?}): {e}"));
        ChildGuard {
            what: what.to_string(),
            child,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status if the child has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child
            .try_wait()
            .unwrap_or_else(|e| panic!("waiting for {}: {e}", self.what))
    }

    pub fn take_stdout(&mut self) -> Option<std::process::ChildStdout> {
        self.child.stdout.take()
    }

    pub fn take_stderr(&mut self) -> Option<std::process::ChildStderr> {
        self.child.stderr.take()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // Child::kill signals exactly this PID; nothing else is touched.
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Lines captured from a child's stdout and stderr, shared with the pump threads.
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<String>>>);

impl Logs {
    pub fn push(&self, line: String) {
        self.0.lock().expect("logs lock").push(line);
    }

    pub fn snapshot(&self) -> Vec<String> {
        self.0.lock().expect("logs lock").clone()
    }

    pub fn text(&self) -> String {
        self.snapshot().join("\n")
    }

    pub fn find(&self, pred: impl Fn(&str) -> bool) -> Option<String> {
        self.0
            .lock()
            .expect("logs lock")
            .iter()
            .find(|l| pred(l))
            .cloned()
    }

    pub fn count(&self, pred: impl Fn(&str) -> bool) -> usize {
        self.0
            .lock()
            .expect("logs lock")
            .iter()
            .filter(|l| pred(l))
            .count()
    }

    /// Copies every line of `pipe` into the logs (and to the test's stderr, which the
    /// test harness shows only for failing tests). The thread ends at EOF.
    pub fn pump(
        &self,
        prefix: &str,
        pipe: impl Read + Send + 'static,
    ) -> std::thread::JoinHandle<()> {
        let logs = self.clone();
        let prefix = prefix.to_string();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(pipe);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match reader.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let line = strip_ansi(&String::from_utf8_lossy(&buf));
                        let line = line.trim_end().to_string();
                        eprintln!("[{prefix}] {line}");
                        logs.push(line);
                    }
                }
            }
        })
    }
}

/// Removes ANSI escape sequences (colours), in case the child colours its logs anyway.
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                // CSI: parameters and intermediates, then one final byte in 0x40..=0x7e.
                for c in chars.by_ref() {
                    if ('\u{40}'..='\u{7e}').contains(&c) {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Writes the files of the offline resolver into `dir` and returns their paths
/// (nsswitch.conf with `hosts: files`, resolv.conf pointing at 127.0.0.1).
pub fn offline_resolver_files(dir: &Path) -> (PathBuf, PathBuf) {
    let host_nss = std::fs::read_to_string("/etc/nsswitch.conf")
        .expect("/etc/nsswitch.conf is needed (the offline resolver replaces its hosts line)");
    let nss = offline_nsswitch(&host_nss);
    let nss_path = dir.join("nsswitch.conf");
    let resolv_path = dir.join("resolv.conf");
    std::fs::write(&nss_path, nss).expect("write nsswitch.conf");
    std::fs::write(&resolv_path, "nameserver 127.0.0.1\n").expect("write resolv.conf");
    (nss_path, resolv_path)
}

/// The host's nsswitch.conf with its `hosts:` line replaced by `hosts: files`.
pub fn offline_nsswitch(host_nss: &str) -> String {
    let mut out: String = host_nss
        .lines()
        .filter(|l| !l.trim_start().starts_with("hosts:"))
        .map(|l| format!("{l}\n"))
        .collect();
    out.push_str("hosts: files\n");
    out
}

/// A command that runs `program` in a private mount namespace with the offline
/// resolver (see the module docs). The wrapper `exec`s, so the child's PID is the
/// program's PID. Needs root (we are root in tests and CI).
pub fn offline_command(dir: &Path, program: impl AsRef<std::ffi::OsStr>) -> Command {
    let (nss, resolv) = offline_resolver_files(dir);
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--", "sh", "-ec"])
        .arg(concat!(
            "mount --bind \"$1\" /etc/nsswitch.conf; ",
            "if [ -e /etc/resolv.conf ]; then mount --bind \"$2\" /etc/resolv.conf; fi; ",
            "shift 2; exec \"$@\""
        ))
        .arg("offline-resolver")
        .arg(nss)
        .arg(resolv)
        .arg(program);
    cmd
}

/// Same as [`offline_command`], for tokio.
pub fn offline_tokio_command(
    dir: &Path,
    program: impl AsRef<std::ffi::OsStr>,
) -> tokio::process::Command {
    tokio::process::Command::from(offline_command(dir, program))
}

/// Runs a short command to completion with a deadline; the child is killed if the
/// deadline passes.
pub async fn run_for(cmd: &mut tokio::process::Command, limit: Duration) -> Output {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    match tokio::time::timeout(limit, child.wait_with_output()).await {
        Ok(out) => out.unwrap_or_else(|e| panic!("running {cmd:?}: {e}")),
        Err(_) => panic!("{cmd:?} did not finish within {limit:?}"),
    }
}

/// Runs a short helper command (ssh-keygen and the like) synchronously and returns its
/// stdout; panics with its stderr if it fails or runs past `limit`.
pub fn run_ok(cmd: &mut Command, limit: Duration) -> String {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = ChildGuard::spawn(&format!("{cmd:?}"), cmd);
    let mut stdout = child.take_stdout().expect("stdout piped");
    let mut stderr = child.take_stderr().expect("stderr piped");
    let out_thread = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stdout.read_to_end(&mut s);
        s
    });
    let err_thread = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stderr.read_to_end(&mut s);
        s
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.exited() {
            break status;
        }
        if started.elapsed() > limit {
            panic!("{cmd:?} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let out = out_thread.join().unwrap_or_default();
    let err = err_thread.join().unwrap_or_default();
    if !status.success() {
        panic!(
            "{cmd:?} failed ({status}): {}",
            String::from_utf8_lossy(&err).trim()
        );
    }
    String::from_utf8_lossy(&out).into_owned()
}
