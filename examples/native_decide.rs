//! Native side of the wasm-vs-native benchmark (`wasm/browser/bench/bench.mjs` runs it in the same run):
//! the same work as one `engine.decide(request, profileHandle, now)` call through tailor-wasm — parse the
//! request JSON, decide with a pre-decoded profile, serialize the response to a string.
//!
//! `cargo run --release --example native_decide -- ARTIFACT REQUEST PROFILE NOW_MS ITERATIONS`
//! prints `{"ns_per_call": …}`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [artifact, request, profile, now, iterations] = &args[..] else {
        panic!("usage: native_decide ARTIFACT REQUEST PROFILE NOW_MS ITERATIONS");
    };
    let engine = tailor::Engine::from_artifact(&std::fs::read(artifact).unwrap()).unwrap();
    let request = std::fs::read_to_string(request).unwrap();
    let profile = engine
        .decode_profile(&std::fs::read(profile).unwrap())
        .unwrap();
    let now: i64 = now.parse().unwrap();
    let n: u32 = iterations.parse().unwrap();
    let call = || {
        let req: tailor::wire::DecideRequest = serde_json::from_str(&request).unwrap();
        engine.validate(&req).unwrap();
        serde_json::to_string(&engine.decide(&req, Some(&profile), now)).unwrap()
    };
    // Warm up, then take the best of five rounds (the least disturbed by the shared machine).
    for _ in 0..n / 10 {
        std::hint::black_box(call());
    }
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        for _ in 0..n {
            std::hint::black_box(call());
        }
        best = best.min(t.elapsed().as_nanos() as f64 / f64::from(n));
    }
    println!("{{\"ns_per_call\": {best:.1}}}");
}
