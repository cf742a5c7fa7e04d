//! The integration tests of jumpgate, as one test binary (`autotests = false` in
//! Cargo.toml). They run the real `jumpgate` binary against a real OpenSSH `sshd` on
//! loopback (or inside a network namespace the test creates) and talk to it with real
//! clients: `curl` and a small SOCKS5 client in `support::socks`.
//!
//! - `algorithms`: kex/cipher/MAC/host key lists against an sshd offering one of each.
//! - `capacity`: 10,000 idle tunnels with the default pool; a full pool refuses at once.
//! - `certificates`: user certificates signed by a CA the sshd trusts.
//! - `tunnel`: what a user sees working: pages, byte-exact transfers, half-close,
//!   concurrency, key types, known_hosts modes, `jumpgate demo`.
//! - `errors`: SOCKS reply codes, host key and key file errors, config errors and exit
//!   codes, handshake timeouts, garbage on the SOCKS port.
//! - `known_hosts`: host keys from read-only global known_hosts files; `agent_socket`.
//! - `netns`: a private network behind the jump host, names resolved only there.
//! - `up_messages`: `jumpgate up` hints in ssh's terms (ssh options, "no such identity").
//! - `ssh_config`: `jumpgate up -G` against `ssh -G` over a corpus of configs, and
//!   `jumpgate up` end to end (-D, -J through two sshd, --ready-file, errors).
//! - `faults`: an in-process russh jump host that opens slowly, confirms late, refuses
//!   or never says hello (`support::fault_host`).
//! - `faults_netns`: a black-holed link and a two-hop ProxyJump through namespaces.
//! - `forward`: `forward` listeners (ssh -L) and `remote_forwards` (ssh -R), including
//!   re-establishing remote forwards after the jump host's sshd restarts.
//! - `observability`: the admin endpoint with real monitoring parts: `promtool check
//!   metrics`, a real Prometheus scraping the gate, `/readyz` flips when sshd dies.
//! - `status`: `/status`, the status page in headless Chromium, `jumpgate status`.
//! - `pool`: jump hosts killed and restarted: reconnects, failover, fast refusals,
//!   the reconnect backoff under waiting clients.
//! - `pool_load`: a thousand tunnels over four sessions, a stalled reader beside busy
//!   neighbours, idle extra sessions retired, SIGTERM draining.
//! - `relay`: slow and paused clients get every byte; their neighbours keep latency.
//! - `relay_many`: twenty paused 64 MiB readers: memory within the stated bound.
//! - `stress`: long transfers through one session, and memory over many tunnels.
//!
//! Set `JG_TEST_STANDIN=ssh` to run the gate-based tests against `ssh -N -D` instead of
//! jumpgate (used to validate this suite itself; see `support::gate`).

mod admin;
mod algorithms;
mod capacity;
mod certificates;
mod errors;
mod faults;
mod faults_netns;
mod forward;
mod known_hosts;
mod lifecycle;
mod netns;
mod observability;
mod pool;
mod pool_load;
mod proxy_command;
mod relay;
mod relay_many;
mod ssh_config;
mod status;
mod stress;
mod support;
mod tunnel;
mod up;
mod up_messages;
