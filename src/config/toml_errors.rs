//! Errors from reading the TOML file (before validation), worded so that a
//! user can fix them: a syntax error with its line, column and the toml
//! crate's full message (which quotes the offending line); a value of the
//! wrong type naming the key, the form it wants and an example (`port`
//! wants an integer such as 2222, `interval` a duration string such as
//! "15s"); an unknown key with `did you mean ...?` when a known key is a
//! small edit away. serde's own words ("invalid type: string \"2222\",
//! expected i64") name neither the key nor the fix.

use super::text::{DURATION_HINT, SIZE_HINT};

/// Keys whose value is a duration string.
const DURATION_KEYS: &[&str] = &[
    "interval",
    "initial",
    "max",
    "idle_timeout",
    "connect_timeout",
    "handshake_timeout",
    "stall_timeout",
    "shutdown_grace",
];

/// Keys whose value is a size string.
const SIZE_KEYS: &[&str] = &["memory_per_tunnel", "spill_per_tunnel", "spill_total"];

/// An example integer for each integer key (the default where there is one).
fn integer_example(key: &str) -> &'static str {
    match key {
        "port" => "2222",
        "count_max" => "3",
        "min" => "1",
        "max" => "4",
        "max_channels_per_session" => "4096",
        "connections_per_second_per_client" => "50",
        "max_connections" => "10000",
        _ => "1",
    }
}

/// An example string for keys that take a plain string.
fn string_example(key: &str) -> &'static str {
    match key {
        "host" => "\"bastion.example.com\"",
        "bind" => "\"127.0.0.1:1080\"",
        "kind" => "\"socks5\"",
        "host_key_check" => "\"strict\"",
        "name" | "via" => "\"corp\"",
        "to" => "\"db.internal:5432\"",
        "user" => "\"ci\"",
        _ => "\"...\"",
    }
}

/// The message for a TOML syntax error at 1-based `line`:`column`:
/// `toml`'s full text (the quoted line and a caret under the column) with
/// its own "TOML parse error at line L, column C" heading dropped, as our
/// prefix says the same.
pub(super) fn syntax(full: &str) -> String {
    let body = match full.split_once('\n') {
        Some((head, rest)) if head.starts_with("TOML parse error") => rest,
        _ => full,
    };
    format!("TOML syntax error:\n{}", body.trim_end())
}

/// The message for a serde error on a file that is valid TOML. `text` is
/// the file and `at` the byte offset toml gave for the error (the value of
/// a wrongly typed key, or the unknown key).
pub(super) fn data(message: &str, text: &str, at: Option<usize>) -> String {
    let message = message.trim_end();
    if let Some(m) = unknown_key(message) {
        return m;
    }
    if let Some(rest) = message.strip_prefix("invalid type: ") {
        if let Some((got, expected)) = rest.rsplit_once(", expected ") {
            if let Some(key) = at.and_then(|at| key_before(text, at)) {
                return wrong_type(&key, got, expected);
            }
        }
    }
    message.replace('\n', "; ")
}

/// `key = VALUE` of the wrong type: what the key wants, with an example.
fn wrong_type(key: &str, got: &str, expected: &str) -> String {
    let wants = match expected {
        "a string" if DURATION_KEYS.contains(&key) => {
            format!("a duration string such as \"15s\" ({DURATION_HINT})")
        }
        "a string" if SIZE_KEYS.contains(&key) => {
            format!("a size string such as \"64MiB\" ({SIZE_HINT})")
        }
        "a string" => format!("a string such as {}", string_example(key)),
        "i64" | "u64" | "an integer" => format!("an integer such as {}", integer_example(key)),
        "a boolean" => "true or false".to_owned(),
        "a sequence" => format!("a list such as [{}]", string_example(key)),
        other => other.to_owned(),
    };
    format!("{key} wants {wants}, not {got}")
}

/// serde's "unknown field `x`, expected one of `a`, `b`" (or "expected
/// `a`"), with the closest known key suggested when it is a small edit
/// away; the list is kept otherwise, as the user needs to see the choices.
fn unknown_key(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    let (key, rest) = rest.split_once('`')?;
    let known: Vec<&str> = rest
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|k| !k.is_empty())
        .collect();
    let best = known
        .iter()
        .map(|k| (edit_distance(key, k), *k))
        .min_by_key(|(d, _)| *d)
        .filter(|(d, k)| *d > 0 && *d <= close_enough(key, k));
    Some(match best {
        Some((_, k)) => format!("unknown key `{key}`: did you mean `{k}`?"),
        None => format!(
            "unknown key `{key}`; the keys here are: {}",
            known.join(", ")
        ),
    })
}

/// How many edits still count as a typo: one for keys under six letters,
/// two from six (so `colour` is not taken for `color_x`-like strangers).
fn close_enough(a: &str, b: &str) -> usize {
    let n = a.chars().count().max(b.chars().count());
    if n >= 6 {
        2
    } else {
        1
    }
}

