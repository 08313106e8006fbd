//! portico-agent: see Cargo.toml description and ARCHITECTURE.md.
