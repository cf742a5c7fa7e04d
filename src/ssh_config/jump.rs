//! ProxyJump lists (`-J`, `-o ProxyJump=`, `ProxyJump` in a file) read as
//! OpenSSH 9.2 (Debian's 9.2p1-2+deb12u10, the `ssh -G` the tests compare
//! with) reads them: the value is cut at `#` and at the first blank after
//! its first character, hops are separated by commas, each hop is an ssh URI
//! or `[user@]host[:port]`, and on the command line every hop's host and
//! user must be free of shell metacharacters (ssh's `parse_jump: invalid
//! hostname`). Files are not checked that way: ssh accepts
//! `ProxyJump a;b` there.
//!
//! Used by `parse` (the keyword), `print` (`proxyjump` in `-G`) and `up`'s
//! `-J` flag; the hop grammar itself is in `spec`.

use super::spec::{parse_hop, UserHostPort};

/// A ProxyJump value, kept as OpenSSH keeps it: the last hop parsed and the
/// hops before it as written (that is what `ssh -G` prints).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Jump {
    /// `ProxyJump none`.
    Disabled,
    Hops {
        /// The hops before the last, as written (`a,b`).
        extra: Option<String>,
        last: UserHostPort,
    },
}

/// Why a ProxyJump value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JumpError {
    /// A hop that is neither an ssh URI nor `[user@]host[:port]` (ssh says
    /// only "Invalid -J argument" / "Invalid ProxyJump").
    #[error("not a list of [user@]host[:port] hops")]
    Syntax,
    /// A hop's host with a shell metacharacter, a blank or a control
    /// character, or starting with `-` (command line only).
    #[error("parse_jump: invalid hostname \"{}\"", vis(.0))]
    Hostname(String),
    /// A hop's user with a shell metacharacter or a control character,
    /// starting with `-`, with `-` after a blank, or ending in `\`
    /// (command line only).
    #[error("parse_jump: invalid username \"{}\"", vis(.0))]
    Username(String),
}

impl JumpError {
    /// The lines ssh prints for this refusal, ending with `what` (its own
    /// summary line, such as `Invalid -J argument`).
    pub fn lines(&self, what: &str) -> String {
        match self {
            JumpError::Syntax => what.to_owned(),
            detail => format!("{detail}\n{what}"),
        }
    }
}

impl Jump {
    /// A value from a config file: hops must parse, names are not checked.
    pub fn parse(s: &str) -> Option<Jump> {
        Self::read(s, false).ok()
    }

    /// A value from the command line (`-J`, `-o ProxyJump=`): as `parse`,
    /// and every hop's host and user must be safe to hand to a shell.
    pub fn parse_cmdline(s: &str) -> Result<Jump, JumpError> {
        Self::read(s, true)
    }

    fn read(s: &str, check_names: bool) -> Result<Jump, JumpError> {
        // ssh compares the value as given with "none", before it drops
        // comments and blanks: `none # x` names a hop called "none".
        if s.eq_ignore_ascii_case("none") {
            return Ok(Jump::Disabled);
        }
        let s = cut(s);
        let hops: Vec<&str> = s.split(',').collect();
        // ssh checks the last hop first, then walks to the left.
        let mut parsed = Vec::with_capacity(hops.len());
        for h in hops.iter().rev() {
            let hop = parse_hop(h).ok_or(JumpError::Syntax)?;
            if check_names {
                check_hop(&hop)?;
            }
            parsed.push(hop);
        }
        let last = parsed.into_iter().next().ok_or(JumpError::Syntax)?;
        let before = &hops[..hops.len() - 1];
        Ok(Jump::Hops {
            extra: (!before.is_empty()).then(|| before.join(",")),
            last,
        })
    }

    /// Every hop, outermost first.
    pub fn hops(&self) -> Vec<UserHostPort> {
        match self {
            Jump::Disabled => Vec::new(),
            Jump::Hops { extra, last } => {
                let mut v: Vec<UserHostPort> = extra
                    .as_deref()
                    .map(|e| e.split(',').filter_map(parse_hop).collect())
                    .unwrap_or_default();
                v.push(last.clone());
                v
            }
        }
    }

    /// As `ssh -G` prints it (`proxyjump ...`); None for `none`.
    pub fn display(&self) -> Option<String> {
        let Jump::Hops { extra, last } = self else {
            return None;
        };
        let mut s = String::new();
        if let Some(e) = extra {
            s.push_str(e);
            s.push(',');
        }
        if let Some(u) = &last.user {
            s.push_str(u);
            s.push('@');
        }
        // ssh brackets IPv6 addresses and anything that looks numeric
        // (digits and dots), so that a port after it cannot be misread.
        let numeric = last.host.chars().all(|c| c.is_ascii_digit() || c == '.');
        if last.host.contains(':') || numeric {
            s.push_str(&format!("[{}]", last.host));
        } else {
            s.push_str(&last.host);
        }
        if let Some(p) = last.port {
            s.push_str(&format!(":{p}"));
        }
        Some(s)
    }
}

/// The value as ssh parses it: everything from `#` dropped, then cut at the
/// first blank after the first character (ssh's trim loop blanks every
/// whitespace character but the first one, so `a b` is `a` and ` b` stays
/// ` b`).
fn cut(s: &str) -> &str {
    let s = s.split('#').next().unwrap_or("");
    match s.char_indices().skip(1).find(|(_, c)| is_space(*c)) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// C's isspace in the C locale.
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r')
}

fn check_hop(hop: &UserHostPort) -> Result<(), JumpError> {
    if !valid_hostname(&hop.host) {
        return Err(JumpError::Hostname(hop.host.clone()));
    }
    match &hop.user {
        Some(u) if !valid_user(u) => Err(JumpError::Username(u.clone())),
        _ => Ok(()),
    }
}

