//! The decision benchmarks of `decide.rs`, run with mimalloc as the global allocator: the allocator
//! tailor's native binaries (`tailor serve`, the CLI) link. `cargo bench --bench decide` measures the same
//! code with the system allocator; both figures are in BENCHMARKS.md.
//!
//! `cargo bench --bench decide_mimalloc`

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

// The same benchmark definitions; that file's own `main` is not this binary's entry point.
#[allow(dead_code)]
#[path = "decide.rs"]
mod decide;

criterion::criterion_main!(decide::benches);
