//! The SSH side, below the listeners (`proxy`) and above `config`:
//! sessions to jump hosts (`session`: dialing, login, channels), the
//! per-upstream pool that keeps, grows and picks them (`pool`), host key
//! checks (`known_hosts`), private keys and certificates (`identity`),
//! algorithm preferences (`algorithms`), ProxyCommand transports
//! (`proxy_command`) and the jump host socket's quick ACKs (`quickack`).
//! Nothing here knows what SOCKS is.

pub mod algorithms;
pub mod identity;
pub mod known_hosts;
pub mod pool;
pub mod proxy_command;
pub mod quickack;
pub mod session;
