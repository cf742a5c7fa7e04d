//! OpenSSH's pattern matching: `*` and `?` wildcards (`match_pattern`),
//! comma-separated lists with `!` negation (`match_pattern_list`), and the
//! file name globbing of `Include` (which also knows `[...]` classes and does
//! not let a wildcard match a leading dot, as glob(3)).

use std::path::PathBuf;

/// `*` matches any run of bytes (also none), `?` exactly one; case matters.
pub fn match_pattern(s: &str, pattern: &str) -> bool {
    wild(s.as_bytes(), pattern.as_bytes())
}

fn wild(s: &[u8], p: &[u8]) -> bool {
    // Iterative with one backtrack point: linear enough for host names.
    let (mut si, mut pi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == s[si]) {
            si += 1;
            pi += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, si));
            pi += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == b'*')
}

/// The result of matching against a pattern list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListMatch {
    /// A positive pattern matched and no negated one did.
    Yes,
    /// Nothing matched.
    No,
    /// A `!pattern` matched: the list refuses the string outright.
    Negated,
}

/// `pat1,!pat2,...` as OpenSSH's `match_pattern_list`: a matching negated
/// pattern wins over any positive one. With `lower`, the patterns are
/// lowercased (the caller lowercases the string).
pub fn match_pattern_list(s: &str, list: &str, lower: bool) -> ListMatch {
    let mut positive = false;
    for sub in list.split(',') {
        let (negated, pat) = match sub.strip_prefix('!') {
            Some(p) => (true, p),
            None => (false, sub),
        };
        let pat = if lower {
            pat.to_ascii_lowercase()
        } else {
            pat.to_owned()
        };
        if match_pattern(s, &pat) {
            if negated {
                return ListMatch::Negated;
            }
            positive = true;
        }
    }
    if positive {
        ListMatch::Yes
    } else {
        ListMatch::No
    }
}

/// `Match host`-style matching: the name is compared in lowercase.
pub fn match_hostname(host: &str, list: &str) -> ListMatch {
    match_pattern_list(&host.to_ascii_lowercase(), list, true)
}

/// The files an absolute glob pattern names, sorted as glob(3) sorts them.
/// A pattern without wildcards yields the path if it exists.
pub fn glob(pattern: &str) -> Vec<PathBuf> {
    let absolute = pattern.starts_with('/');
    let parts: Vec<&str> = pattern.split('/').filter(|p| !p.is_empty()).collect();
    let mut found = vec![if absolute {
        PathBuf::from("/")
    } else {
        PathBuf::from(".")
    }];
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        let mut next = Vec::new();
        for dir in &found {
            if !has_glob_meta(part) {
                let p = dir.join(part);
                if (last && p.exists()) || (!last && p.is_dir()) {
                    next.push(p);
                }
                continue;
            }
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            for e in entries.flatten() {
                let name = e.file_name();
                let Some(name) = name.to_str() else { continue };
                if glob_component(name, part) {
                    let p = dir.join(name);
                    if last || p.is_dir() {
                        next.push(p);
                    }
                }
            }
        }
        found = next;
    }
    if parts.is_empty() {
        return Vec::new();
    }
    let mut out: Vec<PathBuf> = found
        .into_iter()
        .map(|p| {
            if absolute {
                p
            } else {
                p.strip_prefix(".").map(PathBuf::from).unwrap_or(p)
            }
        })
        .collect();
    out.sort_by(|a, b| a.as_os_str().cmp(b.as_os_str()));
    out
}

