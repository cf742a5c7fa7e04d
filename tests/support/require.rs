//! What a test needs from the machine beyond cargo: OpenSSH, root with
//! working `ip netns`, iproute2's `tc`, promtool and prometheus, Chromium.
//! A test asks here before it starts; when a part is missing the test fails
//! (it never skips itself, with or without `CI` set) with a message naming
//! what is missing and how to get it. scripts/test-all.sh installs all of
//! it, so a test that cannot run points at the machine, never at a pass.

use std::path::{Path, PathBuf};

/// Where every missing part comes from, said in every failure.
const INSTALLER: &str = "scripts/test-all.sh installs everything the tests use";

/// Fails the running test: `what` is missing, `how` gets it.
#[track_caller]
pub fn missing(what: &str, how: &str) -> ! {
    panic!("this test cannot run: {what}; to get it: {how} ({INSTALLER})")
}

/// Network namespaces: root, iproute2, and a kernel that lets us add one.
#[track_caller]
pub fn netns() {
    if let Err(why) = super::netns::usable() {
        missing(
            &format!("network namespaces are unusable: {why}"),
            "run the tests as root on a machine that allows `ip netns add` \
             (apt-get install iproute2)",
        );
    }
}

/// The program `path` (a Debian path such as /usr/bin/promtool), or its
/// file name on PATH; `package` is the Debian package that ships it.
#[track_caller]
pub fn program(path: &str, package: &str) -> PathBuf {
    if Path::new(path).is_file() {
        return PathBuf::from(path);
    }
    let name = path.rsplit('/').next().unwrap_or(path);
    match find_on_path(name) {
        Some(p) => p,
        None => missing(
            &format!("{path} is not installed (nor {name} on PATH)"),
            &format!("apt-get install {package}"),
        ),
    }
}

/// The first of `names` found on PATH (a program with several names, such
/// as chromium and chromium-browser).
#[track_caller]
pub fn on_path(names: &[&str], package: &str) -> PathBuf {
    match names.iter().find_map(|n| find_on_path(n)) {
        Some(p) => p,
        None => missing(
            &format!("none of {names:?} is on PATH"),
            &format!("apt-get install {package}"),
        ),
    }
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}
