//! Prometheus metrics: the `jumpgate_*` families and the process collector.
//! One registry per process, built once; label values come from the code
//! (listener and upstream names from the config, results and reasons from
//! enums), never from client input, so cardinality is bounded by the config.
//! Everything that counts (`ssh`, `proxy`, `relay`) writes here; `admin`
//! renders it at `/metrics`. This module imports nothing of jumpgate's.
//!
//! Every series whose label set is known in advance exists at 0 from
//! start-up (`declare_upstream`, and `proxy::ListenerMetrics` for listeners):
//! a counter that first appears at its first event, already at 1, is a rise
//! that `increase()` and `rate()` never see, so an alert on it could not fire.

use std::sync::OnceLock;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    pub connections: IntCounterVec,
    pub connections_active: IntGaugeVec,
    pub connect_duration: HistogramVec,
    pub transferred: IntCounterVec,
    pub sessions: IntGaugeVec,
    pub session_connects: IntCounterVec,
    pub channels_active: IntGaugeVec,
    pub open_failures: IntCounterVec,
    pub keepalive_timeouts: IntCounterVec,
    pub rate_limited: IntCounterVec,
    pub relay_buffered: IntGaugeVec,
    pub relay_spilled: IntCounterVec,
    pub relay_caps: IntCounterVec,
}

/// `jumpgate_connections_total{result}`: how one client connection ended.
/// Handles are looked up by variant (`proxy::ListenerMetrics::connections`),
/// never by discriminant, so reordering the variants cannot mislabel a series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnResult {
    Ok,
    Rejected,
    Failed,
    RateLimited,
}

impl ConnResult {
    /// Every result, for code that creates or reads all series.
    pub const ALL: [ConnResult; 4] = [
        ConnResult::Ok,
        ConnResult::Rejected,
        ConnResult::Failed,
        ConnResult::RateLimited,
    ];

    /// The `result` label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Rejected => "rejected",
            Self::Failed => "failed",
            Self::RateLimited => "rate_limited",
        }
    }
}

/// The `reason` label of `jumpgate_channel_open_failures_total`: why a
/// channel open failed (`ssh::session::OpenError::reason` maps onto it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenFailure {
    Prohibited,
    ConnectFailed,
    UnknownChannelType,
    ResourceShortage,
    Timeout,
    NoSession,
    SessionGone,
    /// Every session of the pool holds its cap, or the fd budget is used up.
    PoolFull,
    SshError,
}

impl OpenFailure {
    /// Every reason, so that each series exists at 0 from start-up.
    pub const ALL: [OpenFailure; 9] = [
        OpenFailure::Prohibited,
        OpenFailure::ConnectFailed,
        OpenFailure::UnknownChannelType,
        OpenFailure::ResourceShortage,
        OpenFailure::Timeout,
        OpenFailure::NoSession,
        OpenFailure::SessionGone,
        OpenFailure::PoolFull,
        OpenFailure::SshError,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Self::Prohibited => "prohibited",
            Self::ConnectFailed => "connect_failed",
            Self::UnknownChannelType => "unknown_channel_type",
            Self::ResourceShortage => "resource_shortage",
            Self::Timeout => "timeout",
            Self::NoSession => "no_session",
            Self::SessionGone => "session_gone",
            Self::PoolFull => "pool_full",
            Self::SshError => "ssh_error",
        }
    }
}

/// The `result` label of `jumpgate_session_connects_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionConnect {
    Ok,
    Failed,
}

impl SessionConnect {
    pub const ALL: [SessionConnect; 2] = [SessionConnect::Ok, SessionConnect::Failed];

    pub fn label(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Failed => "failed",
        }
    }
}

/// The `state` label of `jumpgate_sessions`.
pub const SESSION_STATES: [&str; 3] = ["ready", "connecting", "draining"];

/// Connect latency buckets, 0.5 ms to 30 s.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0,
];

pub fn get() -> &'static Metrics {
    static M: OnceLock<Metrics> = OnceLock::new();
    M.get_or_init(Metrics::new)
}

