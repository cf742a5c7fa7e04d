//! Side-by-side benchmark of jumpgate and OpenSSH `ssh -N -D` (issue 4).
//!
//! Per cipher (aes128-gcm@openssh.com, chacha20-poly1305@openssh.com) it starts a real
//! sshd on 127.0.0.1 that offers only that cipher, and per run fresh `ssh -N -D` and
//! `jumpgate run` processes against it: one pair for the idle tunnels, another for the
//! other figures (thousands of channels leave ssh -D slower afterwards). Both are driven
//! by the same SOCKS5 load generator (`support::load`) towards in-process targets
//! (source, sink, echo). Within a run every figure is measured for both proxies back to
//! back, in an order that alternates between runs; the table shows medians over runs and
//! the median of the per-run ratios jumpgate/ssh. Proxy CPU comes from /proc/PID/stat
//! (utime + stime, all threads), RSS from /proc/PID/status.
//!
//! ```text
//! cargo bench --bench e2e                      # full: 3 runs, 5,000 idle tunnels, < 10 min
//! cargo bench --bench e2e -- --quick           # smoke test for CI, < 1 min
//! cargo bench --bench e2e -- --cipher chacha20-poly1305@openssh.com --runs 1
//! ```
//!
//! Options: `--quick`, `--cipher NAME` (repeatable; a prefix such as `aes128` will do),
//! `--runs N`, `--tunnels N`, `--bulk-mib N` (single-stream transfer size; 8 streams move
//! N/4 each), `--only ssh|jumpgate` and `--figures idle,rtt,neighbour,connects,bulk` (a
//! part only, e.g. under a profiler; `neighbour`: 64-byte round trips on one tunnel while
//! another tunnel, opened after it, reads a download at 1 MB/s),
//! `--jumpgate-log FILTER` (RUST_LOG for jumpgate; by default its own default, info,
//! which logs one line per tunnel; the filter must keep `jumpgate::daemon` and
//! `jumpgate::ssh::pool` at info, whose lines say where it listens and when it is ready),
//! `--jumpgate PATH` (another jumpgate binary, e.g. a candidate build to compare),
//! `--jumpgate-sessions MIN:MAX` (its `sessions`; default 1:4, jumpgate's default).
//!
//! Needs root (sshd logs in as the current user), OpenSSH (`/usr/sbin/sshd`, `ssh`,
//! `ssh-keygen`), `getconf`, and an open-files limit of at least 2 x tunnels + 1,024
//! (raised with `prlimit` when the hard limit allows or we are root; children inherit it).
//! Only 127.0.0.1 is used. Every child is killed by PID on drop, and a watchdog kills
//! them and exits if the bench overruns its budget by 90 s.

mod support;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tokio::time::Instant;

use support::load;
use support::process::{self, cpu_ticks, descendants_cpu_ticks, hwm_kib, rss_kib};
use support::proxy::{JumpgateOpts, Kind, Proxy, JUMPGATE, JUMPGATE_MAX_CHANNELS};
use support::report::{percentile, thousands, Fig, Results};
use support::sshd::Sshd;
use support::targets::Targets;

const CIPHERS: [&str; 2] = ["aes128-gcm@openssh.com", "chacha20-poly1305@openssh.com"];

/// SOCKS handshakes in flight while opening the idle tunnels.
const OPEN_CONCURRENCY: usize = 64;

const MIB: u64 = 1024 * 1024;
const GIB: f64 = (1u64 << 30) as f64;

/// Sizes and limits of one bench invocation.
#[derive(Debug, Clone)]
struct Plan {
    quick: bool,
    runs: usize,
    down1: u64,
    down8_each: u64,
    up1: u64,
    conn_c1: Duration,
    conn_c32: Duration,
    max_ops: usize,
    rtt_iterations: usize,
    rtt_limit: Duration,
    /// How long the slow-neighbour figure runs, and how much its slow reader asks
    /// for (below jumpgate's default spill cap of 64 MiB, so that the figure shows
    /// the buffer at work, not the cap).
    neighbour_time: Duration,
    neighbour_bytes: u64,
    tunnels: usize,
    open_limit: Duration,
    drain_limit: Duration,
    /// The whole bench should finish within this; runs beyond it are skipped.
    budget: Duration,
    /// Which groups of figures to measure (`--figures`).
    groups: Vec<Group>,
}

