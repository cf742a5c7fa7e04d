//! The SSH side: sessions to jump hosts (`session`), the per-upstream pool
//! that keeps, grows and picks them (`pool`), host key checks
//! (`known_hosts`) and private keys (`identity`).

pub mod identity;
pub mod known_hosts;
pub mod pool;
pub mod quickack;
pub mod session;