/// Levenshtein distance (insert, delete, substitute), over chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The key whose value starts at byte `at`: the bare or quoted key before
/// the `=` that precedes it (on the same line, or inside an inline table).
fn key_before(text: &str, at: usize) -> Option<String> {
    let before = text.get(..at.min(text.len()))?;
    let before = before.trim_end();
    let before = before.strip_suffix('=')?.trim_end();
    if let Some(quoted) = before.strip_suffix('"') {
        let start = quoted.rfind('"')?;
        return Some(quoted[start + 1..].to_owned());
    }
    let start = before
        .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.'))
        .map_or(0, |i| i + 1);
    let key = &before[start..];
    // A dotted key (`sessions.max = ...`) names its last part.
    let key = key.rsplit('.').next().unwrap_or(key);
    (!key.is_empty()).then(|| key.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(edit_distance("known_host", "known_hosts"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }

    #[test]
    fn the_key_before_a_value() {
        let t = "port = \"2222\"\nkeepalive = { interval = 5, count_max = 3 }\n\"user\" = 1";
        assert_eq!(key_before(t, 7).as_deref(), Some("port"));
        let at = t.find("5,").expect("5");
        assert_eq!(key_before(t, at).as_deref(), Some("interval"));
        let at = t.rfind('1').expect("1");
        assert_eq!(key_before(t, at).as_deref(), Some("user"));
        assert_eq!(key_before("[x]\n", 0), None);
    }

    #[test]
    fn unknown_keys_get_a_suggestion_only_when_close() {
        let m = "unknown field `known_host`, expected one of `name`, `known_hosts`, `port`";
        assert_eq!(
            unknown_key(m).as_deref(),
            Some("unknown key `known_host`: did you mean `known_hosts`?")
        );
        let m = "unknown field `colour`, expected one of `name`, `bind`, `via`";
        let got = unknown_key(m).expect("message");
        assert!(!got.contains("did you mean"), "{got}");
        assert!(got.contains("name, bind, via"), "{got}");
        let m = "unknown field `x`, expected `bind`";
        assert_eq!(
            unknown_key(m).as_deref(),
            Some("unknown key `x`; the keys here are: bind")
        );
    }

    /// The cases, through the whole parser.
    fn error_of(text: &str) -> String {
        match crate::config::testing::parse(text) {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(e) => e.to_string(),
        }
    }

    fn good_with(old: &str, new: &str) -> String {
        let g = crate::config::testing::GOOD;
        assert!(g.contains(old), "{old}");
        g.replacen(old, new, 1)
    }

    fn line_of(text: &str, needle: &str) -> usize {
        let at = text.find(needle).expect("needle");
        text[..at].matches('\n').count() + 1
    }

    #[test]
    fn a_string_port_names_the_key_and_an_integer_example() {
        let t = good_with("user = \"ci\"", "user = \"ci\"\nport = \"2222\"");
        let e = error_of(&t);
        let line = line_of(&t, "port =");
        assert!(
            e.starts_with(&format!("/etc/jumpgate.toml:{line}: ")),
            "{e}"
        );
        assert!(e.contains("port wants an integer such as 2222"), "{e}");
        assert!(e.contains("\"2222\""), "{e}");
    }

    #[test]
    fn a_number_for_a_duration_says_it_wants_a_duration_string() {
        let t = good_with("interval = \"5s\"", "interval = 5");
        let e = error_of(&t);
        let line = line_of(&t, "interval = 5");
        assert!(
            e.starts_with(&format!("/etc/jumpgate.toml:{line}: ")),
            "{e}"
        );
        assert!(
            e.contains("interval wants a duration string such as \"15s\""),
            "{e}"
        );
        assert!(e.contains(DURATION_HINT), "{e}");
    }

    #[test]
    fn a_typo_gets_did_you_mean_with_its_line() {
        let t = good_with("user = \"ci\"", "user = \"ci\"\nknown_host = \"/k\"");
        let e = error_of(&t);
        let line = line_of(&t, "known_host =");
        assert!(
            e.starts_with(&format!("/etc/jumpgate.toml:{line}: ")),
            "{e}"
        );
        assert!(e.contains("did you mean `known_hosts`?"), "{e}");
    }

    #[test]
    fn a_syntax_error_has_line_column_and_the_quoted_line() {
        let t = good_with("user = \"ci\"", "user = \"ci");
        let e = error_of(&t);
        let line = line_of(&t, "user = \"ci");
        assert!(
            // toml points past the last character, where the quote is missing.
            e.starts_with(&format!("/etc/jumpgate.toml:{line}:11: TOML syntax error:")),
            "{e}"
        );
        assert!(e.contains("user = \"ci"), "the line is not quoted:\n{e}");
        assert!(e.contains('^'), "no caret:\n{e}");
        assert!(e.contains("invalid basic string"), "{e}");
    }
}
