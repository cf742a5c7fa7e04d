pub use russh; pub use fast_socks5;