/// What ssh lets through as a jump host named on the command line.
fn valid_hostname(h: &str) -> bool {
    !h.starts_with('-')
        && !h
            .chars()
            .any(|c| "'`\"$\\;&<>|(){},".contains(c) || is_space(c) || c.is_ascii_control())
}

/// What ssh lets through as a jump user named on the command line.
fn valid_user(u: &str) -> bool {
    if u.is_empty() || u.starts_with('-') || u.ends_with('\\') {
        return false;
    }
    let b: Vec<char> = u.chars().collect();
    !b.iter().enumerate().any(|(i, &c)| {
        "'`\";&<>|(){}".contains(c)
            || c.is_ascii_control()
            || (is_space(c) && b.get(i + 1) == Some(&'-'))
    })
}

/// A name as ssh's log prints it (strnvis with VIS_SAFE | VIS_OCTAL):
/// backslashes doubled, control characters other than blanks as `\ooo`.
pub(super) fn vis(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ' ' | '\t' | '\n' | '\r' | '\x07' | '\x08' => out.push(c),
            c if c.is_ascii_control() => out.push_str(&format!("\\{:03o}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmdline_err(s: &str) -> String {
        match Jump::parse_cmdline(s) {
            Ok(j) => format!("accepted as {:?}", j.display()),
            Err(e) => e.lines("Invalid -J argument"),
        }
    }

    #[test]
    fn hops_comments_and_none() {
        let j = Jump::parse("a@j1:22,j2 # comment").expect("jump");
        assert_eq!(j.display().as_deref(), Some("a@j1:22,j2"));
        assert_eq!(j.hops().len(), 2);
        assert_eq!(j.hops()[0].user.as_deref(), Some("a"));
        assert_eq!(Jump::parse("none"), Some(Jump::Disabled));
        assert_eq!(Jump::parse("NONE"), Some(Jump::Disabled));
        assert_eq!(Jump::parse("a,@b"), None);
        assert_eq!(
            Jump::parse("ssh://u@x:2")
                .and_then(|j| j.display())
                .as_deref(),
            Some("u@x:2")
        );
        // Not "none" as given: a hop called none.
        assert_eq!(
            Jump::parse("none # off")
                .and_then(|j| j.display())
                .as_deref(),
            Some("none")
        );
    }

    #[test]
    fn cut_at_the_first_blank_after_the_first_character() {
        let shown = |s: &str| Jump::parse(s).and_then(|j| j.display());
        assert_eq!(shown("a b").as_deref(), Some("a"));
        assert_eq!(shown("u x@h").as_deref(), Some("u"));
        assert_eq!(shown("a,b c").as_deref(), Some("a,b"));
        assert_eq!(shown("a b,c").as_deref(), Some("a"));
        assert_eq!(shown("a\tb").as_deref(), Some("a"));
        assert_eq!(shown("u@ h"), None);
        assert_eq!(shown(" u@h").as_deref(), Some(" u@h"));
    }

    #[test]
    fn numeric_hosts_are_bracketed() {
        let shown = |s: &str| Jump::parse(s).and_then(|j| j.display());
        assert_eq!(shown("1.2.3.4").as_deref(), Some("[1.2.3.4]"));
        assert_eq!(shown("[1.2.3.4]:5").as_deref(), Some("[1.2.3.4]:5"));
        assert_eq!(shown("[::1]:22").as_deref(), Some("[::1]:22"));
        assert_eq!(shown("h1.example").as_deref(), Some("h1.example"));
    }

    #[test]
    fn files_accept_what_the_command_line_refuses() {
        assert!(Jump::parse("host;with;semicolon").is_some());
        assert!(Jump::parse("user'with'quote@host").is_some());
    }

    #[test]
    fn command_line_refuses_shell_metacharacters_as_ssh_does() {
        assert_eq!(
            cmdline_err("host;with;semicolon"),
            "parse_jump: invalid hostname \"host;with;semicolon\"\nInvalid -J argument"
        );
        assert_eq!(
            cmdline_err("user'with'quote@host"),
            "parse_jump: invalid username \"user'with'quote\"\nInvalid -J argument"
        );
        // The last hop is checked first, the host before the user.
        assert!(cmdline_err("bad;x,also;bad").contains("\"also;bad\""));
        assert!(cmdline_err("u;v@h;x").contains("hostname \"h;x\""));
        // A hop that does not parse at all: only the summary line.
        assert_eq!(cmdline_err("a;b,c/d"), "Invalid -J argument");
        assert_eq!(
            cmdline_err("a\\"),
            "parse_jump: invalid hostname \"a\\\\\"\nInvalid -J argument"
        );
        assert_eq!(
            cmdline_err("a\u{1}b"),
            "parse_jump: invalid hostname \"a\\001b\"\nInvalid -J argument"
        );
        for bad in [
            "-h", "a$b", "a`b", "a|b", "(a)", "{a}", "a<b", "a&b", "\tb", " b",
        ] {
            assert!(cmdline_err(bad).contains("invalid hostname"), "{bad:?}");
        }
        for bad in [
            "-u@h",
            " -u@h",
            "u\\@h",
            "u&v@h",
            "u\u{1}@h",
            "\tu@h",
            "u\u{7f}@h",
        ] {
            assert!(cmdline_err(bad).contains("invalid username"), "{bad:?}");
        }
        for good in [
            "a_b",
            "a%b",
            "a!b",
            "a*b",
            "$u@h",
            "u\\x@h",
            " u@h",
            "u@[::1]:22",
        ] {
            assert!(Jump::parse_cmdline(good).is_ok(), "{good:?}");
        }
    }
}
