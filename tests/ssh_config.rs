//! `jumpgate up -G` against OpenSSH's `ssh -G`, the oracle: for a corpus of
//! ssh_config files (wildcards, negation, Include, tokens, Match, ordering
//! traps) and command lines (-p -l -i -o -J -D -L -R), every line of the
//! keywords jumpgate supports must be identical. Both run with the same
//! isolated home: a private mount namespace whose /etc/passwd gives our uid
//! a temporary home directory (ssh takes `~` from there, not from $HOME),
//! and HOME pointing at it too, so the user's real ~/.ssh is never read.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::support::gate::JUMPGATE;
use crate::support::process::run_for;

/// The keywords `jumpgate up -G` prints: all of them are compared.
const SUPPORTED: &[&str] = jumpgate::ssh_config::print::KEYWORDS;

/// A temporary home with a config tree, and the passwd file that makes it
/// our home inside the namespace.
pub struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    pub fn new() -> Home {
        let dir = tempfile::Builder::new()
            .prefix("jg-sshcfg-")
            .tempdir()
            .expect("temp dir");
        let home = dir.path().join("home");
        std::fs::create_dir_all(home.join(".ssh/conf.d")).expect("mkdir .ssh");
        let uid = uid();
        let passwd = std::fs::read_to_string("/etc/passwd").expect("read /etc/passwd");
        let mut found = false;
        let text: String = passwd
            .lines()
            .map(|l| {
                let mut f: Vec<String> = l.split(':').map(str::to_owned).collect();
                if f.len() >= 7 && f[2] == uid.to_string() && !found {
                    found = true;
                    f[5] = home.display().to_string();
                }
                f.join(":") + "\n"
            })
            .collect();
        assert!(found, "uid {uid} has no /etc/passwd entry");
        std::fs::write(dir.path().join("passwd"), text).expect("write passwd");
        Home { dir }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    /// Writes `text` (with `{dir}` and `{home}` replaced) at `rel` under the root.
    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        let text = text
            .replace("{dir}", &self.dir.path().display().to_string())
            .replace("{home}", &self.home().display().to_string());
        std::fs::write(&path, text).expect("write config");
        path
    }

    /// `program args` inside the namespace with this home.
    pub fn command(&self, program: &str, args: &[String]) -> tokio::process::Command {
        tokio::process::Command::from(self.std_command(program, args))
    }

    pub fn std_command(&self, program: &str, args: &[String]) -> Command {
        let mut cmd = Command::new("unshare");
        cmd.args(["--mount", "--", "sh", "-ec"])
            .arg("mount --bind \"$1\" /etc/passwd; shift; exec \"$@\"")
            .arg("isolated-home")
            .arg(self.dir.path().join("passwd"))
            .arg(program)
            .args(args)
            .env("HOME", self.home())
            .env_remove("SSH_AUTH_SOCK")
            .env("NO_COLOR", "1")
            .current_dir(self.dir.path());
        cmd
    }
}

fn uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").expect("/proc/self").uid()
}

