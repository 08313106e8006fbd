//! Portico's Kubernetes API model: the resource registry, validation, defaulting,
//! patching, selectors and table printing, as pure functions over JSON objects.
//!
//! Architecture invariant: this crate does no IO (no files, sockets, clocks or
//! randomness passed in implicitly); callers pass the time and the objects.

pub mod defaults;
pub mod discovery;
pub mod gofmt;
pub mod json_keys;
pub mod openapi;
pub mod patch;
pub mod resource;
pub mod selector;
pub mod status;
pub mod strict;
pub mod table;
pub mod validation;
