//! Tests for label and field selectors.
use super::*;
