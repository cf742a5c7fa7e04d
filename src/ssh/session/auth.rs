//! Logging in on one hop: public-key authentication with the configured
//! identities (each one's certificates first, then its key), then the
//! agent's keys, as ssh does. A refusal becomes `ConnectError::Denied`,
//! which lists what was tried and what the server accepts, like OpenSSH's
//! "Permission denied (publickey)". Keys come from `ssh::identity`.

use russh::client::{self, Handle};
use russh::keys::{HashAlg, PrivateKeyWithHashAlg};
use tracing::{debug, info, warn};

use super::error::ConnectError;
use super::handler::JumpHandler;
use super::settings::SessionSettings;
use crate::config::Endpoint;
use crate::ssh::known_hosts;

/// Public-key authentication: configured identity files first (each one's
/// certificates, then the key itself), then the agent's keys (as ssh does).
pub(super) async fn authenticate(
    handle: &mut Handle<JumpHandler>,
    settings: &SessionSettings,
    endpoint: &Endpoint,
    user: &str,
) -> Result<(), ConnectError> {
    let u = &settings.upstream;
    let mut tried = Vec::new();
    let mut methods = String::from("(unknown)");
    let ssh_err = |source| ConnectError::Ssh {
        addr: endpoint.to_string(),
        source,
    };
    for id in &settings.identities {
        // Certificates first, then the plain key (ssh's order).
        for c in &id.certificates {
            let res = handle
                .authenticate_openssh_cert(user, id.key.clone(), c.cert.clone())
                .await
                .map_err(ssh_err)?;
            let problem = c
                .validity_problem(crate::ssh::identity::unix_now())
                .or_else(|| c.caveat().map(str::to_owned));
            tried.push(match &problem {
                Some(p) => format!("certificate {} [{p}]", c.describe()),
                None => format!("certificate {}", c.describe()),
            });
            match res {
                client::AuthResult::Success => {
                    debug!(certificate = %c.path.display(), "authenticated");
                    return Ok(());
                }
                // The plain key's attempt that follows updates `methods`.
                client::AuthResult::Failure { .. } => {
                    info!(%user, host = %endpoint, certificate = %c.describe(),
                        problem = problem.as_deref().unwrap_or("none seen here"),
                        "certificate refused");
                }
            }
        }
        let hash = rsa_hash(handle, id.key.algorithm().is_rsa())
            .await
            .map_err(ssh_err)?;
        let key = PrivateKeyWithHashAlg::new(id.key.clone(), hash);
        let res = handle
            .authenticate_publickey(user, key)
            .await
            .map_err(ssh_err)?;
        tried.push(format!("{} ({})", id.path.display(), id.key.algorithm()));
        match res {
            client::AuthResult::Success => {
                debug!(key = %id.path.display(), "authenticated");
                return Ok(());
            }
            client::AuthResult::Failure {
                remaining_methods, ..
            } => methods = method_names(&remaining_methods),
        }
    }
    // agent_socket (ssh's IdentityAgent PATH) wins over $SSH_AUTH_SOCK.
    let socket = match &u.agent_socket {
        Some(p) => Some(p.clone()),
        None => std::env::var_os("SSH_AUTH_SOCK").map(std::path::PathBuf::from),
    };
    if let Some(socket) = socket.filter(|_| u.agent) {
        match russh::keys::agent::client::AgentClient::connect_uds(&socket).await {
            Ok(mut agent) => {
                let ids = agent.request_identities().await.unwrap_or_default();
                for ident in ids {
                    let key = ident.public_key().into_owned();
                    let hash = rsa_hash(handle, key.algorithm().is_rsa())
                        .await
                        .map_err(ssh_err)?;
                    tried.push(format!("agent key {}", known_hosts::fingerprint(&key)));
                    match handle
                        .authenticate_publickey_with(user, key, hash, &mut agent)
                        .await
                    {
                        Ok(client::AuthResult::Success) => return Ok(()),
                        Ok(client::AuthResult::Failure {
                            remaining_methods, ..
                        }) => methods = method_names(&remaining_methods),
                        Err(e) => warn!(error = %e, "agent could not sign"),
                    }
                }
            }
            Err(e) => warn!(error = %e, socket = %socket.display(), "the agent is unreachable"),
        }
    }
    // ssh's words for a named identity file that is not there: when nothing
    // else was tried it is the reason, and says what to fix better than a
    // generic hint.
    let missing: Vec<String> = u
        .missing_identities
        .iter()
        .map(|(p, why)| format!("no such identity: {}: {why}", p.display()))
        .collect();
    if tried.is_empty() {
        tried.push(if missing.is_empty() {
            format!("no keys ({})", u.interface.no_keys_hint())
        } else {
            format!("no keys ({})", missing.join(", "))
        });
        // Nothing was tried, so the server has not said what it accepts: ask.
        if let Ok(client::AuthResult::Failure {
            remaining_methods, ..
        }) = handle.authenticate_none(user).await
        {
            methods = method_names(&remaining_methods);
        }
    } else {
        tried.extend(missing);
    }
    info!(%user, host = %endpoint, "authentication failed");
    Err(ConnectError::Denied {
        user: user.to_owned(),
        addr: endpoint.to_string(),
        tried: tried.join(", "),
        methods,
    })
}

/// The methods a server accepts, as OpenSSH lists them ("publickey,password").
fn method_names(methods: &russh::MethodSet) -> String {
    methods
        .iter()
        .map(<&str>::from)
        .collect::<Vec<_>>()
        .join(",")
}

async fn rsa_hash(
    handle: &Handle<JumpHandler>,
    is_rsa: bool,
) -> Result<Option<HashAlg>, russh::Error> {
    if !is_rsa {
        return Ok(None);
    }
    // Servers that do not announce server-sig-algs get SHA-256, which every
    // OpenSSH since 7.2 accepts (SHA-1 "ssh-rsa" is off since 8.8).
    Ok(handle
        .best_supported_rsa_hash()
        .await?
        .flatten()
        .or(Some(HashAlg::Sha256)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use russh::MethodKind;

    #[test]
    fn server_methods_are_listed_as_openssh_does() {
        let set = russh::MethodSet::from(&[MethodKind::PublicKey, MethodKind::Password][..]);
        assert_eq!(method_names(&set), "publickey,password");
        assert_eq!(method_names(&russh::MethodSet::empty()), "");
    }
}
