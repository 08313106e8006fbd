//! portico-dns: see Cargo.toml description and ARCHITECTURE.md.
