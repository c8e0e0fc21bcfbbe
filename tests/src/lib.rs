//! Helpers for the end-to-end tests: namespaces, processes, real DHCP clients.
