//! Instruction counts for the end-to-end-from-bytes path, for `valgrind --tool=callgrind` (repeatable on
//! a shared VM where wall-clock times drift): parse the request, decode the profile, decide one placement.
//!
//! `cargo build --release --example e2e_count && valgrind --tool=callgrind
//! target/release/examples/e2e_count STAGE N` with STAGE one of `e2e`, `profile`, `request` (`request_serde`: serde alone), `decide` (`decide4`: the server benchmark's four placements; `decide4capped`: the same with `vip-welcome-back` at its cap),
//! `generated` (ten placements of the generated bundle);
//! divide the total by N (the fixed start-up cost is measured with N = 0 and subtracted). Allocations per
//! iteration: `valgrind --tool=dhat` totals ("N blocks") for N = 100 minus N = 0, divided by 100.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

#[path = "../benches/generated.rs"]
mod generated;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [stage, n] = &args[..] else {
        panic!("usage: e2e_count e2e|profile|request|request_serde|decide|decide4|generated|number|timestamp N");
    };
    let n: u32 = n.parse().unwrap();
    let mut files = Vec::new();
    for dir in [
        "rules/retail",
        "rules/retail/placements",
        "rules/retail/segments",
    ] {
        let Ok(rd) = std::fs::read_dir(dir) else {
            continue;
        };
        for e in rd {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "toml") {
                files.push(p);
            }
        }
    }
    files.sort();
    let files: Vec<_> = files
        .into_iter()
        .map(|p| tailor::diagnostic::SourceFile {
            name: p.display().to_string(),
            text: std::fs::read_to_string(&p).unwrap(),
        })
        .collect();
    let engine = tailor::Engine::new(tailor::bundle::load_sources(&files).unwrap().0);
    let mut req: tailor::wire::DecideRequest = serde_json::from_slice(
        &std::fs::read("rules/retail/examples/seoul-mobile.request.json").unwrap(),
    )
    .unwrap();
    req.placements = vec!["home_hero".into()];
    let req_bytes = serde_json::to_vec(&req).unwrap();
    let profile_bytes = std::fs::read(
        std::env::var("TAILOR_PROFILE").unwrap_or_else(|_| "benches/data/profile-3k.json".into()),
    )
    .unwrap();
    let profile = engine.decode_profile(&profile_bytes).unwrap();
    let now = tailor::time::parse_timestamp("2026-12-03T10:00:00Z").unwrap();
    let big = (stage == "generated").then(|| {
        let files = vec![tailor::diagnostic::SourceFile {
            name: "generated.toml".into(),
            text: generated::generated_bundle(200, 1000, 10),
        }];
        tailor::Engine::new(tailor::bundle::load_sources(&files).unwrap().0)
    });
    // The server benchmark's request: four placements.
    let mut req4 = req.clone();
    req4.placements = ["home_hero", "app_banner", "product_recs", "promo_strip"]
        .map(tailor::wire::Text::from)
        .to_vec();
    let mut req10 = req.clone();
    req10.placements = (0..10).map(|p| format!("p{p}").into()).collect();
    let big_profile = big
        .as_ref()
        .map(|e| e.decode_profile(&profile_bytes).unwrap());
    use std::hint::black_box as bb;
    for _ in 0..n {
        match stage.as_str() {
            "e2e" => {
                bb(engine
                    .decide_json(bb(&req_bytes), Some(bb(&profile_bytes)), now)
                    .unwrap());
            }
            "profile" => {
                bb(engine.decode_profile(bb(&profile_bytes)).unwrap());
            }
            "request" => {
                bb(tailor::wire::DecideRequest::from_json(bb(&req_bytes)).unwrap());
            }
            "request_serde" => {
                bb(tailor::wire::DecideRequest::from_json_serde(bb(&req_bytes)).unwrap());
            }
            "decide" => {
                bb(engine.decide(bb(&req), Some(&profile), now));
            }
            "decide4" => {
                bb(engine.decide(bb(&req4), Some(&profile), now));
            }
            // The server benchmark's steady state: `vip-welcome-back` has reached its cap.
            "decide4capped" => {
                bb(engine.decide_with_counts(
                    bb(&req4),
                    Some(&profile),
                    now,
                    &[("vip-welcome-back", 20)],
                ));
            }
            "generated" => {
                if let (Some(e), Some(p)) = (&big, &big_profile) {
                    bb(e.decide(bb(&req10), Some(p), now));
                }
            }
            "number" => {
                let mut sc = tailor::context::scan::Scanner::new(bb(b"79.01,")).unwrap();
                bb(sc.number().unwrap());
            }
            "timestamp" => {
                bb(tailor::context::fast_timestamp(bb("2026-01-01T10:15:00Z")));
            }
            other => panic!("unknown stage {other}"),
        }
    }
}
