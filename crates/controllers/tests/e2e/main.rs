//! End-to-end tests: the real API server in-process, the controllers over kube-rs, real
//! kubectl, and a fake kubelet reporting pod status (the pod runtime is another crate).
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

mod cluster;
mod common;
mod deployments;
mod slices;

use common::{default_config, eventually, Cluster};