/// Groups of figures, selectable with `--figures` (e.g. to profile one of them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Group {
    Idle,
    Rtt,
    Neighbour,
    Connects,
    Bulk,
}

const GROUPS: [(&str, Group); 5] = [
    ("idle", Group::Idle),
    ("rtt", Group::Rtt),
    ("neighbour", Group::Neighbour),
    ("connects", Group::Connects),
    ("bulk", Group::Bulk),
];

impl Plan {
    fn full() -> Plan {
        Plan {
            quick: false,
            runs: 3,
            down1: 512 * MIB,
            down8_each: 128 * MIB,
            up1: 512 * MIB,
            conn_c1: Duration::from_secs(2),
            conn_c32: Duration::from_secs(3),
            max_ops: 100_000,
            rtt_iterations: 20_000,
            rtt_limit: Duration::from_secs(2),
            neighbour_time: Duration::from_secs(5),
            neighbour_bytes: 48 * MIB,
            tunnels: 5000,
            open_limit: Duration::from_secs(40),
            drain_limit: Duration::from_secs(60),
            budget: Duration::from_secs(570),
            groups: GROUPS.iter().map(|(_, g)| *g).collect(),
        }
    }

    fn quick() -> Plan {
        Plan {
            quick: true,
            runs: 1,
            down1: 32 * MIB,
            down8_each: 4 * MIB,
            up1: 32 * MIB,
            conn_c1: Duration::from_millis(500),
            conn_c32: Duration::from_millis(500),
            max_ops: 10_000,
            rtt_iterations: 500,
            rtt_limit: Duration::from_millis(500),
            neighbour_time: Duration::from_secs(2),
            neighbour_bytes: 16 * MIB,
            tunnels: 500,
            open_limit: Duration::from_secs(15),
            drain_limit: Duration::from_secs(15),
            budget: Duration::from_secs(50),
            groups: GROUPS.iter().map(|(_, g)| *g).collect(),
        }
    }
}

struct Args {
    plan: Plan,
    ciphers: Vec<String>,
    only: Option<Kind>,
    jumpgate: JumpgateOpts,
}

const USAGE: &str = "usage: cargo bench --bench e2e [-- [--quick] [--cipher NAME]... [--runs N] \
[--tunnels N] [--bulk-mib N] [--only ssh|jumpgate] [--figures idle,rtt,neighbour,connects,bulk] \
[--jumpgate-log FILTER] [--jumpgate PATH] [--jumpgate-sessions MIN:MAX]]";

