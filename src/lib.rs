//! jumpgate: `ssh -D` as a service. A pool of SSH sessions to jump hosts
//! serving local SOCKS5 endpoints whose CONNECTs become `direct-tcpip`
//! channels. `main.rs` is a thin shell over `cli::main`.
//!
//! Layers, top down: `cli` parses and dispatches, and nothing imports it;
//! the commands (`up`, `demo`, `check`, `status_table`) import no other
//! command; `daemon` (wiring, the one `startup` path, shutdown) runs the
//! serving ones over `admin` and `proxy`; below them `relay`, then `ssh`,
//! then `tunnel_buffer` (filled by `ssh`, drained by `relay`), `config`,
//! `ssh_config` and `limit`; and `capacity`, `exit`, `metrics`, `status` and
//! `telemetry` are shared vocabulary that imports nothing of jumpgate's.

#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod admin;
pub mod capacity;
pub mod check;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod exit;
pub mod limit;
pub mod metrics;
pub mod proxy;
pub mod relay;
pub mod ssh;
pub mod ssh_config;
pub mod status;
pub mod status_table;
pub mod telemetry;
pub mod tunnel_buffer;
pub mod up;
