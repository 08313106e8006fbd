//! portico-proxy: see Cargo.toml description and ARCHITECTURE.md.
