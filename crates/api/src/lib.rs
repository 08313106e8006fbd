//! Portico's Kubernetes API model: the resource registry, validation, defaulting,
//! patching, selectors and table printing, as pure functions over JSON objects.
//!
//! Architecture invariant: this crate does no IO (no files, sockets, clocks or
//! randomness passed in implicitly); callers pass the time and the objects.

pub mod resource;
pub mod status;
pub mod discovery;
pub mod patch;
pub mod table;
pub mod openapi;
pub mod defaults;
pub mod gofmt;
pub mod selector;
pub mod strict;
pub mod validation;
pub mod json_keys;
