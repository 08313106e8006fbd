//! Tests for defaulting.
use super::*;
