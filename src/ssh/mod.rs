//! The SSH side: sessions to jump hosts (`session`), their supervisor and
//! channel entry point (`upstream`), host key checks (`known_hosts`) and
//! private keys (`identity`).

pub mod identity;
pub mod known_hosts;
pub mod session;
pub mod upstream;