fn parse_args() -> Result<Args> {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let quick = raw.iter().any(|a| a == "--quick");
    let mut plan = if quick { Plan::quick() } else { Plan::full() };
    let mut ciphers = Vec::new();
    let mut only = None;
    let mut jumpgate = JumpgateOpts {
        bin: PathBuf::from(JUMPGATE),
        log: None,
        sessions: (1, 4),
    };
    let mut it = raw.into_iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().with_context(|| format!("{name} needs a value"));
        match a.as_str() {
            "--quick" => {}
            // cargo bench passes --bench to harness = false benches.
            "--bench" => {}
            "--cipher" => {
                let v = value("--cipher")?;
                let Some(c) = CIPHERS.iter().find(|c| c.starts_with(v.as_str())) else {
                    bail!("--cipher {v}: use one of {}", CIPHERS.join(", "));
                };
                ciphers.push(c.to_string());
            }
            "--runs" => {
                plan.runs = value("--runs")?.parse().context("--runs N")?;
                if plan.runs == 0 || plan.runs > 20 {
                    bail!("--runs: use 1-20");
                }
            }
            "--tunnels" => {
                plan.tunnels = value("--tunnels")?.parse().context("--tunnels N")?;
                if plan.tunnels == 0 || plan.tunnels > 15_000 {
                    bail!("--tunnels: use 1-15000");
                }
            }
            "--bulk-mib" => {
                let n: u64 = value("--bulk-mib")?.parse().context("--bulk-mib N")?;
                if !(4..=8192).contains(&n) {
                    bail!("--bulk-mib: use 4-8192");
                }
                plan.down1 = n * MIB;
                plan.up1 = n * MIB;
                plan.down8_each = n * MIB / 4;
            }
            "--figures" => {
                let v = value("--figures")?;
                plan.groups = Vec::new();
                for name in v.split(',') {
                    let Some((_, g)) = GROUPS.iter().find(|(n, _)| *n == name) else {
                        bail!("--figures {v}: use a comma-separated list of idle, rtt, neighbour, connects, bulk");
                    };
                    plan.groups.push(*g);
                }
            }
            "--only" => {
                only = Some(match value("--only")?.as_str() {
                    "ssh" => Kind::Ssh,
                    "jumpgate" => Kind::Jumpgate,
                    other => bail!("--only {other}: use ssh or jumpgate"),
                })
            }
            "--jumpgate-log" => jumpgate.log = Some(value("--jumpgate-log")?),
            "--jumpgate" => jumpgate.bin = PathBuf::from(value("--jumpgate")?),
            "--jumpgate-sessions" => {
                let v = value("--jumpgate-sessions")?;
                let parsed = v
                    .split_once(':')
                    .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)));
                match parsed {
                    Some((min, max)) if min <= max && (1..=64).contains(&max) => {
                        jumpgate.sessions = (min, max)
                    }
                    _ => bail!("--jumpgate-sessions {v}: use MIN:MAX, e.g. 2:4"),
                }
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    if ciphers.is_empty() {
        ciphers = CIPHERS.iter().map(|c| c.to_string()).collect();
    }
    Ok(Args {
        plan,
        ciphers,
        only,
        jumpgate,
    })
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("e2e bench: {e:#}");
            return ExitCode::from(2);
        }
    };
    process::start_watchdog(args.plan.budget + Duration::from_secs(90));
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("e2e bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(bench(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("e2e bench failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn bench(args: Args) -> Result<()> {
    let started = Instant::now();
    let plan = &args.plan;
    let need_files = (2 * plan.tunnels + 1024) as u64;
    let nofile = process::ensure_nofile(need_files)?;
    let tck = process::clk_tck()?;
    let kinds: Vec<Kind> = match args.only {
        Some(k) => vec![k],
        None => vec![Kind::Ssh, Kind::Jumpgate],
    };
    print_header(plan, &args, nofile);
    let targets = Targets::start().await?;
    let per_cipher = plan.budget / args.ciphers.len() as u32;
    for cipher in &args.ciphers {
        let cipher_started = Instant::now();
        let sshd = Sshd::start(cipher).await?;
        let mut results = Results::new(plan.tunnels, &kinds);
        let mut longest_run = Duration::ZERO;
        for run in 0..plan.runs {
            if run > 0 && cipher_started.elapsed() + longest_run > per_cipher {
                eprintln!("[{cipher}] stopping after {run} run(s) to stay within the time budget");
                break;
            }
            let run_started = Instant::now();
            results.start_run();
            one_run(
                plan,
                &args,
                &kinds,
                &sshd,
                &targets,
                &mut results,
                run,
                cipher,
                tck,
            )
            .await
            .with_context(|| format!("{cipher}, run {}", run + 1))?;
            longest_run = longest_run.max(run_started.elapsed());
        }
        // Our own readiness probe closes before the key exchange: expected.
        let sshd_errors: String = sshd
            .log()
            .lines()
            .filter(|l| !l.contains("kex_exchange_identification: Connection closed"))
            .map(|l| format!("{l}\n"))
            .collect();
        if !sshd_errors.trim().is_empty() {
            eprintln!(
                "[{cipher}] sshd log (LogLevel ERROR):\n{}",
                tail(&sshd_errors, 20)
            );
        }
        println!();
        println!(
            "### {cipher} ({} run{}, medians)",
            results.runs(),
            if results.runs() == 1 { "" } else { "s" }
        );
        println!();
        print!("{}", results.table());
    }
    println!();
    println!(
        "total {:.0} s; load average at the end: {}",
        started.elapsed().as_secs_f64(),
        loadavg()
    );
    Ok(())
}

fn print_header(plan: &Plan, args: &Args, nofile: u64) {
    let cpu = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpu
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let aes = cpu
        .lines()
        .find(|l| l.starts_with("flags"))
        .is_some_and(|l| l.split_whitespace().any(|w| w == "aes"));
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let ssh_version = std::process::Command::new("ssh")
        .arg("-V")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stderr).trim().to_string())
        .unwrap_or_default();
    println!(
        "## jumpgate vs ssh -D ({})",
        if plan.quick { "quick" } else { "full" }
    );
    println!();
    println!(
        "machine: {model}, {cores} cores, AES instructions: {}, Linux {}; {ssh_version}; \
         load average at the start: {}",
        if aes { "yes" } else { "no" },
        kernel.trim(),
        loadavg()
    );
    println!(
        "plan: {} run(s) per cipher; downloads {} MiB x1 and {} MiB x8, upload {} MiB; \
         connects {:?} at c=1 and {:?} at c=32; {} round trips; {} idle tunnels \
         ({OPEN_CONCURRENCY} handshakes in flight); open-files limit {nofile}",
        plan.runs,
        plan.down1 / MIB,
        plan.down8_each / MIB,
        plan.up1 / MIB,
        plan.conn_c1,
        plan.conn_c32,
        thousands(plan.rtt_iterations),
        thousands(plan.tunnels),
    );
    let commit = std::process::Command::new("git")
        .args([
            "-C",
            env!("CARGO_MANIFEST_DIR"),
            "describe",
            "--always",
            "--dirty",
        ])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    println!(
        "jumpgate: {} (source at commit {commit}), sessions = {{ min = {}, max = {} }}, \
         max_channels_per_session = {JUMPGATE_MAX_CHANNELS}, log filter: {}",
        args.jumpgate.bin.display(),
        args.jumpgate.sessions.0,
        args.jumpgate.sessions.1,
        args.jumpgate.log.as_deref().unwrap_or("its default (info)")
    );
    println!(
        "both proxies run at once against one sshd that offers only the cipher under test; \
         other processes on this machine may add load"
    );
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Bulk-transfer accounting of one proxy in one run.
#[derive(Default)]
struct Bulk {
    down_ticks: u64,
    down_bytes: u64,
    up_ticks: u64,
    up_bytes: u64,
    sshd_ticks: u64,
}

