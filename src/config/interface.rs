//! Which interface a user configured an upstream through, and how each
//! setting a message may point at is spelled there: a TOML key for `run` and
//! `check` users, an ssh option (`-o Keyword=value`, `-i`) for `jumpgate up`
//! users, who never saw our TOML. Carried on `Upstream::interface`, read
//! where hints are worded (`ssh::session::error`, `ssh::session::auth`,
//! `ssh::known_hosts`, `ssh::identity`), so the wording is chosen by a typed
//! value rather than by rewriting a message afterwards. The types
//! (`Interface`, `Setting`) are the model's (`model.rs`); this file is how
//! each is spelled.

use super::model::{HostKeyCheck, Interface, Setting};

impl Interface {
    /// The setting's name in this interface.
    pub fn key(self, s: Setting) -> &'static str {
        match (self, s) {
            (Self::Toml, Setting::Kex) => "kex",
            (Self::Toml, Setting::Ciphers) => "ciphers",
            (Self::Toml, Setting::Macs) => "macs",
            (Self::Toml, Setting::HostKeyAlgorithms) => "host_key_algorithms",
            (Self::Toml, Setting::IdentityFiles) => "identity_files",
            (Self::Ssh, Setting::Kex) => "KexAlgorithms",
            (Self::Ssh, Setting::Ciphers) => "Ciphers",
            (Self::Ssh, Setting::Macs) => "MACs",
            (Self::Ssh, Setting::HostKeyAlgorithms) => "HostKeyAlgorithms",
            (Self::Ssh, Setting::IdentityFiles) => "-i / IdentityFile",
        }
    }

    /// How to ask for this host key policy: `host_key_check = "accept-new"`
    /// or `-o StrictHostKeyChecking=accept-new`.
    pub fn host_key_check(self, policy: HostKeyCheck) -> String {
        match self {
            Self::Toml => {
                let v = match policy {
                    HostKeyCheck::Strict => "strict",
                    HostKeyCheck::AcceptNew => "accept-new",
                    HostKeyCheck::Off => "off",
                };
                format!("host_key_check = \"{v}\"")
            }
            Self::Ssh => {
                let v = match policy {
                    HostKeyCheck::Strict => "yes",
                    HostKeyCheck::AcceptNew => "accept-new",
                    HostKeyCheck::Off => "no",
                };
                format!("-o StrictHostKeyChecking={v}")
            }
        }
    }

    /// What to do when there was no key at all to offer.
    pub fn no_keys_hint(self) -> &'static str {
        match self {
            Self::Toml => "set identity_files, or agent = true with SSH_AUTH_SOCK or agent_socket",
            Self::Ssh => "give -i KEY or IdentityFile, or add a key to ssh-agent (SSH_AUTH_SOCK or IdentityAgent)",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_interface_speaks_its_own_names() {
        let accept = HostKeyCheck::AcceptNew;
        assert_eq!(
            Interface::Toml.host_key_check(accept),
            "host_key_check = \"accept-new\""
        );
        assert_eq!(
            Interface::Ssh.host_key_check(accept),
            "-o StrictHostKeyChecking=accept-new"
        );
        assert_eq!(
            Interface::Ssh.host_key_check(HostKeyCheck::Off),
            "-o StrictHostKeyChecking=no"
        );
        assert_eq!(Interface::Toml.key(Setting::Kex), "kex");
        assert_eq!(Interface::Ssh.key(Setting::Kex), "KexAlgorithms");
        assert!(Interface::Ssh.no_keys_hint().contains("IdentityFile"));
        assert!(!Interface::Ssh.no_keys_hint().contains("identity_files"));
    }
}
