//! # tailor — real-time personalization at the edge
//!
//! One pure core decides which content a visitor sees: it takes a rule bundle, a request context, a
//! profile snapshot and `now`, and returns decisions. It does no I/O, reads no clock, draws no random
//! numbers and spawns no threads, so the same code runs natively, in Cloudflare Workers and in the browser
//! (wasm32), and returns the same JSON everywhere.
//!
//! The pipeline has one type per stage:
//!
//! | stage | type | made by |
//! | --- | --- | --- |
//! | source files | [`diagnostic::SourceFile`] | the caller (CLI, server) |
//! | checked bundle | [`bundle::CheckedBundle`] | [`bundle::load_sources`], [`bundle::load_artifact`] |
//! | compiled program | [`Engine`] | [`Engine::new`], [`Engine::from_artifact`] |
//! | decision | [`wire::DecideResponse`] | [`Engine::decide`] |
//!
//! All checking happens at load and reports every problem with its source position; a decision cannot
//! fail. Conditions compile to a flat op arena ([`expr::program`]), checked against a naive reference
//! evaluator ([`expr::reference`]) by property tests. Allocation is the published hash spec of
//! [`allocation`].
//!
//! Library code is forbidden to `unwrap`, `expect`, `panic!` or index slices (workspace lints), because a
//! panic in a Worker kills the isolate.

pub mod allocation;
pub mod auth;
pub mod bundle;
pub mod context;
pub mod device;
pub mod diagnostic;
pub mod engine;
pub mod expr;
pub mod geoip;
pub mod hash;
pub mod schema;
pub mod signing;
pub mod snapshot;
pub mod time;
pub mod value;
pub mod wire;

pub use engine::Engine;
