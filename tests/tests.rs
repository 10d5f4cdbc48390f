//! One integration-test binary (faster to link than one per file). See tests/README.md.

mod suite;
