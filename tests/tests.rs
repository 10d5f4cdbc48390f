//! One integration-test binary (faster to link than one per file). See tests/README.md.

// Tests may panic: the workspace's panic-freedom lints are for library code.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

mod suite;
