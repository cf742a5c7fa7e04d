//! Figures per run and the table: medians of each side, the median of the per-run
//! ratios jumpgate/ssh (both measured in the same run, seconds apart), their range,
//! and the target for the figure.

use std::fmt::Write as _;

use super::proxy::Kind;

#[derive(Clone, Copy, Debug)]
pub enum Target {
    /// Informational.
    None,
    /// jumpgate/ssh must be at least this.
    RatioAtLeast(f64),
    /// jumpgate/ssh must be at most this.
    RatioAtMost(f64),
    /// jumpgate's own value must be below this (no ratio target).
    JumpgateBelow(f64),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fig {
    Down1,
    Down8,
    Up1,
    ConnC1,
    ConnC1P50,
    ConnC1P99,
    ConnC32,
    ConnC32P50,
    ConnC32P99,
    RttP50,
    RttP99,
    SlowNeighbourP50,
    SlowNeighbourP99,
    IdleOpen,
    IdleRss,
    CpuBulk,
    CpuDown,
    CpuUp,
    PeakRssIdle,
    PeakRss,
    SshdCpu,
}

pub struct Spec {
    pub fig: Fig,
    pub label: String,
    pub decimals: usize,
    pub target: Target,
}

pub fn specs(tunnels: usize) -> Vec<Spec> {
    use Fig::*;
    use Target::*;
    let s = |fig, label: &str, decimals, target| Spec {
        fig,
        label: label.to_string(),
        decimals,
        target,
    };
    vec![
        s(Down1, "download, 1 stream (MB/s)", 0, RatioAtLeast(1.0)),
        s(
            Down8,
            "download, 8 streams (MB/s, sum)",
            0,
            RatioAtLeast(1.2),
        ),
        s(Up1, "upload, 1 stream (MB/s)", 0, RatioAtLeast(1.0)),
        s(ConnC1, "connects/s, c=1", 0, None),
        s(ConnC1P50, "connect latency p50, c=1 (ms)", 3, None),
        s(ConnC1P99, "connect latency p99, c=1 (ms)", 3, None),
        s(ConnC32, "connects/s, c=32", 0, RatioAtLeast(1.2)),
        s(ConnC32P50, "connect latency p50, c=32 (ms)", 2, None),
        s(
            ConnC32P99,
            "connect latency p99, c=32 (ms)",
            2,
            RatioAtMost(0.5),
        ),
        s(RttP50, "round trip p50, 64 B (µs)", 0, RatioAtMost(1.0)),
        s(RttP99, "round trip p99, 64 B (µs)", 0, RatioAtMost(1.0)),
        s(
            SlowNeighbourP50,
            "round trip p50 beside a 1 MB/s reader (µs)",
            0,
            None,
        ),
        s(
            SlowNeighbourP99,
            "round trip p99 beside a 1 MB/s reader (µs)",
            0,
            RatioAtMost(1.0),
        ),
        s(
            IdleOpen,
            &format!("open {} idle tunnels (s)", thousands(tunnels)),
            2,
            JumpgateBelow(1.0),
        ),
        s(
            IdleRss,
            "proxy RSS per idle tunnel (KiB)",
            1,
            RatioAtMost(0.5),
        ),
        s(
            CpuBulk,
            "proxy CPU s per GiB, all bulk",
            2,
            RatioAtMost(0.8),
        ),
        s(CpuDown, "proxy CPU s per GiB, downloads", 2, None),
        s(CpuUp, "proxy CPU s per GiB, upload", 2, None),
        s(
            PeakRssIdle,
            &format!("proxy peak RSS with {} tunnels (MiB)", thousands(tunnels)),
            1,
            None,
        ),
        s(PeakRss, "proxy peak RSS, other figures (MiB)", 1, None),
        s(SshdCpu, "sshd CPU s per GiB, all bulk", 2, None),
    ]
}

/// Values per figure, per side, per run (None: the measurement failed).
pub struct Results {
    pub specs: Vec<Spec>,
    runs: Vec<Vec<(Option<f64>, Option<f64>)>>,
    /// Figures measured at all (with --figures, some are skipped).
    measured: Vec<Fig>,
    /// Sides measured at all (with --only, one is skipped).
    sides: Vec<Kind>,
}

impl Results {
    pub fn new(tunnels: usize, sides: &[Kind]) -> Results {
        Results {
            specs: specs(tunnels),
            runs: Vec::new(),
            measured: Vec::new(),
            sides: sides.to_vec(),
        }
    }

