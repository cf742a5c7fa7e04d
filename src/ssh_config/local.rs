//! Facts about the local user and machine that ssh_config needs, taken the
//! way OpenSSH takes them: the user name and home directory come from the
//! password database entry of our uid (not $USER/$HOME), except that
//! `Include ~/...` globs use $HOME first, as OpenSSH's glob does.

use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct Local {
    pub uid: u32,
    /// pw_name: the default remote user, `%u`.
    pub user: String,
    /// pw_dir: `~`, `%d`.
    pub home: PathBuf,
    /// $HOME, else pw_dir: what `Include ~/x` globs expand `~` to.
    pub env_home: PathBuf,
    /// gethostname(): `%l`; `%L` is its first label.
    pub hostname: String,
}

impl Local {
    pub fn detect() -> Local {
        use std::os::unix::fs::MetadataExt;
        let uid = std::fs::metadata("/proc/self")
            .map(|m| m.uid())
            .unwrap_or(0);
        let entry = passwd_entries().into_iter().find(|e| e.uid == uid);
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let user = entry
            .as_ref()
            .map(|e| e.name.clone())
            .or_else(|| env("USER"))
            .or_else(|| env("LOGNAME"))
            .unwrap_or_else(|| uid.to_string());
        let home = entry
            .as_ref()
            .map(|e| e.home.clone())
            .or_else(|| env("HOME").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("/"));
        let env_home = env("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| home.clone());
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_owned())
            .unwrap_or_default();
        Local {
            uid,
            user,
            home,
            env_home,
            hostname,
        }
    }

    /// The home directory of `user` (for `~user/...`).
    pub fn home_of(&self, user: &str) -> Option<PathBuf> {
        passwd_entries()
            .into_iter()
            .find(|e| e.name == user)
            .map(|e| e.home)
    }

    pub fn short_hostname(&self) -> &str {
        self.hostname.split('.').next().unwrap_or("")
    }
}

struct PasswdEntry {
    name: String,
    uid: u32,
    home: PathBuf,
}

fn passwd_entries() -> Vec<PasswdEntry> {
    let text = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 7 {
                return None;
            }
            Some(PasswdEntry {
                name: f[0].to_owned(),
                uid: f[2].parse().ok()?,
                home: PathBuf::from(f[5]),
            })
        })
        .collect()
}
