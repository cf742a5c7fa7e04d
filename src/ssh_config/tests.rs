//! Resolution from config text (no OpenSSH needed); the comparison with
//! `ssh -G` itself is in tests/ssh_config.rs.

use super::*;

fn local() -> Local {
    Local {
        uid: 4242,
        user: "me".into(),
        home: PathBuf::from("/home/me"),
        env_home: PathBuf::from("/home/me"),
        hostname: "box.lan".into(),
    }
}

fn resolve_text(text: &str, host: &str, cmdline: Options) -> Result<Resolved, SshConfigError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("config");
    std::fs::write(&path, text).expect("write");
    resolve(
        &Request {
            host: host.into(),
            cmdline,
            files: ConfigFiles::File(path),
        },
        &local(),
    )
}

#[test]
fn first_value_wins_and_blocks_apply_by_pattern() {
    let text = "Host alias\n  HostName real.%h.example\n  Port 2200\n\
                Host *.example !bad.example alias\n  User first\n  Port 1\n\
                Host *\n  User second\n  IdentityFile ~/.ssh/k_%h_%r\n";
    let r = resolve_text(text, "alias", Options::default()).expect("ok");
    assert_eq!(r.hostname, "real.alias.example");
    assert_eq!(r.port, 2200);
    assert_eq!(r.user, "first");
    assert_eq!(r.identity_files, ["~/.ssh/k_%h_%r"]);
    assert_eq!(
        r.identity_paths,
        [PathBuf::from("/home/me/.ssh/k_real.alias.example_first")]
    );
    let r = resolve_text(text, "bad.example", Options::default()).expect("ok");
    assert_eq!((r.user.as_str(), r.port), ("second", 22));
    assert_eq!(r.hostname, "bad.example");
}

#[test]
fn command_line_wins_over_files() {
    let mut cmd = Options::default();
    let l = local();
    apply_option(&mut cmd, &l, "Port=7").expect("ok");
    apply_option(&mut cmd, &l, "User bob").expect("ok");
    let r = resolve_text("Port 9\nUser carl\n", "h", cmd).expect("ok");
    assert_eq!((r.port, r.user.as_str()), (7, "bob"));
    let e = apply_option(&mut Options::default(), &l, "Port=x").expect_err("bad");
    assert_eq!(e, "command-line line 0: Bad port 'x'.");
    let e = apply_option(&mut Options::default(), &l, "Bogus 1").expect_err("unknown");
    assert_eq!(e, "command-line: line 0: Bad configuration option: bogus");
    let e = apply_option(&mut Options::default(), &l, "Host x").expect_err("host");
    assert!(e.contains("not supported as a command-line option"), "{e}");
}

#[test]
fn bad_lines_are_all_reported_with_file_and_line() {
    let e = resolve_text(
        "Host *\n Port abc\n Compression maybe\n LocalForward 1\n",
        "h",
        Options::default(),
    )
    .expect_err("bad");
    let s = e.to_string();
    let lines: Vec<&str> = s.lines().collect();
    assert!(lines[0].ends_with("config line 2: Bad port 'abc'."), "{s}");
    assert!(
        lines[1].ends_with("config line 3: unsupported option \"maybe\"."),
        "{s}"
    );
    assert!(
        lines[2].ends_with("config line 4: Missing target argument."),
        "{s}"
    );
    assert!(
        lines[3].ends_with("config: terminating, 3 bad configuration options"),
        "{s}"
    );
}

#[test]
fn unknown_keywords_warn_unless_ignored() {
    let r = resolve_text(
        "Frobnicate yes\nIgnoreUnknown Foo*\nFooBar 1\n",
        "h",
        Options::default(),
    )
    .expect("ok");
    assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
    assert!(r.warnings[0].contains("line 1: Bad configuration option: frobnicate"));
}

#[test]
fn match_host_sees_hostname_and_final_pass_runs() {
    let text = "Host a\n HostName Real.Example\nMatch host real.example\n User m\n\
                Match final host real.example\n Port 3\nMatch originalhost a\n Port 4\n";
    let r = resolve_text(text, "a", Options::default()).expect("ok");
    assert_eq!(r.user, "m");
    // `Match originalhost a` applies in the first pass, before `final`.
    assert_eq!(r.port, 4);
    // The final pass lowercases the host name and matches Host against it.
    assert_eq!(r.hostname, "real.example");
    let r = resolve_text(
        "Host a\n HostName Real.Example\nMatch final\n Port 3\nHost real.example\n User hm\n",
        "a",
        Options::default(),
    )
    .expect("ok");
    assert_eq!((r.port, r.user.as_str()), (3, "hm"));
    let r = resolve_text("Match exec true\n User x\n", "a", Options::default()).expect("ok");
    assert_eq!(r.user, "me");
    assert!(
        r.warnings[0].contains("Match exec is not supported"),
        "{:?}",
        r.warnings
    );
    let e = resolve_text("Match all host x\n", "a", Options::default()).expect_err("bad");
    assert!(e.to_string().contains("Bad Match condition"), "{e}");
}

#[test]
fn include_is_scoped_and_relative_to_dot_ssh_for_absolute_globs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let inc = dir.path().join("inc");
    std::fs::create_dir(&inc).expect("mkdir");
    std::fs::write(inc.join("a.conf"), "Host other\n  User nobody\n").expect("write");
    std::fs::write(inc.join("b.conf"), "Port 2201\n").expect("write");
    let text = format!(
        "Host h\n  Include {}/*.conf\n  User inside\n",
        inc.display()
    );
    let r = resolve_text(&text, "h", Options::default()).expect("ok");
    // a.conf's `Host other` does not switch off the rest of `Host h`...
    assert_eq!(r.user, "inside");
    // ...and b.conf, read after a.conf, starts with the includer's state
    // restored, so its top line applies.
    assert_eq!(r.port, 2201);
}

#[test]
fn forwards_and_jump_are_kept() {
    let text = "DynamicForward 1080\nLocalForward 8080 localhost:80\nRemoteForward 9000\n\
                ProxyJump u@j1:2222,j2\nProxyCommand nc %h %p\n";
    let r = resolve_text(text, "h", Options::default()).expect("ok");
    assert_eq!(r.dynamic_forwards.len(), 1);
    assert_eq!(r.local_forwards[0].to_string(), "8080 [localhost]:80");
    assert!(r.remote_forwards[0].is_dynamic());
    assert_eq!(r.proxy_command, None);
    let hops = r.jump.as_ref().expect("jump").hops();
    assert_eq!(hops[0].port, Some(2222));
    assert_eq!(hops[1].host, "j2");
    let out = print::print(&r);
    assert!(out.contains("\nproxyjump u@j1:2222,j2\n"), "{out}");
    assert!(out.contains("\nremoteforward 9000 [socks]:0\n"), "{out}");
}

#[test]
fn proxy_command_tokens_are_expanded_and_escaped() {
    let text = "Host h\n  HostName real\n  User u\n  ProxyCommand nc -X 5 %h %p %n %r %% %d\n";
    let r = resolve_text(text, "h", Options::default()).expect("ok");
    assert_eq!(
        r.proxy_command.as_deref(),
        Some("nc -X 5 %h %p %n %r %% %d")
    );
    // `%` doubled: the transport's own expansion turns `%%` back into `%`.
    assert_eq!(
        r.proxy_command_expanded.as_deref(),
        Some("nc -X 5 real 22 h u %% /home/me")
    );
    let e = resolve_text("ProxyCommand x %z\n", "h", Options::default()).expect_err("token");
    assert!(e.to_string().contains("unknown token %z"), "{e}");
}