#[allow(clippy::too_many_arguments)]
async fn one_run(
    plan: &Plan,
    args: &Args,
    kinds: &[Kind],
    sshd: &Sshd,
    targets: &Targets,
    results: &mut Results,
    run: usize,
    cipher: &str,
    tck: u64,
) -> Result<()> {
    // Alternate who goes first, so that neither always measures on a warmer machine.
    let mut order: Vec<usize> = (0..kinds.len()).collect();
    if run % 2 == 1 {
        order.reverse();
    }
    let short = cipher.split('@').next().unwrap_or(cipher);
    let tag = format!("[{short} run {}/{}]", run + 1, plan.runs);
    let want = |g: Group| plan.groups.contains(&g);

    // Idle tunnels on their own fresh processes: nothing else has grown their heaps
    // yet, and what the tunnels leave behind (ssh -D keeps scanning a channel table
    // as large as its peak, which costs it about 30% more CPU per GiB afterwards)
    // does not reach the other figures.
    if want(Group::Idle) {
        let mut proxies = start_proxies(kinds, sshd, args, targets, &order, &tag).await?;
        for &i in &order {
            let p = &mut proxies[i];
            let r = idle_tunnels(plan, p, targets, &tag).await;
            let (open, per) = report(&tag, p, "idle tunnels", r, |(o, per)| {
                format!(
                    "{} opened in {}, {per:.1} KiB RSS each",
                    thousands(plan.tunnels),
                    o.map_or("(not all)".into(), |o| format!("{o:.2} s"))
                )
            })
            .map_or((None, None), |(o, per)| (o, Some(per)));
            results.record(Fig::IdleOpen, p.kind, open);
            results.record(Fig::IdleRss, p.kind, per);
        }
        for p in &mut proxies {
            let hwm = hwm_kib(p.pid()).ok().map(|k| k as f64 / 1024.0);
            results.record(Fig::PeakRssIdle, p.kind, hwm);
            eprintln!(
                "{tag} {}: peak RSS {:.1} MiB{}",
                p.kind,
                hwm.unwrap_or(f64::NAN),
                sessions_note(p)
            );
            p.check_alive()?;
        }
    }
    if ![Group::Rtt, Group::Neighbour, Group::Connects, Group::Bulk]
        .into_iter()
        .any(want)
    {
        return Ok(());
    }
    let mut proxies = start_proxies(kinds, sshd, args, targets, &order, &tag).await?;

    for &i in order.iter().filter(|_| want(Group::Rtt)) {
        let p = &mut proxies[i];
        quiesce(targets).await;
        let r = load::round_trips(p.addr, targets.echo, plan.rtt_iterations, plan.rtt_limit).await;
        let lat = report(&tag, p, "round trips", r, |l| round_trip_line(l));
        record_p50_p99(results, (Fig::RttP50, Fig::RttP99), p.kind, lat.as_deref());
    }

    for &i in order.iter().filter(|_| want(Group::Neighbour)) {
        let p = &mut proxies[i];
        quiesce(targets).await;
        let r = load::slow_neighbour(
            p.addr,
            targets.source,
            targets.echo,
            1_000_000,
            plan.neighbour_bytes,
            plan.neighbour_time,
        )
        .await;
        let lat = report(&tag, p, "round trips beside a 1 MB/s reader", r, |l| {
            round_trip_line(l)
        });
        record_p50_p99(
            results,
            (Fig::SlowNeighbourP50, Fig::SlowNeighbourP99),
            p.kind,
            lat.as_deref(),
        );
    }

    for (c, dur, figs) in [
        (
            1,
            plan.conn_c1,
            [Fig::ConnC1, Fig::ConnC1P50, Fig::ConnC1P99],
        ),
        (
            32,
            plan.conn_c32,
            [Fig::ConnC32, Fig::ConnC32P50, Fig::ConnC32P99],
        ),
    ] {
        for &i in order.iter().filter(|_| want(Group::Connects)) {
            let p = &mut proxies[i];
            quiesce(targets).await;
            let r = load::connects(p.addr, targets.echo, c, dur, plan.max_ops).await;
            let what = format!("connects c={c}");
            let out = report(&tag, p, &what, r, |o| {
                let mut s = format!(
                    "{} ops in {:.2} s = {:.0}/s, p50 {:.2} ms, p99 {:.2} ms",
                    o.ops,
                    o.elapsed.as_secs_f64(),
                    o.ops as f64 / o.elapsed.as_secs_f64(),
                    percentile(&o.latencies_us, 0.5).unwrap_or(0.0) / 1e3,
                    percentile(&o.latencies_us, 0.99).unwrap_or(0.0) / 1e3
                );
                if o.failures > 0 {
                    s.push_str(&format!(
                        "; {} FAILED, first: {}",
                        o.failures,
                        o.first_error.as_deref().unwrap_or("")
                    ));
                }
                s
            });
            let (rate, p50, p99) = match &out {
                Some(o) => (
                    Some(o.ops as f64 / o.elapsed.as_secs_f64()),
                    percentile(&o.latencies_us, 0.5).map(|v| v / 1e3),
                    percentile(&o.latencies_us, 0.99).map(|v| v / 1e3),
                ),
                None => (None, None, None),
            };
            results.record(figs[0], p.kind, rate);
            results.record(figs[1], p.kind, p50);
            results.record(figs[2], p.kind, p99);
        }
    }

    let mut bulk: Vec<Bulk> = proxies.iter().map(|_| Bulk::default()).collect();
    for (fig, streams, each, up) in [
        (Fig::Down1, 1, plan.down1, false),
        (Fig::Down8, 8, plan.down8_each, false),
        (Fig::Up1, 1, plan.up1, true),
    ] {
        for &i in order.iter().filter(|_| want(Group::Bulk)) {
            let p = &mut proxies[i];
            quiesce(targets).await;
            let bytes = each * streams as u64;
            let cpu0 = cpu_ticks(p.pid())?;
            let sshd0 = descendants_cpu_ticks(sshd.pid());
            let r = if up {
                load::upload(p.addr, targets.sink, each).await
            } else {
                load::download(p.addr, targets.source, streams, each).await
            };
            let ticks = cpu_ticks(p.pid())?.saturating_sub(cpu0);
            let sshd_ticks = descendants_cpu_ticks(sshd.pid()).saturating_sub(sshd0);
            let what = format!(
                "{} {streams} stream{}",
                if up { "upload" } else { "download" },
                if streams == 1 { "" } else { "s" }
            );
            let t = report(&tag, p, &what, r, |t| {
                format!(
                    "{} MiB in {:.2} s = {:.0} MB/s, proxy CPU {:.2} s",
                    bytes / MIB,
                    t.as_secs_f64(),
                    bytes as f64 / 1e6 / t.as_secs_f64(),
                    ticks as f64 / tck as f64
                )
            });
            results.record(fig, p.kind, t.map(|t| bytes as f64 / 1e6 / t.as_secs_f64()));
            if t.is_some() {
                let b = &mut bulk[i];
                if up {
                    b.up_ticks += ticks;
                    b.up_bytes += bytes;
                } else {
                    b.down_ticks += ticks;
                    b.down_bytes += bytes;
                }
                b.sshd_ticks += sshd_ticks;
            }
        }
    }
    for (i, p) in proxies.iter().enumerate() {
        let hwm = hwm_kib(p.pid()).ok().map(|k| k as f64 / 1024.0);
        results.record(Fig::PeakRss, p.kind, hwm);
        eprintln!(
            "{tag} {}: peak RSS {:.1} MiB{}",
            p.kind,
            hwm.unwrap_or(f64::NAN),
            sessions_note(p)
        );
        if !want(Group::Bulk) {
            continue;
        }
        let b = &bulk[i];
        let per_gib = |ticks: u64, bytes: u64| {
            (bytes > 0).then(|| ticks as f64 / tck as f64 / (bytes as f64 / GIB))
        };
        results.record(
            Fig::CpuBulk,
            p.kind,
            per_gib(b.down_ticks + b.up_ticks, b.down_bytes + b.up_bytes),
        );
        results.record(Fig::CpuDown, p.kind, per_gib(b.down_ticks, b.down_bytes));
        results.record(Fig::CpuUp, p.kind, per_gib(b.up_ticks, b.up_bytes));
        results.record(
            Fig::SshdCpu,
            p.kind,
            per_gib(b.sshd_ticks, b.down_bytes + b.up_bytes),
        );
    }
    for p in &mut proxies {
        p.check_alive()?;
    }
    Ok(())
}

