//! Expansions in ssh_config values: `~` and `~user` (from the password
//! database, as OpenSSH's tilde_expand_filename), `%` tokens and `${VAR}`
//! environment variables. Which tokens a keyword accepts is the caller's
//! choice (HostName knows only `%h`).

use super::local::Local;

/// `~/x` -> home/x, `~user/x` -> that user's home/x; other text unchanged.
pub fn tilde(s: &str, local: &Local) -> Result<String, String> {
    let Some(rest) = s.strip_prefix('~') else {
        return Ok(s.to_owned());
    };
    let (user, path) = match rest.find('/') {
        Some(0) => ("", &rest[1..]),
        Some(i) => (&rest[..i], &rest[i + 1..]),
        // OpenSSH: "~foo" without a slash is the own home directory.
        None => ("", ""),
    };
    let home = if user.is_empty() {
        local.home.clone()
    } else {
        local
            .home_of(user)
            .ok_or_else(|| format!("tilde expansion: no such user {user}"))?
    };
    let home = home.display().to_string();
    let home = home.trim_end_matches('/');
    Ok(format!("{home}/{path}"))
}

/// Replaces `%c` for every `(c, value)` in `tokens` and `%%` by `%`; any other
/// `%c` is an error naming it.
pub fn percent(s: &str, tokens: &[(char, &str)]) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some(k) => match tokens.iter().find(|(t, _)| *t == k) {
                Some((_, v)) => out.push_str(v),
                None => return Err(format!("unknown token %{k} in \"{s}\"")),
            },
            None => return Err(format!("\"{s}\" ends with a lone %")),
        }
    }
    Ok(out)
}

/// `${VAR}` from the environment; an unset variable is an error.
pub fn env_vars(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("\"{s}\": unterminated ${{"))?;
        let name = &after[..end];
        let v = std::env::var(name)
            .map_err(|_| format!("environment variable ${{{name}}} has no value"))?;
        out.push_str(&v);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn local() -> Local {
        Local {
            uid: 1000,
            user: "me".into(),
            home: PathBuf::from("/home/me"),
            env_home: PathBuf::from("/home/me"),
            hostname: "box.lan".into(),
        }
    }

    #[test]
    fn tilde_forms() {
        let l = local();
        assert_eq!(tilde("~/.ssh/k", &l).unwrap(), "/home/me/.ssh/k");
        assert_eq!(tilde("/abs", &l).unwrap(), "/abs");
        assert_eq!(tilde("rel/~x", &l).unwrap(), "rel/~x");
        assert_eq!(tilde("~root/x", &l).unwrap(), "/root/x");
        assert!(tilde("~no-such-user-here/x", &l).is_err());
    }

    #[test]
    fn percent_tokens() {
        let t = [('h', "host"), ('p', "22")];
        assert_eq!(percent("%h:%p %%", &t).unwrap(), "host:22 %");
        let e = percent("a%zb", &t).unwrap_err();
        assert!(e.contains("%z"), "{e}");
        assert!(percent("x%", &t).is_err());
    }

    #[test]
    fn env_expansion() {
        assert_eq!(env_vars("no vars").unwrap(), "no vars");
        let home = std::env::var("PATH").unwrap_or_default();
        assert_eq!(env_vars("${PATH}/x").unwrap(), format!("{home}/x"));
        assert!(env_vars("${JG_SURELY_UNSET_VAR_1234}").is_err());
    }
}
