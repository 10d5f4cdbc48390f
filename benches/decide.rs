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

/// A large synthetic bundle (the generator is the committed definition of the benchmark bundle): `segments` segments and `experiences` experiences spread over `placements`
/// placements, with audiences mixing context and purchase-history conditions. Deterministic.
fn generated_bundle(segments: usize, experiences: usize, placements: usize) -> String {
    let countries = ["KR", "JP", "US", "DE", "FR", "GB", "BR", "AU", "IN", "CA"];
    let cats = ["shoes", "coffee", "outerwear", "hats", "bags"];
    let mut s = String::from(
        "[bundle]\nid = \"generated\"\nversion = \"1\"\n\n[schema.traits]\ntier = \"string\"\nltv = \"number\"\n\n\
         [schema.attributes]\ncart = \"number\"\n\n[schema.events.purchases]\ncategory = \"string\"\nprice = \"number\"\ndiscounted = \"bool\"\n\n",
    );
    for i in 0..segments {
        let c = countries[i % countries.len()];
        let cat = cats[i % cats.len()];
        let cond = match i % 4 {
            0 => format!("geo.country == \"{c}\" && device.type == \"mobile\""),
            1 => format!(
                "profile.purchases.within({}d).where(category == \"{cat}\").count() >= {}",
                30 + i % 300,
                1 + i % 3
            ),
            2 => format!(
                "profile.ltv > {} || attributes.cart >= {}",
                100 * (i % 20),
                10 * (i % 7)
            ),
            _ => format!(
                "segment.s{} && time.hour >= {}",
                i.saturating_sub(3),
                i % 24
            ),
        };
        s.push_str(&format!("[segments.s{i}]\nwhen = '{cond}'\n\n"));
    }
    for p in 0..placements {
        s.push_str(&format!(
            "[placements.p{p}]\ndefault = {{ id = \"default-{p}\" }}\n\n"
        ));
        for e in (0..experiences).filter(|e| e % placements == p) {
            let c = countries[(e / 7) % countries.len()];
            let aud = match e % 3 {
                0 => format!("segment.s{} && geo.country in [\"{c}\", \"XX\"]", e % segments),
                1 => format!("segment.s{} || (device.os_version >= \"17.{}\" && request.path.starts_with(\"/p{}\"))", e % segments, e % 5, e % 13),
                _ => format!("profile.purchases.where(price > {}).sum(price) > {} && geo.country == \"{c}\"", e % 90, 100 + e % 400),
            };
            s.push_str(&format!(
                "[[placements.p{p}.experiences]]\nid = \"e{e}\"\npriority = {}\naudience = '{aud}'\ntraffic = {}\n\
                 [[placements.p{p}.experiences.variants]]\nid = \"a\"\nweight = 1\ncontent = {{ e = {e}, v = \"a\" }}\n\
                 [[placements.p{p}.experiences.variants]]\nid = \"b\"\nweight = 1\ncontent = {{ e = {e}, v = \"b\" }}\n\n",
                e % 10,
                50 + e % 51
            ));
        }
    }
    s
}

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
    req_all.placements = retail.placement_ids().map(str::to_string).collect();
    c.bench_function("retail/all 5 placements", |b| {
        b.iter(|| black_box(retail.decide(black_box(&req_all), Some(&profile), now)))
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
    req10.placements = (0..10).map(|p| format!("p{p}")).collect();
    let big_profile = big.decode_profile(&profile_bytes).unwrap();
    c.bench_function("generated/ten placements", |b| {
        b.iter(|| black_box(big.decide(black_box(&req10), Some(&big_profile), now)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
