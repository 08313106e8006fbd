//! portico-controllers: see Cargo.toml description and ARCHITECTURE.md.
