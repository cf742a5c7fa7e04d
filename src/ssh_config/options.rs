//! The options as read so far, OpenSSH-style: every single value is an
//! `Option` that only its first setting fills ("the first obtained value
//! wins"); lists (identities, forwards) accumulate without duplicates.
//! Command-line flags are applied first, then the files.

use super::jump::Jump;
use super::spec::Forward;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrictHostKeyChecking {
    Yes,
    No,
    Ask,
    AcceptNew,
}

impl StrictHostKeyChecking {
    /// As `ssh -G` prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Yes => "true",
            Self::No => "false",
            Self::Ask => "ask",
            Self::AcceptNew => "accept-new",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressFamily {
    Any,
    Inet,
    Inet6,
}

impl AddressFamily {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Any => "any",
            Self::Inet => "inet",
            Self::Inet6 => "inet6",
        }
    }
}

/// An IdentityFile or CertificateFile entry as written (unexpanded), and
/// whether it came from the user (command line, user config) or the system
/// config: OpenSSH keeps equal paths from both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    pub path: String,
    pub user_provided: bool,
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    pub user: Option<String>,
    pub hostname: Option<String>,
    pub port: Option<u16>,
    pub identity_files: Vec<FileEntry>,
    pub certificate_files: Vec<FileEntry>,
    pub identities_only: Option<bool>,
    pub identity_agent: Option<String>,
    pub proxy_command: Option<String>,
    pub jump: Option<Jump>,
    /// Local and dynamic forwards in one list, as OpenSSH keeps them.
    pub local_forwards: Vec<Forward>,
    pub remote_forwards: Vec<Forward>,
    pub server_alive_interval: Option<u32>,
    pub server_alive_count_max: Option<u32>,
    pub connect_timeout: Option<u32>,
    pub strict_host_key_checking: Option<StrictHostKeyChecking>,
    pub user_known_hosts_files: Option<Vec<String>>,
    pub global_known_hosts_files: Option<Vec<String>>,
    pub host_key_algorithms: Option<String>,
    pub kex_algorithms: Option<String>,
    pub ciphers: Option<String>,
    pub macs: Option<String>,
    pub compression: Option<bool>,
    pub exit_on_forward_failure: Option<bool>,
    pub gateway_ports: Option<bool>,
    pub batch_mode: Option<bool>,
    pub address_family: Option<AddressFamily>,
    pub ignore_unknown: Option<String>,
}

/// Sets `slot` unless it already holds a value.
pub fn first<T>(slot: &mut Option<T>, v: T) {
    if slot.is_none() {
        *slot = Some(v);
    }
}

impl Options {
    pub fn add_identity_file(&mut self, path: String, user_provided: bool) {
        add_unique(
            &mut self.identity_files,
            FileEntry {
                path,
                user_provided,
            },
        );
    }

    pub fn add_certificate_file(&mut self, path: String, user_provided: bool) {
        add_unique(
            &mut self.certificate_files,
            FileEntry {
                path,
                user_provided,
            },
        );
    }

    pub fn add_local_forward(&mut self, f: Forward) {
        if !self.local_forwards.contains(&f) {
            self.local_forwards.push(f);
        }
    }

    pub fn add_remote_forward(&mut self, f: Forward) {
        if !self.remote_forwards.contains(&f) {
            self.remote_forwards.push(f);
        }
    }
}

fn add_unique(list: &mut Vec<FileEntry>, e: FileEntry) {
    if !list.contains(&e) {
        list.push(e);
    }
}
