//! Local proxy endpoints. Each listener kind turns client requests into
//! `Upstream::open` calls and hands the channel to `relay`.

pub mod socks5;
