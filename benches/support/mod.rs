//! Parts of the e2e benchmark: child processes and /proc readings (`process`), a
//! per-run OpenSSH sshd (`sshd`), the two proxies under test (`proxy`), the local
//! source/sink/echo targets (`targets`), the SOCKS5 load generator (`load`) and the
//! result table (`report`).
//!
//! Everything cleans up on `Drop` (children killed by PID, temp dirs removed) and
//! every wait is bounded.

pub mod load;
pub mod process;
pub mod proxy;
pub mod report;
pub mod sshd;
pub mod targets;
