//! The admin HTTP endpoint (`[admin] bind`, loopback by default):
//! `/metrics` (Prometheus text format), `/healthz` (the process is alive),
//! `/readyz` (200 only when every upstream has a ready session and we are not
//! draining; the body names the ones that are not), `/status` (JSON, see
//! `status`, read from the pools, the limits and the metrics by
//! [`StatusSource`]) and `/`, a self-contained HTML page over `/status`.
//! Started by `daemon`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use crate::limit::Limits;
use crate::metrics::ConnResult;
use crate::ssh::pool::Pool;
use crate::status::{LimitsStatus, ListenerInfo, ListenerStatus, Status, UpstreamStatus};

/// The status page: one self-contained file (no external assets) that
/// polls `/status`.
const STATUS_PAGE: &str = include_str!("status_page.html");

/// Serves until `stop`; connections are tracked on `tracker`.
pub async fn serve(
    listener: TcpListener,
    status: Arc<StatusSource>,
    drain: CancellationToken,
    stop: CancellationToken,
    tracker: TaskTracker,
) {
    loop {
        let (tcp, peer) = tokio::select! {
            _ = stop.cancelled() => break,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let (status, drain, stop) = (status.clone(), drain.clone(), stop.clone());
        tracker.spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let (status, drain) = (status.clone(), drain.clone());
                async move { Ok::<_, Infallible>(route(&req, &status, &drain)) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service);
            tokio::select! {
                r = conn => if let Err(e) = r { debug!(%peer, error = %e, "admin connection ended") },
                _ = stop.cancelled() => {}
            }
        });
    }
}

fn route<B>(
    req: &Request<B>,
    status: &StatusSource,
    drain: &CancellationToken,
) -> Response<Full<Bytes>> {
    let pools = &status.pools;
    match req.uri().path() {
        "/" => reply(
            StatusCode::OK,
            "text/html; charset=utf-8",
            STATUS_PAGE.into(),
        ),
        "/status" => match serde_json::to_string_pretty(&status.snapshot(drain.is_cancelled())) {
            Ok(json) => reply(StatusCode::OK, "application/json", json + "\n"),
            Err(e) => reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain",
                format!("cannot encode status: {e}\n"),
            ),
        },
        "/metrics" => reply(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            crate::metrics::get().render(),
        ),
        "/healthz" => reply(StatusCode::OK, "text/plain", "ok\n".into()),
        "/readyz" => {
            if drain.is_cancelled() {
                return reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    "draining\n".into(),
                );
            }
            let why: Vec<String> = pools.iter().filter_map(|p| p.not_ready_reason()).collect();
            if why.is_empty() {
                reply(StatusCode::OK, "text/plain", "ready\n".into())
            } else {
                reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    format!("not ready: {}\n", why.join("; ")),
                )
            }
        }
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found; try /, /status, /metrics, /healthz or /readyz\n".into(),
        ),
    }
}

fn reply(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

/// Everything `/status` reads, owned by the daemon.
pub struct StatusSource {
    pub started: Instant,
    pub pools: Vec<Arc<Pool>>,
    pub listeners: Vec<ListenerInfo>,
    pub limits: Arc<Limits>,
}

impl StatusSource {
    pub fn snapshot(&self, draining: bool) -> Status {
        let upstreams: Vec<UpstreamStatus> = self.pools.iter().map(|p| p.status()).collect();
        let m = crate::metrics::get();
        let count = |l: &str, r: ConnResult| m.connections.with_label_values(&[l, r.label()]).get();
        let listeners = self
            .listeners
            .iter()
            .map(|l| ListenerStatus {
                name: l.name.clone(),
                kind: l.kind.clone(),
                bind: l.bind.clone(),
                via: l.via.clone(),
                connections_active: m.connections_active.with_label_values(&[&l.name]).get(),
                connections_ok: count(&l.name, ConnResult::Ok),
                connections_failed: count(&l.name, ConnResult::Failed),
                connections_rejected: count(&l.name, ConnResult::Rejected),
                connections_rate_limited: count(&l.name, ConnResult::RateLimited),
            })
            .collect();
        Status {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            uptime_seconds: self.started.elapsed().as_secs_f64(),
            ready: !draining && upstreams.iter().all(|u| u.ready),
            draining,
            upstreams,
            listeners,
            limits: limits_status(&self.limits),
            capacity: crate::capacity::get().map(|c| crate::status::CapacityStatus {
                tunnels: c.tunnels,
                channel_slots: c.channel_slots,
                nofile: c.nofile,
                fd_tunnels: c.fd_tunnels,
                open_tunnels: crate::capacity::open_tunnels(),
            }),
            relay: relay_status(&crate::tunnel_buffer::Budget::global()),
        }
    }
}

/// The relay's bounds and totals, for `/status`.
fn relay_status(b: &crate::tunnel_buffer::Budget) -> crate::status::RelayStatus {
    let l = b.limits();
    let u = b.usage();
    crate::status::RelayStatus {
        memory_per_tunnel: l.memory_per_tunnel as u64,
        spill_dir: l.spill_dir.display().to_string(),
        spill_per_tunnel: l.spill_per_tunnel,
        spill_total: l.spill_total,
        buffered_memory_bytes: u.memory,
        buffered_disk_bytes: u.disk,
        spilled_bytes: u.spilled,
        caps_reached: crate::tunnel_buffer::Cap::ALL
            .iter()
            .map(|c| (c.as_str().to_owned(), u.caps[*c as usize]))
            .collect(),
    }
}

/// The `[limits]` settings and counters, for `/status`.
fn limits_status(limits: &Limits) -> LimitsStatus {
    LimitsStatus {
        connections_per_second_per_client: limits
            .settings()
            .connections_per_second_per_client
            .map(std::num::NonZeroU32::get),
        max_connections: limits.settings().max_connections,
        connections: limits.open(),
        rate_limited: limits.refused(),
    }
}
