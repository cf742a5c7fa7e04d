//! The readiness signal (`Startup::readiness`, used by `jumpgate up`): once
//! every upstream has a live session, one line on stderr naming each bound
//! listener by its kind and address, and the ready file with the same, one
//! per line, written atomically so that a script polling for it never reads
//! half. A stale file is removed at start and an unwritable path fails the
//! start (`prepare`). Reads the pools (`Pool::is_ready`) and nothing else.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::error;

use super::BoundListener;
use crate::ssh::pool::Pool;

/// How often the pools are asked whether they are ready.
const POLL: Duration = Duration::from_millis(25);

/// Waits until every pool is ready (or `drain`), then announces.
pub(super) async fn announce(
    who: &'static str,
    listeners: Vec<BoundListener>,
    pools: Vec<Arc<Pool>>,
    file: Option<PathBuf>,
    drain: CancellationToken,
) {
    while !pools.iter().all(|p| p.is_ready()) {
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = drain.cancelled() => return,
        }
    }
    let shown = lines(&listeners);
    let via: Vec<String> = pools
        .iter()
        .map(|p| format!("{}@{}", p.settings.upstream.user, p.settings.describe(0)))
        .collect();
    crate::say_err!(
        "{who}: ready: {} via {}",
        if shown.is_empty() {
            "remote forwards only".to_owned()
        } else {
            shown.join(", ")
        },
        via.join(", ")
    );
    if let Some(path) = file {
        let text: String = shown.iter().map(|l| format!("{l}\n")).collect();
        if let Err(e) = write_atomic(&path, &text) {
            error!(path = %path.display(), error = %e, "cannot write the ready file");
        }
    }
}

/// Before anything else at start: a ready file left by an earlier run is
/// removed (a run that then fails must not look ready), and the place is
/// tried once, so that a path that cannot be written fails the start
/// instead of leaving a script waiting for a file that never comes.
pub(super) fn prepare(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let tmp = tmp_name(path);
    std::fs::write(&tmp, "")?;
    std::fs::remove_file(&tmp)
}

fn tmp_name(path: &Path) -> PathBuf {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    PathBuf::from(tmp)
}

/// `KIND ADDR` per listener, as the ready line and file show them.
fn lines(listeners: &[BoundListener]) -> Vec<String> {
    listeners
        .iter()
        .map(|l| format!("{} {}", l.kind, l.addr))
        .collect()
}

/// Written to a temporary name and renamed, so a reader never sees half.
fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = tmp_name(path);
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listeners_are_shown_by_their_kind_not_their_name() {
        let l = |name: &str, kind, port| BoundListener {
            name: name.into(),
            kind,
            addr: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        };
        // Names that would mislead a guess from the prefix.
        let shown = lines(&[l("forward-db", "socks5", 1080), l("socks", "forward", 8080)]);
        assert_eq!(shown, ["socks5 127.0.0.1:1080", "forward 127.0.0.1:8080"]);
    }

    #[test]
    fn the_ready_file_is_replaced_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ready");
        write_atomic(&path, "socks5 127.0.0.1:1\n").expect("write");
        write_atomic(&path, "socks5 127.0.0.1:2\n").expect("write");
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            "socks5 127.0.0.1:2\n"
        );
        assert!(!dir.path().join("ready.tmp").exists());
    }

    #[test]
    fn prepare_removes_a_stale_file_and_refuses_an_unwritable_place() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ready");
        std::fs::write(&path, "socks5 127.0.0.1:1\n").expect("write");
        prepare(&path).expect("prepare");
        assert!(!path.exists());
        assert!(!dir.path().join("ready.tmp").exists());
        assert!(prepare(&dir.path().join("missing").join("ready")).is_err());
    }
}
