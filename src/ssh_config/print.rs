//! The resolved configuration as `ssh -G` prints it (lowercase keyword, a
//! space, the value; ssh's order and value formats), limited to the
//! keywords jumpgate supports.

use std::fmt::Write as _;

use super::Resolved;

/// The keywords `print` emits, in `ssh -G`'s order: what the oracle test
/// compares.
pub const KEYWORDS: &[&str] = &[
    "host",
    "user",
    "hostname",
    "port",
    "addressfamily",
    "batchmode",
    "compression",
    "exitonforwardfailure",
    "gatewayports",
    "identitiesonly",
    "stricthostkeychecking",
    "serveralivecountmax",
    "serveraliveinterval",
    "ciphers",
    "hostkeyalgorithms",
    "identityagent",
    "kexalgorithms",
    "macs",
    "dynamicforward",
    "localforward",
    "remoteforward",
    "identityfile",
    "certificatefile",
    "globalknownhostsfile",
    "userknownhostsfile",
    "connecttimeout",
    "proxycommand",
    "proxyjump",
];

fn yn(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

pub fn print(r: &Resolved) -> String {
    let mut s = String::new();
    let mut line = |k: &str, v: &str| {
        let _ = writeln!(s, "{k} {v}");
    };
    line("host", &r.host);
    line("user", &r.user);
    line("hostname", &r.hostname);
    line("port", &r.port.to_string());
    line("addressfamily", r.address_family.as_str());
    line("batchmode", yn(r.batch_mode));
    line("compression", yn(r.compression));
    line("exitonforwardfailure", yn(r.exit_on_forward_failure));
    line("gatewayports", yn(r.gateway_ports));
    line("identitiesonly", yn(r.identities_only));
    line("stricthostkeychecking", r.strict_host_key_checking.as_str());
    line("serveralivecountmax", &r.server_alive_count_max.to_string());
    line("serveraliveinterval", &r.server_alive_interval.to_string());
    line("ciphers", &r.ciphers.join(","));
    line("hostkeyalgorithms", &r.host_key_algorithms.join(","));
    if let Some(a) = &r.identity_agent {
        line("identityagent", a);
    }
    line("kexalgorithms", &r.kex_algorithms.join(","));
    line("macs", &r.macs.join(","));
    for f in &r.dynamic_forwards {
        line("dynamicforward", &f.listen_display());
    }
    for f in &r.local_forwards {
        line("localforward", &f.to_string());
    }
    for f in &r.remote_forwards {
        line(
            "remoteforward",
            &format!("{} {}", f.listen_display(), f.connect_display()),
        );
    }
    for f in &r.identity_files {
        line("identityfile", f);
    }
    for f in &r.certificate_files {
        line("certificatefile", f);
    }
    line(
        "globalknownhostsfile",
        &r.global_known_hosts_files.join(" "),
    );
    line("userknownhostsfile", &r.user_known_hosts_files.join(" "));
    match r.connect_timeout {
        Some(t) => line("connecttimeout", &t.to_string()),
        None => line("connecttimeout", "none"),
    }
    if let Some(c) = &r.proxy_command {
        line("proxycommand", c);
    }
    if let Some(j) = r.jump.as_ref().and_then(|j| j.display()) {
        line("proxyjump", &j);
    }
    s
}
