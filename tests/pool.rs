//! The session pool: reconnects, failover across jump hosts, growth under load,
//! head-of-line isolation, graceful shutdown.
