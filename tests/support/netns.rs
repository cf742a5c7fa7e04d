//! A private network behind a jump host, built from a network namespace the test
//! creates: a veth pair with the host at 198.18.X.(4n+1)/30 and the namespace at
//! 198.18.X.(4n+2)/30, plus an "intranet" address 198.19.X.(n+1)/32 on the namespace's
//! loopback that the host cannot reach (an `unreachable` route on the host makes that
//! explicit, so nothing is ever sent towards the default gateway). Name resolution in
//! the namespace comes from /etc/netns/NAME/{hosts,nsswitch.conf,resolv.conf}, which
//! `ip netns exec` mounts over /etc: files only, no DNS.
//!
//! Everything is removed on drop (namespace, veth, route, /etc/netns/NAME). Processes
//! started inside must be dropped first (declare them after the namespace).

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::process::offline_nsswitch;

/// Namespaces made by this test process, to name them uniquely.
static MADE: AtomicU32 = AtomicU32::new(0);

const IP_LIMIT: Duration = Duration::from_secs(20);

pub struct NetNs {
    name: String,
    host_ip: Ipv4Addr,
    ns_ip: Ipv4Addr,
    intranet_ip: Ipv4Addr,
    veth_host: String,
    etc_dir: PathBuf,
    /// What was set up so far, for a partial teardown after a failure.
    route_added: bool,
}

/// Whether `ip netns` can be used here (root, iproute2, kernel support): Err says why.
pub fn usable() -> Result<(), String> {
    let probe = format!("jg-probe-{}", std::process::id());
    let add = ip(&["netns", "add", &probe]);
    if let Err(e) = add {
        return Err(format!("`ip netns add` failed: {e}"));
    }
    let _ = ip(&["netns", "del", &probe]);
    Ok(())
}

impl NetNs {
    /// Creates the namespace and its network; `intranet_names` resolve to
    /// [`NetNs::intranet_ip`] inside the namespace (and nowhere else).
    pub fn create(intranet_names: &[&str]) -> anyhow::Result<NetNs> {
        let pid = std::process::id();
        let n = MADE.fetch_add(1, Ordering::Relaxed);
        anyhow::ensure!(n < 64, "too many namespaces in one test process");
        // Third octet from the PID (parallel test processes differ), fourth from n.
        let x = (pid % 256) as u8;
        let n8 = n as u8;
        let name = format!("jg-{pid}-{n}");
        let mut ns = NetNs {
            host_ip: Ipv4Addr::new(198, 18, x, 4 * n8 + 1),
            ns_ip: Ipv4Addr::new(198, 18, x, 4 * n8 + 2),
            intranet_ip: Ipv4Addr::new(198, 19, x, n8 + 1),
            veth_host: format!("jg{}h{n}", pid % 1_000_000),
            etc_dir: PathBuf::from(format!("/etc/netns/{name}")),
            name,
            route_added: false,
        };
        // From here on, Drop removes whatever exists.
        ns.setup(intranet_names)?;
        Ok(ns)
    }

    fn setup(&mut self, intranet_names: &[&str]) -> anyhow::Result<()> {
        let in_use = ip(&["-o", "addr", "show"])?;
        anyhow::ensure!(
            !in_use.contains(&format!("{}/", self.host_ip)),
            "{} is already in use on this host (another test process?)",
            self.host_ip
        );
        // /etc/netns/NAME first: `ip netns exec` mounts these files over /etc.
        std::fs::create_dir_all(&self.etc_dir)?;
        let mut hosts_file = String::from("127.0.0.1 localhost\n");
        for name in intranet_names {
            hosts_file.push_str(&format!("{} {name}\n", self.intranet_ip));
        }
        std::fs::write(self.etc_dir.join("hosts"), hosts_file)?;
        let host_nss = std::fs::read_to_string("/etc/nsswitch.conf")?;
        std::fs::write(
            self.etc_dir.join("nsswitch.conf"),
            offline_nsswitch(&host_nss),
        )?;
        std::fs::write(self.etc_dir.join("resolv.conf"), "nameserver 127.0.0.1\n")?;

        let ns = self.name.clone();
        let veth_ns = format!("{}n", self.veth_host);
        ip(&["netns", "add", &ns])?;
        ip(&[
            "link",
            "add",
            &self.veth_host,
            "type",
            "veth",
            "peer",
            "name",
            &veth_ns,
            "netns",
            &ns,
        ])?;
        ip(&[
            "addr",
            "add",
            &format!("{}/30", self.host_ip),
            "dev",
            &self.veth_host,
        ])?;
        ip(&["link", "set", &self.veth_host, "up"])?;
        ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        ip(&[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{}/30", self.ns_ip),
            "dev",
            &veth_ns,
        ])?;
        ip(&["-n", &ns, "link", "set", &veth_ns, "up"])?;
        ip(&[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{}/32", self.intranet_ip),
            "dev",
            "lo",
        ])?;
        ip(&[
            "route",
            "add",
            "unreachable",
            &format!("{}/32", self.intranet_ip),
        ])?;
        self.route_added = true;
        Ok(())
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace's end of the veth pair (where its sshd listens).
    pub fn ns_ip(&self) -> Ipv4Addr {
        self.ns_ip
    }

    /// The private address inside the namespace, unreachable from the host.
    pub fn intranet_ip(&self) -> Ipv4Addr {
        self.intranet_ip
    }

    /// `ip netns exec NAME program`.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        if self.route_added {
            let _ = ip(&[
                "route",
                "del",
                "unreachable",
                &format!("{}/32", self.intranet_ip),
            ]);
        }
        // Deleting the namespace deletes its veth end, and with it the host's end.
        let _ = ip(&["netns", "del", &self.name]);
        let _ = ip(&["link", "del", &self.veth_host]);
        let _ = std::fs::remove_dir_all(&self.etc_dir);
    }
}

/// Runs `ip ARGS` (bounded) and returns its stdout, or an error with its stderr.
fn ip(args: &[&str]) -> anyhow::Result<String> {
    let mut child = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot run ip: {e}"))?;
    let started = std::time::Instant::now();
    loop {
        if child.try_wait()?.is_some() {
            break;
        }
        if started.elapsed() > IP_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            anyhow::bail!("ip {args:?} did not finish within {IP_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output()?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        anyhow::bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )
    }
}
