//! Command line: the subcommands (clap), the runtime, and the dispatch to
//! the module that does each (`daemon::startup` for `run`, `up`, `demo`,
//! `check`, `status_table`), each returning its exit code (`exit`). Nothing
//! imports from here.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::daemon::startup::{Startup, DEFAULT_GRACE};
use crate::exit::{EXIT_CONFIG, EXIT_RUNTIME, EXIT_USAGE};

const UP_HELP: &str = "Like `ssh -N -D ...`, with the same flags and ssh_config (-F FILE, else
~/.ssh/config and /etc/ssh/ssh_config), served by jumpgate's session pool.
  -D [bind:]port   SOCKS5 listener (repeatable)      -J hop[,hop...]  jump hosts
  -p port  -l user  -i identity (repeatable)  -o Key=Value (repeatable)  -F file
  -G               print the resolved configuration as `ssh -G` does, and exit
  -v/-vv/-vvv      more logging; -N -T -n -q are accepted and do nothing
  --ready-file PATH  written (listener addresses) once logged in and listening
  --admin IP:PORT    serve /metrics, /status ... there
Exit codes: 0 stopped by a signal, 1 runtime failure, 2 usage, 78 configuration.";

#[derive(Parser, Debug)]
#[command(
    name = "jumpgate",
    version,
    about = "ssh -D as a service: SOCKS5 over a pool of SSH sessions"
)]
pub struct Cli {
    /// More logging (-v debug, -vv debug for libraries too, -vvv trace). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Worker threads (default: half the CPUs, at least 1; TOKIO_WORKER_THREADS also works).
    #[arg(long, global = true, value_parser = clap::value_parser!(u16).range(1..=1024))]
    threads: Option<u16>,
    /// Log as JSON lines, for machines.
    #[arg(long, value_enum, default_value = "text", global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the daemon in the foreground.
    Run {
        /// Config file (TOML).
        #[arg(short, long, default_value = "/etc/jumpgate/jumpgate.toml")]
        config: PathBuf,
    },
    /// Validate the config, log in to every upstream once, report.
    Check {
        #[arg(short, long, default_value = "/etc/jumpgate/jumpgate.toml")]
        config: PathBuf,
    },
    /// ssh -N as a service, with ssh's flags and ssh_config:
    /// `jumpgate up -D 1080 -J outer bastion`. `jumpgate up --help` for more.
    #[command(disable_help_flag = true)]
    Up {
        /// ssh's flags and the destination, parsed as ssh parses them.
        #[arg(allow_hyphen_values = true, trailing_var_arg = true, num_args = 0..)]
        args: Vec<String>,
    },
    /// Show a running jumpgate's upstreams, sessions, listeners, limits and
    /// recent errors (from its admin endpoint's /status); exit 0 when ready.
    Status {
        /// The admin endpoint (`[admin] bind`, or `up --admin`), as http://HOST:PORT or HOST:PORT.
        #[arg(long, value_name = "URL", default_value = crate::status_table::DEFAULT_ADMIN,
              value_parser = crate::status_table::AdminUrl::parse)]
        admin: crate::status_table::AdminUrl,
    },
    /// No setup: a built-in jump host and a SOCKS5 endpoint to try.
    Demo {
        /// Port to try first (the next free one is used if taken).
        #[arg(long, default_value_t = 1080)]
        port: u16,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // `up` parses ssh's flags itself (order matters, as in ssh).
    let up = match &cli.command {
        Command::Up { args } => {
            match crate::up::parse_args(args, &crate::ssh_config::Local::detect()) {
                Ok(u) if u.help => {
                    crate::say_out!("{}\n\n{}", crate::up::USAGE, UP_HELP);
                    return ExitCode::SUCCESS;
                }
                Ok(u) => Some(u),
                Err(e) => {
                    crate::say_err!("jumpgate up: {e}\n{}", crate::up::USAGE);
                    return ExitCode::from(EXIT_USAGE);
                }
            }
        }
        _ => None,
    };
    let verbose = cli
        .verbose
        .saturating_add(up.as_ref().map_or(0, |u| u.verbose));
    crate::telemetry::init(verbose, cli.log_format == LogFormat::Json);
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    match cli.threads {
        Some(n) => {
            builder.worker_threads(usize::from(n));
        }
        // tokio reads TOKIO_WORKER_THREADS itself when we set nothing.
        None if std::env::var_os("TOKIO_WORKER_THREADS").is_some() => {}
        None => {
            builder.worker_threads(default_threads());
        }
    }
    let rt = match builder.build() {
        Ok(rt) => rt,
        Err(e) => {
            crate::say_err!("jumpgate: cannot start the runtime: {e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    let code = rt.block_on(async {
        match cli.command {
            Command::Run { config } => run(&config).await,
            Command::Check { config } => match load(&config) {
                Ok(c) => crate::check::run(&config, &c).await,
                Err(code) => code,
            },
            Command::Demo { port } => crate::demo::run(port).await,
            Command::Up { .. } => match up {
                Some(u) => crate::up::run(u).await,
                None => EXIT_USAGE,
            },
            Command::Status { admin } => crate::status_table::run(&admin).await,
        }
    });
    ExitCode::from(code)
}

/// Half the CPUs, at least one: every packet passes from its session's task
/// to its tunnel's task, and across threads each pass costs a wakeup. On the
/// 2-core bench machine one worker moved a GiB with 0.87x the CPU of ssh -D,
/// two workers with 1.13x (same run order, 5 runs each). The other half is
/// left to the clients and, on a bastion, to sshd.
fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
}

/// The config file, or the message and the exit code (78).
fn load(path: &Path) -> Result<Config, u8> {
    Config::load(path).map_err(|e| {
        crate::say_err!("jumpgate: {e}");
        EXIT_CONFIG
    })
}

/// `jumpgate run`: the daemon, foreground, until a signal.
async fn run(path: &Path) -> u8 {
    match load(path) {
        Ok(config) => {
            Startup {
                who: "jumpgate",
                first_login: false,
                grace: DEFAULT_GRACE,
                readiness: None,
            }
            .run(config)
            .await
        }
        Err(code) => code,
    }
}