/// The output of one run.
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub async fn run(home: &Home, program: &str, args: &[String]) -> Out {
    let o = run_for(&mut home.command(program, args), Duration::from_secs(20)).await;
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

fn supported_lines(out: &str) -> Vec<String> {
    out.lines()
        .filter(|l| {
            let k = l.split(' ').next().unwrap_or("");
            SUPPORTED.contains(&k)
        })
        .map(str::to_owned)
        .collect()
}

/// Runs `ssh -G ARGS` and `jumpgate up -G ARGS`; returns a description of
/// every difference (empty when they agree).
async fn compare(home: &Home, args: &[String]) -> Vec<String> {
    let mut ssh_args = vec!["-G".to_string()];
    ssh_args.extend(args.iter().cloned());
    let ssh = run(home, "ssh", &ssh_args).await;
    assert_eq!(
        ssh.code, 0,
        "the corpus must be valid for ssh: ssh -G {args:?}: {}",
        ssh.stderr
    );
    let mut ours_args = vec!["up".to_string(), "-G".to_string()];
    ours_args.extend(args.iter().cloned());
    let ours = run(home, JUMPGATE, &ours_args).await;
    if ours.code != 0 {
        return vec![format!(
            "{args:?}: jumpgate up -G exited {}: {}",
            ours.code, ours.stderr
        )];
    }
    let want = supported_lines(&ssh.stdout);
    let got = supported_lines(&ours.stdout);
    if want == got {
        return Vec::new();
    }
    let mut diffs = vec![format!("{args:?}:")];
    for i in 0..want.len().max(got.len()) {
        let (w, g) = (want.get(i), got.get(i));
        if w != g {
            diffs.push(format!("  ssh:      {w:?}\n  jumpgate: {g:?}"));
        }
    }
    diffs
}

/// One corpus entry: files to write, then command lines to compare.
struct Case {
    name: &'static str,
    files: &'static [(&'static str, &'static str)],
    runs: &'static [&'static [&'static str]],
}

const CORPUS: &[Case] = &[
    Case {
        name: "aliases, first value wins, Host * at the end",
        files: &[(
            "basic.conf",
            "# a typical config\n\
             Host bastion\n  HostName bastion.corp.example\n  User ops\n  Port 2222\n\
             \x20 IdentityFile ~/.ssh/id_bastion\n\
             Host *.corp.example\n  User corpuser\n  Port 22022\n\
             Host *\n  User default\n  ServerAliveInterval 30\n  IdentitiesOnly yes\n",
        )],
        runs: &[
            &["-F", "{dir}/basic.conf", "bastion"],
            &["-F", "{dir}/basic.conf", "db.corp.example"],
            &["-F", "{dir}/basic.conf", "other"],
            &["-F", "{dir}/basic.conf", "alice@bastion"],
            &["-F", "{dir}/basic.conf", "-l", "bob", "-p", "2200", "bastion"],
        ],
    },
    Case {
        name: "ordering trap: Host * first wins over later specific blocks",
        files: &[(
            "order.conf",
            "Host *\n  User star\n  Port 1022\nHost web\n  User web\n  Port 2022\n  HostName web.example\n",
        )],
        runs: &[&["-F", "{dir}/order.conf", "web"]],
    },
    Case {
        name: "wildcards, ?, negation, several patterns per line, case",
        files: &[(
            "patterns.conf",
            "Host FOO\n  User upper\n\
             Host f?o,bar\n  User comma\n\
             Host b*r !baz* !bax\n  User bstar\n\
             Host !nothing*   web?? *.lab\n  Port 3000\n\
             Host *\n  User star\n",
        )],
        runs: &[
            &["-F", "{dir}/patterns.conf", "foo"],
            &["-F", "{dir}/patterns.conf", "FOO"],
            &["-F", "{dir}/patterns.conf", "fxo"],
            &["-F", "{dir}/patterns.conf", "bar"],
            &["-F", "{dir}/patterns.conf", "bazr"],
            &["-F", "{dir}/patterns.conf", "baxr"],
            &["-F", "{dir}/patterns.conf", "bax"],
            &["-F", "{dir}/patterns.conf", "web01"],
            &["-F", "{dir}/patterns.conf", "x.lab"],
        ],
    },
    Case {
        name: "Include: globs, relative to ~/.ssh, inside Host, nested, missing",
        files: &[
            (
                "home/.ssh/conf.d/10-a.conf",
                "Host inc-a\n  User from-a\nHost *\n  Port 2010\n",
            ),
            ("home/.ssh/conf.d/20-b.conf", "Host inc-b\n  User from-b\n  Include nested.conf\n"),
            ("home/.ssh/nested.conf", "  Port 2020\n"),
            ("home/.ssh/conf.d/.hidden.conf", "User hidden\n"),
            ("abs/x.conf", "Host inc-abs\n  HostName abs.example\n"),
            (
                "include.conf",
                "Include conf.d/*.conf {dir}/abs/*.conf does-not-exist\n\
                 Host scoped\n  Include ~/.ssh/conf.d/10-a.conf\n  User after-include\n\
                 Host *\n  User last\n",
            ),
        ],
        runs: &[
            &["-F", "{dir}/include.conf", "inc-a"],
            &["-F", "{dir}/include.conf", "inc-b"],
            &["-F", "{dir}/include.conf", "inc-abs"],
            &["-F", "{dir}/include.conf", "scoped"],
            &["-F", "{dir}/include.conf", "other"],
        ],
    },
    Case {
        name: "tokens and ~",
        files: &[(
            "tokens.conf",
            "Host t*\n  HostName %h.example.%%\n  User tokuser\n  Port 2200\n\
             \x20 IdentityFile ~/.ssh/id_%h_%p_%r_%u\n  IdentityFile %d/keys/%n\n\
             \x20 CertificateFile ~/.ssh/%r-cert.pub\n\
             \x20 UserKnownHostsFile ~/kh_%h %d/kh2_%p %C %n %l %L %i %k %r %u\n\
             \x20 IdentityAgent ~/agent-%r@%h.sock\n\
             Host plain\n  UserKnownHostsFile ~root/x /abs/%%p\n",
        )],
        runs: &[
            &["-F", "{dir}/tokens.conf", "tHost"],
            &["-F", "{dir}/tokens.conf", "-l", "lee", "tx"],
            &["-F", "{dir}/tokens.conf", "plain"],
        ],
    },
    Case {
        name: "Match host/originalhost/user/localuser/all/final, negation",
        files: &[(
            "match.conf",
            "Host alias\n  HostName Real.Example\n\
             Match host real.example,!nope\n  User m1\n\
             Match !host zzz originalhost alias\n  Port 2201\n\
             Match user bob\n  Port 2202\n\
             Match localuser nobody-here\n  Port 2209\n\
             Match final host *.example\n  ServerAliveCountMax 7\n\
             Host real.example\n  ConnectTimeout 9\n\
             Match all\n  User all\n  Port 2203\n",
        )],
        runs: &[
            &["-F", "{dir}/match.conf", "alias"],
            &["-F", "{dir}/match.conf", "-l", "bob", "x"],
            &["-F", "{dir}/match.conf", "y"],
            &["-F", "{dir}/match.conf", "real.example"],
        ],
    },
    Case {
        // OpenSSH 9.2 splits Match lines with strdelim, so `=` separates a
        // criterion from its value (its own regress/cfginclude.sh writes
        // `Match host=a`); only `"` quotes there.
        name: "Match criterion=value, with blanks around =, lists, quotes",
        files: &[(
            "match-eq.conf",
            "Host alias\n  HostName real.example\n\
             Match host=real.example\n  User eq1\n\
             Match host=a,b,!c user=bob\n  Port 2301\n\
             Match !host=zzz originalhost = alias\n  ServerAliveCountMax 4\n\
             Match host =q\tlocaluser= nobody-here\n  Port 2302\n\
             Match host=\"q\"\n  ConnectTimeout 8\n\
             Match host='q'\n  ConnectTimeout 9\n\
             Match user=carol # a comment\n  Port 2303\n\
             Match final host=*.example\n  ServerAliveInterval 11\n",
        )],
        runs: &[
            &["-F", "{dir}/match-eq.conf", "alias"],
            &["-F", "{dir}/match-eq.conf", "-l", "bob", "a"],
            &["-F", "{dir}/match-eq.conf", "-l", "bob", "c"],
            &["-F", "{dir}/match-eq.conf", "q"],
            &["-F", "{dir}/match-eq.conf", "carol@x"],
        ],
    },
    Case {
        // ssh checks hop names for shell metacharacters only on the command
        // line; in a file they pass. The value is cut at the first blank.
        name: "ProxyJump in a file: metacharacters, blanks, numeric hosts, none # comment",
        files: &[(
            "jump-odd.conf",
            "Host p1\n  ProxyJump host;with;semicolon\n\
             Host p2\n  ProxyJump user'with'quote@host\n\
             Host p3\n  ProxyJump hop1 hop2,hop3\n\
             Host p4\n  ProxyJump first,10.1.2.3\n\
             Host p5\n  ProxyJump u@[192.0.2.1]:2222\n\
             Host p6\n  ProxyJump none # comment\n",
        )],
        runs: &[
            &["-F", "{dir}/jump-odd.conf", "p1"],
            &["-F", "{dir}/jump-odd.conf", "p2"],
            &["-F", "{dir}/jump-odd.conf", "p3"],
            &["-F", "{dir}/jump-odd.conf", "p4"],
            &["-F", "{dir}/jump-odd.conf", "p5"],
            &["-F", "{dir}/jump-odd.conf", "p6"],
            &["-F", "none", "-J", "a b", "x"],
            &["-F", "none", "-J", " u@h", "x"],
            &["-F", "none", "-o", "ProxyJump=a,b c", "x"],
        ],
    },
    Case {
        name: "forwards: dynamic, local, remote, duplicates, brackets",
        files: &[(
            "fwd.conf",
            "Host *\n  DynamicForward 1080\n  DynamicForward 127.0.0.1:1081\n  DynamicForward 1080\n\
             \x20 DynamicForward [::1]:1082\n  DynamicForward *:1083\n\
             \x20 LocalForward 8080 localhost:80\n  LocalForward 127.0.0.1:8081 [::1]:81\n\
             \x20 LocalForward 8082 socks:22\n\
             \x20 RemoteForward 9090 localhost:90\n  RemoteForward 9091\n  RemoteForward 0 h:1\n",
        )],
        runs: &[
            &["-F", "{dir}/fwd.conf", "h"],
            &["-F", "{dir}/fwd.conf", "-D", "2000", "-D1080", "-L", "1:h:2", "-R", "3:h:4", "-R", "5", "h"],
        ],
    },
    Case {
        name: "ProxyJump and ProxyCommand precedence",
        files: &[(
            "jump.conf",
            "Host j1\n  ProxyJump u@hop1:2222,hop2,ssh://x@hop3:3\nHost j2\n  ProxyJump none\n  ProxyCommand nc %h %p\n\
             Host j3\n  ProxyCommand nc -X 5 %h %p # comment kept\n  ProxyJump a\n\
             Host j4\n  ProxyJump [::1]:22\nHost *\n  ProxyJump default-hop\n",
        )],
        runs: &[
            &["-F", "{dir}/jump.conf", "j1"],
            &["-F", "{dir}/jump.conf", "j2"],
            &["-F", "{dir}/jump.conf", "j3"],
            &["-F", "{dir}/jump.conf", "j4"],
            &["-F", "{dir}/jump.conf", "other"],
            &["-F", "{dir}/jump.conf", "-J", "cli@hop:2200,second", "j1"],
        ],
    },
    Case {
        name: "algorithm lists with + - ^ and wildcards",
        files: &[(
            "algs.conf",
            "Host a1\n  Ciphers ^aes256-gcm@openssh.com\n  MACs hmac-sha2-256,hmac-sha2-512\n\
             \x20 KexAlgorithms -diffie-hellman*\n  HostKeyAlgorithms +ssh-rsa\n\
             Host a2\n  Ciphers +aes128-cbc,3des-cbc\n  MACs -*sha1*,umac-64*\n  KexAlgorithms curve25519-sha256,curve25519-sha256@libssh.org\n\
             \x20 HostKeyAlgorithms ssh-ed*,rsa-sha2*\n\
             Host a3\n  Ciphers aes128-ctr,aes128-ctr\n  HostKeyAlgorithms -*cert*\n",
        )],
        runs: &[
            &["-F", "{dir}/algs.conf", "a1"],
            &["-F", "{dir}/algs.conf", "a2"],
            &["-F", "{dir}/algs.conf", "a3"],
            &["-F", "{dir}/algs.conf", "-o", "Ciphers=^aes128-ctr", "-oMACs=+hmac-md5", "a1"],
        ],
    },
    Case {
        name: "flag and time values, Key=Value syntax, quoting, comments, CRLF",
        files: &[(
            "values.conf",
            "Host v1\r\n  Compression yes\r\n  ExitOnForwardFailure=yes\r\n  GatewayPorts = true\r\n\
             \x20 AddressFamily inet6\r\n  BatchMode YES\r\n  StrictHostKeyChecking accept-new\r\n\
             \x20 ServerAliveInterval 1m30s\r\n  ServerAliveCountMax 5 # five\r\n  ConnectTimeout 1h\r\n\
             Host v2\n\tStrictHostKeyChecking off\n\tConnectTimeout none\n\tConnectTimeout 0\n\
             \tUser \"quoted user\"\n\tIdentityFile \"/path with/space\"\n\
             HOST v3\n  STRICTHOSTKEYCHECKING no\n  hostname V3.Example\n  identitiesonly true\n\
             Host v4\n  StrictHostKeyChecking yes\n  ServerAliveInterval 0\n  AddressFamily inet\n",
        )],
        runs: &[
            &["-F", "{dir}/values.conf", "v1"],
            &["-F", "{dir}/values.conf", "v2"],
            &["-F", "{dir}/values.conf", "v3"],
            &["-F", "{dir}/values.conf", "v4"],
            &["-F", "{dir}/values.conf", "-C", "-g", "-4", "v4"],
        ],
    },
    Case {
        name: "identities: several, duplicates, -i, IgnoreUnknown",
        files: &[
            ("home/.ssh/id_test", "not a real key\n"),
            (
                "ids.conf",
                "IgnoreUnknown UseKeychain,Frob*\nUseKeychain yes\nFrobnicate 1\n\
                 Host *\n  IdentityFile ~/.ssh/id_one\n  IdentityFile ~/.ssh/id_two\n  IdentityFile ~/.ssh/id_one\n\
                 \x20 CertificateFile ~/.ssh/c1\n  CertificateFile ~/.ssh/c2\n",
            ),
        ],
        runs: &[
            &["-F", "{dir}/ids.conf", "h"],
            &["-F", "{dir}/ids.conf", "-i", "~/.ssh/id_test", "-i", "{home}/.ssh/id_test", "-i", "/no/such/key", "h"],
        ],
    },
    Case {
        name: "command line over files: -o, -p, -l, -J, order of -o and -p",
        files: &[("cli.conf", "Host c\n  User fileuser\n  Port 2000\n  ProxyJump filehop\n")],
        runs: &[
            &["-F", "{dir}/cli.conf", "-o", "Port=3", "-p", "1", "c"],
            &["-F", "{dir}/cli.conf", "-p", "1", "-o", "Port 3", "c"],
            &["-F", "{dir}/cli.conf", "-oUser=ouser", "-l", "luser", "c"],
            &["-F", "{dir}/cli.conf", "-J", "jhop", "c"],
            &["-F", "{dir}/cli.conf", "-o", "ProxyJump=none", "c"],
            &["-F", "{dir}/cli.conf", "c", "-p", "4", "-l", "after"],
            &["-F", "{dir}/cli.conf", "ssh://uri@c:2345"],
            &["-F", "{dir}/cli.conf", "ssh://uri@c:2345", "-p", "1", "-l", "late"],
            &["-F", "{dir}/cli.conf", "-l", "early", "at@c"],
            &["-F", "{dir}/cli.conf", "at@c", "-l", "late", "-o", "User=o"],
            &["-F", "none", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "c"],
        ],
    },
    Case {
        name: "no -F: ~/.ssh/config (from the passwd home) then /etc/ssh/ssh_config",
        files: &[(
            "home/.ssh/config",
            "Host outer\n  HostName outer.example\n  User ops\nHost bastion\n  ProxyJump outer\n\
             \x20 Port 2222\nHost *\n  ServerAliveInterval 20\n",
        )],
        runs: &[&["bastion"], &["-D", "1080", "-J", "outer", "bastion"], &["outer"]],
    },
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_dash_g_matches_ssh_dash_g_over_the_corpus() {
    let mut failures = Vec::new();
    let mut compared = 0;
    for case in CORPUS {
        let home = Home::new();
        for (rel, text) in case.files {
            home.write(rel, text);
        }
        for run in case.runs {
            let args: Vec<String> = run
                .iter()
                .map(|a| {
                    a.replace("{dir}", &home.root().display().to_string())
                        .replace("{home}", &home.home().display().to_string())
                })
                .collect();
            let d = compare(&home, &args).await;
            compared += 1;
            if !d.is_empty() {
                failures.push(format!("[{}]\n{}", case.name, d.join("\n")));
            }
        }
    }
    assert!(compared >= 40, "the corpus shrank: {compared} runs");
    assert!(
        failures.is_empty(),
        "{} of {compared} runs differ from ssh -G:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// What ssh refuses, jumpgate refuses: exit 2 for a bad flag, 78 for a bad
/// file (ssh exits 255 for both), and every line ssh prints is one of
/// jumpgate's (after its `jumpgate up: ` prefix).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_dash_g_refuses_what_ssh_dash_g_refuses() {
    let home = Home::new();
    let bad_match = [
        "Match host==a\n  Port 1\n",
        "Match \"host\"=a\n  Port 1\n",
        "Match host=\n  Port 1\n",
        "Match host a \"\" b\n  Port 1\n",
        "Match canonical=a\n  Port 1\n",
        "Match all=a\n  Port 1\n",
        "Match host a =b\n  Port 1\n",
    ];
    let mut cases: Vec<(Vec<String>, i32)> = Vec::new();
    for (i, text) in bad_match.iter().enumerate() {
        let file = home.write(&format!("bad-match-{i}.conf"), text);
        cases.push((
            vec!["-F".into(), file.display().to_string(), "h".into()],
            78,
        ));
    }
    let bad_jumps = [
        "host;with;semicolon",
        "user'with'quote@host",
        "ok,bad;x",
        "bad;x,ok",
        "u;v@h;x",
        "a;b,c/d",
        "-leading-dash",
        "a$(id)b",
        "a`id`b",
        "a|b",
        "a\\b",
        "u\\@h",
        " -u@h",
        "  b",
        "ssh://u%27x@h",
        "a\u{1}b",
    ];
    for j in bad_jumps {
        let mut flags = vec![vec!["-J".to_string(), j.to_string()]];
        // `-o` drops blanks after `=`: only -J keeps a leading one.
        if !j.starts_with(' ') {
            flags.push(vec!["-o".into(), format!("ProxyJump={j}")]);
        }
        for flag in flags {
            let mut args = vec!["-F".to_string(), "none".into()];
            args.extend(flag);
            args.push("dest".into());
            cases.push((args, 2));
        }
    }
    let mut failures = Vec::new();
    for (args, want_code) in &cases {
        let mut ssh_args = vec!["-G".to_string()];
        ssh_args.extend(args.iter().cloned());
        let ssh = run(&home, "ssh", &ssh_args).await;
        assert_eq!(
            ssh.code, 255,
            "ssh -G {args:?} did not refuse: {}",
            ssh.stdout
        );
        let mut ours_args = vec!["up".to_string(), "-G".to_string()];
        ours_args.extend(args.iter().cloned());
        let ours = run(&home, JUMPGATE, &ours_args).await;
        if ours.code != *want_code {
            failures.push(format!(
                "{args:?}: jumpgate exited {} (want {want_code}); ssh said:\n{}\njumpgate said:\n{}{}",
                ours.code, ssh.stderr, ours.stderr, ours.stdout
            ));
            continue;
        }
        let ours_lines: Vec<&str> = ours
            .stderr
            .lines()
            .map(|l| l.strip_prefix("jumpgate up: ").unwrap_or(l))
            .collect();
        for line in ssh.stderr.lines().map(|l| l.trim_end_matches('\r')) {
            if !ours_lines.iter().any(|l| l.starts_with(line)) {
                failures.push(format!(
                    "{args:?}: ssh's line {line:?} is missing from:\n{}",
                    ours.stderr
                ));
            }
        }
    }
    assert!(
        cases.len() >= 37,
        "the refusal corpus shrank: {}",
        cases.len()
    );
    assert!(
        failures.is_empty(),
        "{} differences from ssh -G:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
