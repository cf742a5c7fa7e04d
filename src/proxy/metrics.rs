//! One listener's metric handles, resolved once when the listener is built so
//! that the per-client path does no label lookups: its
//! `jumpgate_connections_total` series by result, its active gauge, its
//! rate-limit counters, and its upstream's latency histogram and byte meter.
//! Shared by every listener kind and by remote forwards; the families
//! themselves are in `crate::metrics`.

use prometheus::{Histogram, IntCounter, IntGauge};

use crate::limit::Refusal;
use crate::metrics::{self, ConnResult};
use crate::relay::Meter;

/// A listener's series (and its upstream's, for latency and bytes).
pub struct ListenerMetrics {
    /// `jumpgate_connections_total`, one field per result: read through
    /// `connections`, which matches on the variant, so a series can only
    /// carry its own label.
    ok: IntCounter,
    rejected: IntCounter,
    failed: IntCounter,
    rate_limited_result: IntCounter,
    pub(crate) active: IntGauge,
    pub(crate) connect_duration: Histogram,
    pub(crate) meter: Meter,
    /// `jumpgate_rate_limited_total`, one per `[limits]` key; see `rate_limited`.
    client_rate: IntCounter,
    max_connections: IntCounter,
}

impl ListenerMetrics {
    /// `listener` names the `listener` label (a remote forward's is
    /// `UPSTREAM:R<bind>`), `upstream` the upstream it tunnels through.
    pub fn new(listener: &str, upstream: &str) -> ListenerMetrics {
        let m = metrics::get();
        let conn = |r: ConnResult| m.connections.with_label_values(&[listener, r.label()]);
        let limited = |r: Refusal| m.rate_limited.with_label_values(&[listener, r.label()]);
        ListenerMetrics {
            ok: conn(ConnResult::Ok),
            rejected: conn(ConnResult::Rejected),
            failed: conn(ConnResult::Failed),
            rate_limited_result: conn(ConnResult::RateLimited),
            active: m.connections_active.with_label_values(&[listener]),
            connect_duration: m.connect_duration.with_label_values(&[upstream]),
            meter: Meter {
                up: m.transferred.with_label_values(&[upstream, "up"]),
                down: m.transferred.with_label_values(&[upstream, "down"]),
            },
            client_rate: limited(Refusal::ClientRate),
            max_connections: limited(Refusal::MaxConnections),
        }
    }

    /// The `jumpgate_connections_total{result}` series for `r`.
    pub(crate) fn connections(&self, r: ConnResult) -> &IntCounter {
        match r {
            ConnResult::Ok => &self.ok,
            ConnResult::Rejected => &self.rejected,
            ConnResult::Failed => &self.failed,
            ConnResult::RateLimited => &self.rate_limited_result,
        }
    }

    /// The `jumpgate_rate_limited_total{limit}` series for `r`.
    pub(crate) fn rate_limited(&self, r: Refusal) -> &IntCounter {
        match r {
            Refusal::ClientRate => &self.client_rate,
            Refusal::MaxConnections => &self.max_connections,
        }
    }
}

/// Counts a connection in `jumpgate_connections_active` while alive.
pub(crate) struct Active(IntGauge);

impl Active {
    pub(crate) fn new(g: IntGauge) -> Active {
        g.inc();
        Active(g)
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of one exact series line in the scrape.
    fn sample(text: &str, series: &str) -> Option<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn every_result_counts_in_the_series_with_its_own_label() {
        let m = ListenerMetrics::new("lm-results", "lm-up");
        // A different count per result, so a swapped handle shows.
        for (i, r) in ConnResult::ALL.iter().enumerate() {
            m.connections(*r).inc_by(i as u64 + 1);
        }
        let text = metrics::get().render();
        for (i, r) in ConnResult::ALL.iter().enumerate() {
            let series = format!(
                "jumpgate_connections_total{{listener=\"lm-results\",result=\"{}\"}}",
                r.label()
            );
            assert_eq!(sample(&text, &series), Some(i as u64 + 1), "{series}");
        }
    }

    #[test]
    fn every_refusal_counts_in_the_series_with_its_own_label() {
        let m = ListenerMetrics::new("lm-limits", "lm-up");
        m.rate_limited(Refusal::ClientRate).inc_by(1);
        m.rate_limited(Refusal::MaxConnections).inc_by(2);
        let text = metrics::get().render();
        for (r, want) in [(Refusal::ClientRate, 1), (Refusal::MaxConnections, 2)] {
            let series = format!(
                "jumpgate_rate_limited_total{{limit=\"{}\",listener=\"lm-limits\"}}",
                r.label()
            );
            assert_eq!(sample(&text, &series), Some(want), "{series}");
        }
    }
}