/// Starts a fresh proxy of each kind against `sshd` and warms it up.
async fn start_proxies(
    kinds: &[Kind],
    sshd: &Sshd,
    args: &Args,
    targets: &Targets,
    order: &[usize],
    tag: &str,
) -> Result<Vec<Proxy>> {
    let mut proxies = Vec::new();
    for k in kinds {
        proxies.push(Proxy::start(*k, sshd, &args.jumpgate).await?);
    }
    for &i in order {
        let p = &proxies[i];
        eprintln!("{tag} {} pid {} on {}", p.kind, p.pid(), p.addr);
        warm_up(p, targets)
            .await
            .with_context(|| format!("warm-up of {}", p.kind))?;
    }
    Ok(proxies)
}

/// How many SSH sessions jumpgate's pool opened (the idle tunnels need several).
fn sessions_note(p: &Proxy) -> String {
    match p.kind {
        Kind::Jumpgate => format!(
            ", SSH sessions opened: {}",
            p.log()
                .lines()
                .filter(|l| l.contains("session ready"))
                .count()
        ),
        Kind::Ssh => String::new(),
    }
}

/// Prints one progress line (or the error) to stderr; the value if it worked.
fn report<T>(
    tag: &str,
    p: &mut Proxy,
    what: &str,
    r: Result<T>,
    show: impl FnOnce(&T) -> String,
) -> Option<T> {
    match r {
        Ok(v) => {
            eprintln!("{tag} {}: {what}: {}", p.kind, show(&v));
            Some(v)
        }
        Err(e) => {
            eprintln!("{tag} {}: {what} FAILED: {e:#}", p.kind);
            if let Err(dead) = p.check_alive() {
                eprintln!("{dead:#}");
            }
            None
        }
    }
}

