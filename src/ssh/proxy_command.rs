//! ssh's ProxyCommand: the first hop's SSH connection runs over a command's
//! stdin and stdout (`ssh -W %h:%p bastion`, `nc -X connect -x proxy %h %p`,
//! cloud "start session" helpers) instead of a TCP connection we make.
//!
//! As OpenSSH does, the command runs with `/bin/sh -c "exec COMMAND"`, its
//! stderr goes to ours, and it is killed when the session ends. Used by
//! `session::dial` for the first hop.

use std::process::Stdio;

use tokio::io::Join;
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::config::Endpoint;

/// The command's stdout (server to us) and stdin (us to server) as one stream.
pub type CommandStream = Join<ChildStdout, ChildStdin>;

#[derive(Debug, thiserror::Error)]
pub enum ProxyCommandError {
    #[error("ProxyCommand {command:?}: {token}: unknown token (known: %h %p %r %n %%)")]
    Token { command: String, token: String },
    #[error("ProxyCommand {command:?}: cannot start /bin/sh: {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
}

/// Expands OpenSSH's tokens: `%h` host, `%p` port, `%r` remote user, `%n`
/// the host as written (the same here: we do not canonicalise), `%%`.
pub fn expand(command: &str, to: &Endpoint, user: &str) -> Result<String, ProxyCommandError> {
    let mut out = String::with_capacity(command.len() + 16);
    let mut chars = command.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('h') | Some('n') => out.push_str(&to.host),
            Some('p') => out.push_str(&to.port.to_string()),
            Some('r') => out.push_str(user),
            Some('%') => out.push('%'),
            other => {
                return Err(ProxyCommandError::Token {
                    command: command.to_owned(),
                    token: format!("%{}", other.map(String::from).unwrap_or_default()),
                })
            }
        }
    }
    Ok(out)
}

/// Starts the expanded command; the child is killed when dropped.
pub fn spawn(command: &str) -> Result<(Child, CommandStream), ProxyCommandError> {
    let spawn_err = |source| ProxyCommandError::Spawn {
        command: command.to_owned(),
        source,
    };
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("exec {command}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(spawn_err)?;
    let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        return Err(spawn_err(std::io::Error::other("no stdin/stdout pipe")));
    };
    Ok((child, tokio::io::join(stdout, stdin)))
}

/// Why the command is no longer running, if it is not ("exited with status
/// 255"), to explain a failed handshake.
pub fn exit_status(child: &mut Child) -> Option<String> {
    match child.try_wait() {
        Ok(Some(status)) => Some(format!("exited with {status}")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_expand_like_openssh() {
        let to = Endpoint {
            host: "db.internal".into(),
            port: 2222,
        };
        assert_eq!(
            expand("ssh -W %h:%p -l %r bastion # 100%%", &to, "ci").expect("valid"),
            "ssh -W db.internal:2222 -l ci bastion # 100%"
        );
        let e = expand("nc %x", &to, "ci").expect_err("unknown");
        assert!(e.to_string().contains("%x: unknown token"), "{e}");
        assert!(expand("nc %", &to, "ci").is_err());
    }
}
