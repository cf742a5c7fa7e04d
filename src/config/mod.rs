//! The configuration: the TOML file (`jumpgate run`, `check`) parsed into
//! raw serde types (unknown keys are errors), then validated into the typed
//! model, so nothing downstream deals with "must be set by now" options.
//! Every error names the file, the line and the key. Parsing works on text,
//! so tests need no file. `jumpgate up` builds the same model from
//! ssh_config through [`from_ssh_config`].
//!
//! `config` sits below the SSH layer: it uses the ssh_config parser
//! (`crate::ssh_config`) and nothing else of the crate; `ssh`, `proxy`,
//! `limit`, `daemon`, `up` and `cli` read its model.
//!
//! Files: `model` (the typed values and defaults), `raw` (serde types),
//! `validate` (the checks over the whole file), `upstream` and `listener`
//! (one table each), `merge` (an upstream's `ssh_config =` key),
//! `from_ssh_config` (a resolved ssh_config host as an upstream),
//! `algorithms` (algorithm names), `toml_errors` (serde's and toml's
//! errors worded per key), `interface` (how a setting is
//! spelled for the interface the user came through), `text` (small string forms), `home`
//! (home directory and user name), `relay` (the `[relay]` table).

pub mod algorithms;
pub mod from_ssh_config;
mod home;
mod interface;
mod listener;
mod merge;
mod model;
mod raw;
mod relay;
mod text;
mod toml_errors;
mod upstream;
mod validate;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub use crate::ssh_config::DEFAULT_GLOBAL_KNOWN_HOSTS;

pub use model::*;
pub use text::{
    expand_tilde, parse_bind, parse_duration, parse_endpoint, parse_remote_bind, parse_size,
};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read config: {source}")]
    Read {
        path: DisplayPath,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {msg}")]
    Invalid {
        path: DisplayPath,
        line: usize,
        msg: String,
    },
    #[error("{path}: {msg}")]
    Whole { path: DisplayPath, msg: String },
    /// Not TOML; `msg` quotes the line with a caret under the column.
    #[error("{path}:{line}:{column}: {msg}")]
    Syntax {
        path: DisplayPath,
        line: usize,
        column: usize,
        msg: String,
    },
}

/// A path as shown in messages (lossy, never fails).
#[derive(Debug, Clone)]
pub struct DisplayPath(pub PathBuf);

impl fmt::Display for DisplayPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.display())
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub upstreams: Vec<Upstream>,
    pub listeners: Vec<Listener>,
    /// Where the admin HTTP endpoint listens; none without `[admin]`.
    pub admin: Option<SocketAddr>,
    pub limits: LimitSettings,
    /// `[relay]`: buffers and caps for slow clients.
    pub relay: RelaySettings,
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: DisplayPath(path.to_owned()),
            source,
        })?;
        Config::from_toml(&text, path)
    }

    /// Parses and validates `text`; `path` is only used in messages and to
    /// resolve nothing else (relative paths stay relative to the cwd, as ssh).
    pub fn from_toml(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let cx = validate::Cx { text, path };
        // Syntax first, on its own, so that its errors keep line, column
        // and the quoted line; then the types, worded per key.
        if let Err(e) = text.parse::<toml::Table>() {
            let at = e.span().map_or(0, |s| s.start);
            return Err(ConfigError::Syntax {
                path: DisplayPath(path.to_owned()),
                line: cx.line_of(at),
                column: cx.column_of(at),
                msg: toml_errors::syntax(&e.to_string()),
            });
        }
        let raw: raw::RawConfig = toml::from_str(text).map_err(|e| {
            let at = e.span().map(|s| s.start);
            let line = at.map_or(1, |a| cx.line_of(a));
            cx.err_line(line, toml_errors::data(e.message(), text, at))
        })?;
        cx.validate(raw)
    }
}

/// What the unit tests of every config file parse.
#[cfg(test)]
mod testing {
    use super::{Config, ConfigError};
    use std::path::Path;

    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml(text, Path::new("/etc/jumpgate.toml"))
    }

    pub const GOOD: &str = r#"
[[upstream]]
name = "corp"
host = "bastion.example"
user = "ci"
identity_files = ["~/.ssh/id_ed25519"]
keepalive = { interval = "5s", count_max = 2 }

[[listener]]
name = "browser"
bind = "127.0.0.1:1080"
via = "corp"
handshake_timeout = "3s"
"#;
}
