//! The SSH side: sessions to jump hosts (`session`), the per-upstream pool
//! that keeps, grows and picks them (`pool`), host key checks
//! (`known_hosts`), private keys and certificates (`identity`) and algorithm
//! preferences (`algorithms`), and ProxyCommand transports (`proxy_command`).

pub mod algorithms;
pub mod identity;
pub mod known_hosts;
pub mod pool;
pub mod proxy_command;
pub mod quickack;
pub mod session;
