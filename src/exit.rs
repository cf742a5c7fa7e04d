//! The process's exit codes, shared by every command (`cli`, `daemon`, `up`,
//! `demo`, `status_table`). They live here, below all of them, so that no
//! command imports another to name a number.
//!
//! 78 is sysexits' EX_CONFIG: a systemd unit with `RestartPreventExitStatus=78`
//! does not restart a daemon whose configuration (or key, or host key) is
//! wrong, while 1 (a busy port, a jump host down) may clear up by itself.

/// Stopped as asked (a signal), or the command did what it was asked.
pub const EXIT_OK: u8 = 0;
/// A runtime failure: a port in use, a jump host unreachable, not ready.
pub const EXIT_RUNTIME: u8 = 1;
/// Bad command line (clap's code too).
pub const EXIT_USAGE: u8 = 2;
/// Bad configuration: the config file, a key, a certificate, a host key.
pub const EXIT_CONFIG: u8 = 78;