    pub fn start_run(&mut self) {
        self.runs.push(vec![(None, None); self.specs.len()]);
    }

    pub fn record(&mut self, fig: Fig, kind: Kind, value: Option<f64>) {
        let Some(i) = self.specs.iter().position(|s| s.fig == fig) else {
            return;
        };
        if !self.measured.contains(&fig) {
            self.measured.push(fig);
        }
        if let Some(run) = self.runs.last_mut() {
            match kind {
                Kind::Ssh => run[i].0 = value,
                Kind::Jumpgate => run[i].1 = value,
            }
        }
    }

    pub fn runs(&self) -> usize {
        self.runs.len()
    }

    /// A markdown table.
    pub fn table(&self) -> String {
        let mut t = String::new();
        let _ = writeln!(
            t,
            "| figure | ssh -D | jumpgate | ratio jg/ssh | ratio range | target | met |"
        );
        let _ = writeln!(t, "|---|---:|---:|---:|---:|---|---|");
        for (i, spec) in self.specs.iter().enumerate() {
            if !self.measured.contains(&spec.fig) {
                continue;
            }
            let ssh: Vec<f64> = self.runs.iter().filter_map(|r| r[i].0).collect();
            let jg: Vec<f64> = self.runs.iter().filter_map(|r| r[i].1).collect();
            let ratios: Vec<f64> = self
                .runs
                .iter()
                .filter_map(|r| match r[i] {
                    (Some(s), Some(j)) if s > 0.0 => Some(j / s),
                    _ => None,
                })
                .collect();
            let fmt = |v: Option<f64>, side: Kind| match v {
                Some(v) => format_num(v, spec.decimals),
                None if self.sides.contains(&side) => "failed".to_string(),
                None => "-".to_string(),
            };
            let ssh_m = median(&ssh);
            let jg_m = median(&jg);
            let ratio = median(&ratios);
            let range = match (min(&ratios), max(&ratios)) {
                (Some(a), Some(b)) if ratios.len() > 1 => format!("{a:.2}-{b:.2}"),
                _ => String::new(),
            };
            let (target, met) = match spec.target {
                Target::None => (String::new(), String::new()),
                Target::RatioAtLeast(x) => (format!(">= {x:.1}x"), yes_no(ratio.map(|r| r >= x))),
                Target::RatioAtMost(x) => (format!("<= {x:.1}x"), yes_no(ratio.map(|r| r <= x))),
                Target::JumpgateBelow(x) => {
                    (format!("jumpgate < {x} s"), yes_no(jg_m.map(|v| v < x)))
                }
            };
            let _ = writeln!(
                t,
                "| {} | {} | {} | {} | {} | {} | {} |",
                spec.label,
                fmt(ssh_m, Kind::Ssh),
                fmt(jg_m, Kind::Jumpgate),
                ratio
                    .map(|r| format!("{r:.2}"))
                    .unwrap_or_else(|| "-".into()),
                range,
                target,
                met
            );
        }
        t
    }
}

fn yes_no(v: Option<bool>) -> String {
    match v {
        Some(true) => "yes".into(),
        Some(false) => "**no**".into(),
        None => "?".into(),
    }
}

pub fn median(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    Some(if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    })
}

/// The `q` quantile (0..=1) by nearest rank.
pub fn percentile(v: &[f64], q: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let rank = ((q * s.len() as f64).ceil() as usize).clamp(1, s.len());
    Some(s[rank - 1])
}

fn min(v: &[f64]) -> Option<f64> {
    v.iter().copied().reduce(f64::min)
}

fn max(v: &[f64]) -> Option<f64> {
    v.iter().copied().reduce(f64::max)
}

fn format_num(v: f64, decimals: usize) -> String {
    if decimals == 0 && v.abs() >= 10_000.0 {
        thousands(v.round() as usize)
    } else {
        format!("{v:.decimals$}")
    }
}

pub fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
