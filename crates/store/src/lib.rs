//! portico-store: see Cargo.toml description and ARCHITECTURE.md.
