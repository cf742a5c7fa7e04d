//! Child processes the bench starts (killed by PID on drop, and by the watchdog if the
//! bench overruns its time budget), /proc readings (RSS, peak RSS, CPU ticks), and the
//! open-files limit the 5,000-tunnel figure needs.

use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// PIDs of live children, for the watchdog (which cannot reach the guards).
static LIVE: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// A child process, killed (SIGKILL, by its PID) and reaped when dropped.
pub struct ChildGuard {
    what: String,
    child: Child,
}

impl ChildGuard {
    pub fn spawn(what: &str, cmd: &mut Command) -> Result<ChildGuard> {
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {what} ({cmd:?})"))?;
        watch(child.id());
        Ok(ChildGuard {
            what: what.to_string(),
            child,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status if the child has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    pub fn what(&self) -> &str {
        &self.what
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // Child::kill signals exactly this PID; nothing else is touched.
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        unwatch(self.child.id());
    }
}

/// Puts `pid` under the watchdog. ChildGuard does it for its own children; the sshd
/// fixture shared with the tests has its own guard and is registered this way.
pub fn watch(pid: u32) {
    if let Ok(mut live) = LIVE.lock() {
        live.push(pid);
    }
}

/// Takes `pid` (reaped by now) off the watchdog's list.
pub fn unwatch(pid: u32) {
    if let Ok(mut live) = LIVE.lock() {
        live.retain(|p| *p != pid);
    }
}

/// Ends the bench if it runs past `limit`: kills the live children by PID (so that no
/// sshd, ssh or jumpgate outlives us) and exits with status 1.
pub fn start_watchdog(limit: Duration) {
    std::thread::spawn(move || {
        std::thread::sleep(limit);
        eprintln!("e2e bench: still running after {limit:?}; killing the children and exiting");
        let pids: Vec<u32> = LIVE.lock().map(|l| l.clone()).unwrap_or_default();
        for pid in pids {
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(pid.to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        std::process::exit(1);
    });
}

/// Runs a short helper command to completion and returns its stdout; fails with its
/// stderr if it fails or runs past `limit`.
pub fn run_ok(cmd: &mut Command, limit: Duration) -> Result<String> {
    let out_file = tempfile::tempfile().context("temp file for stdout")?;
    let err_file = tempfile::tempfile().context("temp file for stderr")?;
    cmd.stdin(Stdio::null())
        .stdout(out_file.try_clone()?)
        .stderr(err_file.try_clone()?);
    let mut child = ChildGuard::spawn(&format!("{cmd:?}"), cmd)?;
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.exited() {
            break status;
        }
        if started.elapsed() > limit {
            bail!("{cmd:?} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let read = |mut f: std::fs::File| {
        use std::io::{Read, Seek};
        let mut s = String::new();
        let _ = f.rewind();
        let _ = f.read_to_string(&mut s);
        s
    };
    if !status.success() {
        bail!("{cmd:?} failed ({status}): {}", read(err_file).trim());
    }
    Ok(read(out_file))
}

fn status_field(pid: u32, key: &str) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("no {key} in {path}"))
}

/// Resident memory now, KiB (VmRSS).
pub fn rss_kib(pid: u32) -> Result<u64> {
    status_field(pid, "VmRSS:")
}

/// Peak resident memory, KiB (VmHWM).
pub fn hwm_kib(pid: u32) -> Result<u64> {
    status_field(pid, "VmHWM:")
}

/// utime + stime of a process (all its threads), in clock ticks.
pub fn cpu_ticks(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = text
        .rfind(')')
        .map(|i| &text[i + 1..])
        .with_context(|| format!("unexpected {path}: {text}"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ')': state is field 3, so utime (14) and stime (15) are at 11 and 12.
    let num = |i: usize| -> Result<u64> {
        fields
            .get(i)
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("no field {} in {path}", i + 3))
    };
    Ok(num(11)? + num(12)?)
}

/// CPU ticks of every descendant of `pid` (not `pid` itself); for sshd, whose work
/// happens in one forked process per SSH connection.
pub fn descendants_cpu_ticks(pid: u32) -> u64 {
    let mut parent_of: Vec<(u32, u32)> = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(p) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(text) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
                continue;
            };
            let ppid = text
                .rfind(')')
                .and_then(|i| text[i + 1..].split_whitespace().nth(1))
                .and_then(|v| v.parse::<u32>().ok());
            if let Some(pp) = ppid {
                parent_of.push((p, pp));
            }
        }
    }
    let mut found = vec![pid];
    let mut i = 0;
    while i < found.len() {
        let cur = found[i];
        for (p, pp) in &parent_of {
            if *pp == cur && !found.contains(p) {
                found.push(*p);
            }
        }
        i += 1;
    }
    found[1..].iter().filter_map(|p| cpu_ticks(*p).ok()).sum()
}

/// Clock ticks per second, from `getconf CLK_TCK`.
pub fn clk_tck() -> Result<u64> {
    let out = run_ok(
        Command::new("getconf").arg("CLK_TCK"),
        Duration::from_secs(10),
    )?;
    out.trim()
        .parse()
        .with_context(|| format!("getconf CLK_TCK printed {out:?}"))
}

/// The soft and hard RLIMIT_NOFILE of this process, from /proc/self/limits.
pub fn nofile_limits() -> Result<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/self/limits").context("read /proc/self/limits")?;
    let line = text
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .context("no 'Max open files' in /proc/self/limits")?;
    let nums: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| {
            if w == "unlimited" {
                Some(u64::MAX)
            } else {
                w.parse().ok()
            }
        })
        .collect();
    match nums.as_slice() {
        [soft, hard, ..] => Ok((*soft, *hard)),
        _ => bail!("cannot parse {line:?}"),
    }
}

/// Makes sure this process may open `need` files. Children (sshd, ssh, jumpgate)
/// inherit the limit. Raising it goes through `prlimit --pid` (no unsafe code here);
/// raising the hard limit needs root. Returns the soft limit now in force.
pub fn ensure_nofile(need: u64) -> Result<u64> {
    let (soft, hard) = nofile_limits()?;
    if soft >= need {
        return Ok(soft);
    }
    let new_hard = hard.max(need);
    let res = run_ok(
        Command::new("prlimit")
            .arg("--pid")
            .arg(std::process::id().to_string())
            .arg(format!("--nofile={need}:{new_hard}")),
        Duration::from_secs(10),
    );
    let (now, _) = nofile_limits()?;
    if now < need {
        bail!(
            "the open-files limit is {soft} (hard {hard}) and the bench needs {need} \
             (tunnels on both ends plus the target side); raising it failed ({}). \
             Run it under `ulimit -n {need}` or pass a smaller --tunnels",
            res.err().map(|e| e.to_string()).unwrap_or_default()
        );
    }
    Ok(now)
}

/// A free TCP port on 127.0.0.1 (another process may take it before we use it;
/// callers retry).
pub fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("bind 127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}