/// A few connects and a small download, so that first-use costs stay out of the figures.
async fn warm_up(p: &Proxy, targets: &Targets) -> Result<()> {
    for _ in 0..20 {
        let r = load::connects(p.addr, targets.echo, 1, Duration::from_secs(5), 1).await?;
        if r.failures > 0 {
            bail!(
                "warm-up connect failed: {}",
                r.first_error.unwrap_or_default()
            );
        }
    }
    load::download(p.addr, targets.source, 1, MIB).await?;
    Ok(())
}

/// Waits (bounded) until the previous figure's tunnels are gone on the target side.
async fn quiesce(targets: &Targets) {
    if !targets
        .wait_active_at_most(0, Duration::from_secs(10))
        .await
    {
        eprintln!(
            "warning: {} target connections still open after 10 s",
            targets.active()
        );
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// Opens `plan.tunnels` idle tunnels; returns the time to open them all (None if not
/// all opened) and the RSS growth per tunnel in KiB. Then closes them and waits until
/// the proxy has torn them down.
async fn idle_tunnels(
    plan: &Plan,
    p: &Proxy,
    targets: &Targets,
    tag: &str,
) -> Result<(Option<f64>, f64)> {
    quiesce(targets).await;
    let before = rss_kib(p.pid())?;
    let idle = load::open_idle(
        p.addr,
        targets.echo,
        plan.tunnels,
        OPEN_CONCURRENCY,
        plan.open_limit,
    )
    .await?;
    let opened = idle.tunnels.len();
    if opened == 0 {
        bail!("no tunnel opened: {}", idle.first_error.unwrap_or_default());
    }
    if idle.failures > 0 {
        eprintln!(
            "{tag} {}: {} of {} tunnels failed to open within {:?}; first error: {}",
            p.kind,
            idle.failures,
            plan.tunnels,
            plan.open_limit,
            idle.first_error.as_deref().unwrap_or("")
        );
    }
    if !targets
        .wait_active_at_least(opened, Duration::from_secs(10))
        .await
    {
        eprintln!(
            "{tag} {}: only {} of {opened} target connections are open",
            p.kind,
            targets.active()
        );
    }
    // Let the proxy finish whatever it does after the replies.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let with = rss_kib(p.pid())?;
    let per = (with as f64 - before as f64) / opened as f64;
    let open_s = (opened == plan.tunnels).then_some(idle.elapsed.as_secs_f64());
    drop(idle.tunnels);
    let drain = Instant::now();
    if !targets.wait_active_at_most(0, plan.drain_limit).await {
        eprintln!(
            "{tag} {}: {} of {opened} tunnels still open {:?} after the clients closed",
            p.kind,
            targets.active(),
            plan.drain_limit
        );
    } else {
        eprintln!(
            "{tag} {}: {opened} tunnels torn down {:.2} s after the clients closed",
            p.kind,
            drain.elapsed().as_secs_f64()
        );
    }
    Ok((open_s, per))
}

/// How a run of round trips is shown as it finishes.
fn round_trip_line(l: &[f64]) -> String {
    format!(
        "{} round trips, p50 {:.0} µs, p99 {:.0} µs",
        l.len(),
        percentile(l, 0.5).unwrap_or(0.0),
        percentile(l, 0.99).unwrap_or(0.0)
    )
}

/// A latency figure's median and 99th percentile, as two figures of the table.
fn record_p50_p99(results: &mut Results, (p50, p99): (Fig, Fig), kind: Kind, lat: Option<&[f64]>) {
    results.record(p50, kind, lat.and_then(|l| percentile(l, 0.5)));
    results.record(p99, kind, lat.and_then(|l| percentile(l, 0.99)));
}
