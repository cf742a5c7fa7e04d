//! Who and where we are, as ssh decides it for defaults: the home directory
//! (`~` in paths) and the local user name (the default remote user). Reads
//! the environment and `/etc/passwd`; used by `config::text` and
//! `config::upstream`.

use std::path::PathBuf;

/// `$HOME`, else `/` (a service without HOME still gets a usable path).
pub(super) fn home_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/"))
}

/// The local user name, as ssh picks the default remote user: $USER,
/// $LOGNAME, else our uid's entry in /etc/passwd (services often run with
/// neither variable set).
pub(super) fn local_user() -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    if let Some(u) = ["USER", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
    {
        return Some(u);
    }
    let uid = std::fs::metadata("/proc/self").ok()?.uid().to_string();
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        (f.nth(1)? == uid).then(|| name.to_owned())
    })
}
