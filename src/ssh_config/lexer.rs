//! Splitting ssh_config lines as OpenSSH does: the keyword ends at
//! whitespace or a single `=` (`Key Value`, `Key=Value`, `Key = Value`), the
//! rest is split into arguments with `"`/`'` quoting, backslash escapes, and
//! `#` starting a comment at the start of an argument.

const WHITESPACE: &[char] = &[' ', '\t', '\r', '\n'];

/// A line split into its lowercased keyword and the unsplit rest.
#[derive(Debug, PartialEq, Eq)]
pub struct Line {
    pub keyword: String,
    /// The text after the keyword and its separator (never empty).
    pub rest: String,
}

/// `Ok(None)` for blank and comment lines; `Err` for a keyword without an
/// argument (OpenSSH's wording).
pub fn split_line(raw: &str) -> Result<Option<Line>, String> {
    let line = raw.trim_end_matches([' ', '\t', '\r', '\n', '\x0c']);
    let (mut keyword, mut rest) = strdelim(line);
    if keyword.is_empty() {
        match rest {
            Some(r) => (keyword, rest) = strdelim(r),
            None => return Ok(None),
        }
    }
    if keyword.is_empty() || keyword.starts_with('#') {
        return Ok(None);
    }
    let keyword = keyword.to_ascii_lowercase();
    let rest = rest.map(|r| r.trim_start_matches(WHITESPACE)).unwrap_or("");
    if rest.is_empty() {
        return Err(format!("no argument after keyword \"{keyword}\""));
    }
    Ok(Some(Line {
        keyword,
        rest: rest.to_owned(),
    }))
}

/// OpenSSH's strdelim: the first token (ending at whitespace, a quote or one
/// `=`) and what follows it, leading whitespace and one `=` skipped.
fn strdelim(s: &str) -> (String, Option<&str>) {
    let Some(pos) = s.find([' ', '\t', '\r', '\n', '"', '=']) else {
        return (s.to_owned(), None);
    };
    if s[pos..].starts_with('"') {
        let quoted = &s[pos + 1..];
        return match quoted.find('"') {
            Some(end) => {
                let token = format!("{}{}", &s[..pos], &quoted[..end]);
                let after = quoted[end + 1..].trim_start_matches(WHITESPACE);
                (token, Some(after))
            }
            None => (String::new(), None),
        };
    }
    let token = s[..pos].to_owned();
    let was_equals = s[pos..].starts_with('=');
    let mut after = s[pos + 1..].trim_start_matches(WHITESPACE);
    if !was_equals {
        if let Some(a) = after.strip_prefix('=') {
            after = a.trim_start_matches(WHITESPACE);
        }
    }
    (token, Some(after))
}

/// A `Match` line's arguments as OpenSSH 9.2 splits them: with strdelim,
/// not argv_split, so `=` separates a criterion from its value as blanks do
/// (`Match host=a,b user=x`) and only `"` quotes. Splitting stops at the
/// first empty token (`""`, a second `=`); the flag says whether text was
/// left after it (ssh then reports extra arguments).
pub fn split_match(s: &str) -> (Vec<String>, bool) {
    let mut args = Vec::new();
    let mut rest = s;
    loop {
        let (token, after) = strdelim(rest);
        if token.is_empty() {
            return (args, after.is_some_and(|a| !a.is_empty()));
        }
        args.push(token);
        match after {
            Some(a) => rest = a,
            None => return (args, false),
        }
    }
}

/// OpenSSH's argv_split with comments on: arguments separated by blanks,
/// `"..."` and `'...'` quoting, `\"`, `\'`, `\\` and `\ ` escapes.
pub fn split_args(s: &str) -> Result<Vec<String>, String> {
    let b: Vec<char> = s.chars().collect();
    let mut args = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == ' ' || b[i] == '\t' {
            i += 1;
            continue;
        }
        if b[i] == '#' {
            break;
        }
        let mut arg = String::new();
        let mut quote: Option<char> = None;
        while i < b.len() {
            let c = b[i];
            if c == '\\' {
                match b.get(i + 1) {
                    Some(&n)
                        if n == '\'' || n == '"' || n == '\\' || (quote.is_none() && n == ' ') =>
                    {
                        arg.push(n);
                        i += 2;
                    }
                    _ => {
                        arg.push(c);
                        i += 1;
                    }
                }
                continue;
            }
            match quote {
                None if c == ' ' || c == '\t' => break,
                None if c == '"' || c == '\'' => quote = Some(c),
                Some(q) if c == q => quote = None,
                _ => arg.push(c),
            }
            i += 1;
        }
        if quote.is_some() {
            return Err("invalid quotes".into());
        }
        args.push(arg);
    }
    Ok(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(s: &str) -> (String, String) {
        let l = split_line(s).expect("ok").expect("a line");
        (l.keyword, l.rest)
    }

    #[test]
    fn separators() {
        assert_eq!(kv("Port 22"), ("port".into(), "22".into()));
        assert_eq!(kv("Port=22"), ("port".into(), "22".into()));
        assert_eq!(kv("  Port = 22  \r\n"), ("port".into(), "22".into()));
        assert_eq!(
            kv("\tHostName\t\thost.example"),
            ("hostname".into(), "host.example".into())
        );
        assert_eq!(kv("Port==22"), ("port".into(), "=22".into()));
        assert_eq!(kv("\"User\" bob"), ("user".into(), "bob".into()));
    }

    #[test]
    fn blanks_comments_and_missing_arguments() {
        assert_eq!(split_line(""), Ok(None));
        assert_eq!(split_line("   "), Ok(None));
        assert_eq!(split_line("# Port 22"), Ok(None));
        assert_eq!(split_line("  #x"), Ok(None));
        assert_eq!(
            split_line("Port"),
            Err("no argument after keyword \"port\"".into())
        );
        assert_eq!(
            split_line("Port =  "),
            Err("no argument after keyword \"port\"".into())
        );
    }

    #[test]
    fn match_arguments_split_at_equals_too() {
        let split = |s: &str| split_match(s);
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            split("host=a,b user=x"),
            (v(&["host", "a,b", "user", "x"]), false)
        );
        assert_eq!(split("host = a"), (v(&["host", "a"]), false));
        assert_eq!(
            split("host =a\tuser= b"),
            (v(&["host", "a", "user", "b"]), false)
        );
        assert_eq!(split("host a =b"), (v(&["host", "a", "b"]), false));
        assert_eq!(split("host=\"a b\""), (v(&["host", "a b"]), false));
        assert_eq!(split("host='a'"), (v(&["host", "'a'"]), false));
        assert_eq!(split("host==a"), (v(&["host"]), true));
        assert_eq!(split("host a \"\" b"), (v(&["host", "a"]), true));
        assert_eq!(split("\"host\"=a"), (v(&["host"]), true));
        assert_eq!(split("host=a # c"), (v(&["host", "a", "#", "c"]), false));
    }

    #[test]
    fn argument_quoting() {
        assert_eq!(split_args("a b\tc").unwrap(), ["a", "b", "c"]);
        assert_eq!(split_args("\"a b\" 'c d'").unwrap(), ["a b", "c d"]);
        assert_eq!(split_args("a\\ b").unwrap(), ["a b"]);
        assert_eq!(split_args("x # comment").unwrap(), ["x"]);
        assert_eq!(split_args("x#y").unwrap(), ["x#y"]);
        assert_eq!(split_args("\"\"").unwrap(), [""]);
        assert_eq!(split_args("a\\qb").unwrap(), ["a\\qb"]);
        assert!(split_args("\"open").is_err());
    }
}
