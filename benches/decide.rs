//! Decision benchmarks. Figures and the machine are recorded in BENCHMARKS.md.
// Benchmarks may panic on bad fixtures; criterion_group! generates undocumented items.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//!
//! `cargo bench --bench decide`

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use tailor::diagnostic::SourceFile;
use tailor::wire::DecideRequest;
use tailor::Engine;

fn read_dir(dir: &str) -> Vec<SourceFile> {
    let mut files = Vec::new();
    let mut stack = vec![std::path::PathBuf::from(dir)];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "toml") {
                files.push(p);
            }
        }
    }
    files.sort();
    files
        .into_iter()
        .map(|p| SourceFile {
            name: p.display().to_string(),
            text: std::fs::read_to_string(&p).unwrap(),
        })
        .collect()
}

fn engine(files: &[SourceFile]) -> Engine {
    Engine::new(
        tailor::bundle::load_sources(files)
            .map_err(|d| d.render(files))
            .unwrap()
            .0,
    )
}

#[path = "generated.rs"]
mod generated;
use generated::generated_bundle;

fn bench(c: &mut Criterion) {
    let retail = engine(&read_dir("rules/retail"));
    let req_bytes = std::fs::read("rules/retail/examples/seoul-mobile.request.json").unwrap();
    let profile_bytes = std::fs::read("benches/data/profile-3k.json").unwrap();
    let now = tailor::time::parse_timestamp("2026-12-03T10:00:00Z").unwrap();
    let mut req: DecideRequest = serde_json::from_slice(&req_bytes).unwrap();
    req.placements = vec!["home_hero".into()];
    let profile = retail.decode_profile(&profile_bytes).unwrap();

    c.bench_function("retail/one placement (context built per call)", |b| {
        b.iter(|| black_box(retail.decide(black_box(&req), Some(&profile), now)))
    });
    let mut req_all = req.clone();
    req_all.placements = retail
        .placement_ids()
        .map(tailor::wire::Text::from)
        .collect();
    c.bench_function("retail/all 5 placements", |b| {
        b.iter(|| black_box(retail.decide(black_box(&req_all), Some(&profile), now)))
    });

    // The server's case: four placements for a visitor picked among 10,000 cached profiles, so the
    // profile is not in the CPU caches (the same snapshot decoded 10,000 times, visited with a stride
    // of 7,919, coprime with the count, so consecutive decisions read profiles 7,919 decodes apart in
    // allocation order); and the same four placements for one profile, hot, for comparison.
    let mut req4 = req.clone();
    req4.placements = ["home_hero", "app_banner", "product_recs", "promo_strip"]
        .into_iter()
        .map(tailor::wire::Text::from)
        .collect();
    let many: Vec<_> = (0..10_000)
        .map(|_| retail.decode_profile(&profile_bytes).unwrap())
        .collect();
    c.bench_function("retail/4 placements, one profile (hot)", |b| {
        b.iter(|| black_box(retail.decide(black_box(&req4), Some(&profile), now)))
    });
    let mut next = 0usize;
    c.bench_function("retail/4 placements, 10,000 profiles in turn (cold)", |b| {
        b.iter(|| {
            next = (next + 7_919) % many.len();
            black_box(retail.decide(black_box(&req4), Some(&many[next]), now))
        })
    });

    let one_bytes = serde_json::to_vec(&req).unwrap();
    c.bench_function(
        "retail/end to end from bytes (request + 3 KB profile, 30 purchases)",
        |b| {
            b.iter(|| {
                black_box(
                    retail
                        .decide_json(black_box(&one_bytes), Some(black_box(&profile_bytes)), now)
                        .unwrap(),
                )
            })
        },
    );
    c.bench_function("retail/decode 3 KB profile", |b| {
        b.iter(|| black_box(retail.decode_profile(black_box(&profile_bytes)).unwrap()))
    });
    // What a generic engine starts from: datalogic-rs parses the visitor JSON into its arena
    // (reset per iteration, as a server would per request).
    let profile_text = std::str::from_utf8(&profile_bytes).unwrap();
    let mut arena = bumpalo::Bump::new();
    c.bench_function("baseline/datalogic-rs DataValue of the 3 KB profile", |b| {
        b.iter(|| {
            arena.reset();
            black_box(
                datalogic_rs::DataValue::from_str(black_box(profile_text), &arena)
                    .unwrap()
                    .is_null(),
            )
        })
    });
    c.bench_function("baseline/serde_json::Value of the 3 KB profile", |b| {
        b.iter(|| {
            black_box(
                serde_json::from_slice::<serde_json::Value>(black_box(&profile_bytes)).unwrap(),
            )
        })
    });

    let text = generated_bundle(200, 1000, 10);
    let files = vec![SourceFile {
        name: "generated.toml".into(),
        text,
    }];
    c.bench_function("generated/compile 1000 experiences + 200 segments", |b| {
        b.iter(|| black_box(engine(black_box(&files))))
    });
    let big = engine(&files);
    let mut req10 = req.clone();
    req10.placements = (0..10).map(|p| format!("p{p}").into()).collect();
    let big_profile = big.decode_profile(&profile_bytes).unwrap();
    c.bench_function("generated/ten placements", |b| {
        b.iter(|| black_box(big.decide(black_box(&req10), Some(&big_profile), now)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