fn has_glob_meta(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// One path component against one glob component: `*`, `?`, `[a-z]`,
/// `[!x]`; a leading dot must be matched literally.
fn glob_component(name: &str, pat: &str) -> bool {
    if name.starts_with('.') && !pat.starts_with('.') {
        return false;
    }
    glob_bytes(name.as_bytes(), pat.as_bytes())
}

fn glob_bytes(s: &[u8], p: &[u8]) -> bool {
    match p.first() {
        None => s.is_empty(),
        Some(b'*') => (0..=s.len()).any(|i| glob_bytes(&s[i..], &p[1..])),
        Some(b'?') => !s.is_empty() && glob_bytes(&s[1..], &p[1..]),
        Some(b'[') => match (s.first(), class_end(p)) {
            (Some(c), Some(end)) => {
                class_matches(&p[1..end], *c) && glob_bytes(&s[1..], &p[end + 1..])
            }
            (Some(c), None) => *c == b'[' && glob_bytes(&s[1..], &p[1..]),
            (None, _) => false,
        },
        Some(c) => s.first() == Some(c) && glob_bytes(&s[1..], &p[1..]),
    }
}

/// Index of the `]` closing the class that starts at `p[0] == '['`.
fn class_end(p: &[u8]) -> Option<usize> {
    let mut i = 1;
    if p.get(i) == Some(&b'!') {
        i += 1;
    }
    if p.get(i) == Some(&b']') {
        i += 1;
    }
    while i < p.len() {
        if p[i] == b']' {
            return Some(i);
        }
        i += 1;
    }
    None
}

fn class_matches(class: &[u8], c: u8) -> bool {
    let (negate, class) = match class.first() {
        Some(b'!') => (true, &class[1..]),
        _ => (false, class),
    };
    let mut hit = false;
    let mut i = 0;
    while i < class.len() {
        if i + 2 < class.len() && class[i + 1] == b'-' {
            if (class[i]..=class[i + 2]).contains(&c) {
                hit = true;
            }
            i += 3;
        } else {
            if class[i] == c {
                hit = true;
            }
            i += 1;
        }
    }
    hit != negate
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(match_pattern("foo.example", "*.example"));
        assert!(match_pattern("foo", "f?o"));
        assert!(match_pattern("", "*"));
        assert!(!match_pattern("foo", "f?"));
        assert!(match_pattern("a*b", "a*b"));
        assert!(match_pattern("abcbd", "a*b?"));
        assert!(!match_pattern("FOO", "foo"));
        assert!(match_pattern("x.y.z", "*.*"));
    }

    #[test]
    fn lists_and_negation() {
        assert_eq!(
            match_pattern_list("bar", "b*r,!baz*", false),
            ListMatch::Yes
        );
        assert_eq!(
            match_pattern_list("bazr", "b*r,!baz*", false),
            ListMatch::Negated
        );
        assert_eq!(match_pattern_list("x", "a,b", false), ListMatch::No);
        assert_eq!(match_hostname("Real.Example", "REAL.*"), ListMatch::Yes);
        assert_eq!(match_pattern_list("x", "!y", false), ListMatch::No);
    }

    #[test]
    fn glob_components() {
        assert!(glob_component("a.conf", "*.conf"));
        assert!(!glob_component(".hidden.conf", "*.conf"));
        assert!(glob_component("x1", "x[0-9]"));
        assert!(!glob_component("xa", "x[0-9]"));
        assert!(glob_component("xa", "x[!0-9]"));
    }

    #[test]
    fn glob_walks_and_sorts() {
        let dir = tempfile::tempdir().expect("tempdir");
        for name in ["b.conf", "a.conf", ".x.conf", "c.txt"] {
            std::fs::write(dir.path().join(name), "").expect("write");
        }
        std::fs::create_dir(dir.path().join("sub")).expect("mkdir");
        std::fs::write(dir.path().join("sub/z.conf"), "").expect("write");
        let pat = format!("{}/*.conf", dir.path().display());
        let names: Vec<String> = glob(&pat)
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["a.conf", "b.conf"]);
        assert_eq!(glob(&format!("{}/*/z.conf", dir.path().display())).len(), 1);
        assert!(glob(&format!("{}/nothing", dir.path().display())).is_empty());
    }
}
