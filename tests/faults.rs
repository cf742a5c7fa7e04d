//! Faults: black-holed links, ProxyJump chains through namespaces, and an in-process
//! russh jump host that opens slowly, refuses, or never says hello.
