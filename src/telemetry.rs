//! Logging setup: tracing to stderr, `-v` levels like ssh's, RUST_LOG wins.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// `verbosity`: 0 = info for jumpgate (warn for libraries), 1 = debug,
/// 2 = debug everywhere, 3 = trace.
pub fn init(verbosity: u8, json: bool) {
    let default = match verbosity {
        0 => "jumpgate=info,warn",
        1 => "jumpgate=debug,info",
        2 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // On a failed write (stderr is a closed pipe: a dead log collector,
        // `| head`), tracing-subscriber would report it with `eprintln!`,
        // which panics and kills whichever task was logging: the signal
        // handler, a session supervisor. Lost log lines are the lesser harm.
        .log_internal_errors(false)
        .with_ansi(ansi);
    if json {
        let _ = builder.json().try_init();
    } else {
        let _ = builder.try_init();
    }
}

/// `eprintln!` that cannot panic: a closed stderr must not kill the task
/// (or turn an exit code into 101) that was only reporting something.
#[macro_export]
macro_rules! say_err {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// `println!` that cannot panic (`jumpgate status | head -1` closes stdout).
#[macro_export]
macro_rules! say_out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}
