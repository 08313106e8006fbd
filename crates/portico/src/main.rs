//! The `portico` binary: parses the command line and hands off to the component crates.

fn main() {}