impl Metrics {
    fn new() -> Metrics {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = constant(IntCounterVec::new(Opts::new(name, help), labels));
            let _ = registry.register(Box::new(c.clone()));
            c
        };
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            let g = constant(IntGaugeVec::new(Opts::new(name, help), labels));
            let _ = registry.register(Box::new(g.clone()));
            g
        };
        let connect_duration = constant(HistogramVec::new(
            HistogramOpts::new(
                "jumpgate_connect_duration_seconds",
                "From accepting a client to answering its CONNECT.",
            )
            .buckets(BUCKETS.to_vec()),
            &["upstream"],
        ));
        let _ = registry.register(Box::new(connect_duration.clone()));
        if let Ok(build) = IntGauge::with_opts(
            Opts::new("jumpgate_build_info", "Build information.")
                .const_label("version", env!("CARGO_PKG_VERSION")),
        ) {
            build.set(1);
            let _ = registry.register(Box::new(build));
        }
        let _ = registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ));
        Metrics {
            connections: counter(
                "jumpgate_connections_total",
                "Client connections by outcome.",
                &["listener", "result"],
            ),
            connections_active: gauge(
                "jumpgate_connections_active",
                "Client connections open now.",
                &["listener"],
            ),
            connect_duration,
            transferred: counter(
                "jumpgate_transferred_bytes_total",
                "Bytes relayed, counted as they pass (up: client to target).",
                &["upstream", "direction"],
            ),
            sessions: gauge(
                "jumpgate_sessions",
                "SSH sessions by state.",
                &["upstream", "state"],
            ),
            session_connects: counter(
                "jumpgate_session_connects_total",
                "SSH session attempts by result.",
                &["upstream", "result"],
            ),
            channels_active: gauge(
                "jumpgate_channels_active",
                "direct-tcpip channels open now.",
                &["upstream"],
            ),
            open_failures: counter(
                "jumpgate_channel_open_failures_total",
                "Channel opens that failed, by reason.",
                &["upstream", "reason"],
            ),
            keepalive_timeouts: counter(
                "jumpgate_keepalive_timeouts_total",
                "Sessions declared dead after unanswered keepalives.",
                &["upstream"],
            ),
            rate_limited: counter(
                "jumpgate_rate_limited_total",
                "Client connections refused by a [limits] setting.",
                &["listener", "limit"],
            ),
            relay_buffered: gauge(
                "jumpgate_relay_buffered_bytes",
                "Bytes the jump host sent that wait for slow clients, by tier.",
                &["upstream", "tier"],
            ),
            relay_spilled: counter(
                "jumpgate_relay_spilled_bytes_total",
                "Bytes written to spill files (a tunnel's memory tier was full).",
                &["upstream"],
            ),
            relay_caps: counter(
                "jumpgate_relay_cap_reached_total",
                "Times a tunnel's buffer reached a cap and its session waited for its client.",
                &["upstream", "cap"],
            ),
            registry,
        }
    }

    /// Creates every series of one upstream at 0, so that each exists from
    /// start-up: `ready 0` for an upstream that never had a session, and
    /// counters that alerts can see rise from 0 at their first event.
    pub fn declare_upstream(&self, upstream: &str) {
        for state in SESSION_STATES {
            self.sessions.with_label_values(&[upstream, state]);
        }
        for result in SessionConnect::ALL {
            self.session_connects
                .with_label_values(&[upstream, result.label()]);
        }
        for reason in OpenFailure::ALL {
            self.open_failures
                .with_label_values(&[upstream, reason.label()]);
        }
        for direction in ["up", "down"] {
            self.transferred.with_label_values(&[upstream, direction]);
        }
        self.keepalive_timeouts.with_label_values(&[upstream]);
        self.channels_active.with_label_values(&[upstream]);
        self.connect_duration.with_label_values(&[upstream]);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    }
}

/// Metric definitions are constants (names, help, labels written here):
/// they fail only on a programming error, which the unit test catches.
#[allow(clippy::expect_used)]
fn constant<T>(r: prometheus::Result<T>) -> T {
    r.expect("constant metric definition")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_renders_with_its_labels() {
        let m = get();
        m.connections
            .with_label_values(&["l", ConnResult::Ok.label()])
            .inc();
        m.connect_duration.with_label_values(&["u"]).observe(0.003);
        m.sessions.with_label_values(&["u", "ready"]).set(2);
        let text = m.render();
        for name in [
            "jumpgate_connections_total{listener=\"l\",result=\"ok\"} 1",
            "jumpgate_connect_duration_seconds_bucket{upstream=\"u\",le=\"0.005\"} 1",
            "jumpgate_sessions{state=\"ready\",upstream=\"u\"} 2",
            "jumpgate_build_info{version=",
        ] {
            assert!(text.contains(name), "missing {name} in:\n{text}");
        }
    }

    #[test]
    fn a_declared_upstream_has_every_series_at_zero() {
        let m = get();
        m.declare_upstream("declared");
        let text = m.render();
        let mut want = vec![
            "jumpgate_keepalive_timeouts_total{upstream=\"declared\"} 0".to_owned(),
            "jumpgate_channels_active{upstream=\"declared\"} 0".to_owned(),
            "jumpgate_connect_duration_seconds_count{upstream=\"declared\"} 0".to_owned(),
        ];
        for r in SessionConnect::ALL {
            want.push(format!(
                "jumpgate_session_connects_total{{result=\"{}\",upstream=\"declared\"}} 0",
                r.label()
            ));
        }
        for r in OpenFailure::ALL {
            want.push(format!(
                "jumpgate_channel_open_failures_total{{reason=\"{}\",upstream=\"declared\"}} 0",
                r.label()
            ));
        }
        for s in SESSION_STATES {
            want.push(format!(
                "jumpgate_sessions{{state=\"{s}\",upstream=\"declared\"}} 0"
            ));
        }
        for line in want {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line} in:\n{text}"
            );
        }
    }

    #[test]
    fn open_failure_reasons_are_listed_once_each() {
        let mut labels: Vec<&str> = OpenFailure::ALL.iter().map(|r| r.label()).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), OpenFailure::ALL.len(), "{labels:?}");
    }

    #[test]
    fn every_result_is_listed_once_with_its_own_label() {
        // Exhaustive: a new variant fails to compile here until it is in ALL.
        let position = |r: ConnResult| match r {
            ConnResult::Ok => 0,
            ConnResult::Rejected => 1,
            ConnResult::Failed => 2,
            ConnResult::RateLimited => 3,
        };
        for (i, r) in ConnResult::ALL.iter().enumerate() {
            assert_eq!(position(*r), i, "{r:?}");
        }
        let mut labels: Vec<&str> = ConnResult::ALL.iter().map(|r| r.label()).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), ConnResult::ALL.len(), "{labels:?}");
    }
}
