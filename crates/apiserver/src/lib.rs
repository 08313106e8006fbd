//! portico-apiserver: see Cargo.toml description and ARCHITECTURE.md.
