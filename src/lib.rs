//! jumpgate: `ssh -D` as a service. A pool of SSH sessions to jump hosts
//! serving local SOCKS5 endpoints whose CONNECTs become `direct-tcpip`
//! channels. `main.rs` is a thin shell over `cli::main`.
//!
//! Layers, each importing only those below it: `cli` (commands) over
//! `daemon` (wiring, startup, shutdown), `up`, `demo`, `check` and
//! `status_table`; then `admin` and `proxy` (listeners); then `ssh`, `relay`,
//! `limit`; then `config` and `ssh_config`; and at the bottom the shared
//! vocabulary: `exit`, `metrics`, `status`, `telemetry`.

#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod admin;
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
pub mod up;
