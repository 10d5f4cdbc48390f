//! Device detection per User-Agent on a realistic traffic mix: npm `user-agents` (10,000 real UAs with
//! market-share weights), installed by scripts/bench-device.sh under target/bench-data (never committed).
//! Without it, the uap-core browser test UAs are used. Figures in BENCHMARKS.md.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use std::collections::BTreeMap;
use tailor::device::{detect, UaParser};

fn traffic() -> Vec<String> {
    let path = std::env::var("TAILOR_UA_MIX").unwrap_or_default();
    if let Ok(text) = std::fs::read_to_string(&path) {
        // Expand by weight into a 10,000-UA sample (deterministic: largest weights first, proportional counts).
        let v: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
        let total: f64 = v.iter().map(|x| x["weight"].as_f64().unwrap_or(0.0)).sum();
        let mut out = Vec::new();
        for x in &v {
            let n = ((x["weight"].as_f64().unwrap_or(0.0) / total) * 10_000.0)
                .round()
                .max(1.0) as usize;
            out.extend(std::iter::repeat_n(
                x["userAgent"].as_str().unwrap().to_string(),
                n,
            ));
        }
        out
    } else {
        let v: Vec<serde_json::Value> =
            serde_json::from_str(&std::fs::read_to_string("tests/data/uap/test_ua.json").unwrap())
                .unwrap();
        v.iter()
            .map(|c| c["user_agent_string"].as_str().unwrap().to_string())
            .collect()
    }
}

/// Time `f` on each UA (20 calls after the warm-up pass) and print the median, p90 and p99 over UAs.
fn per_ua(label: &str, uas: &[String], f: impl Fn(&str)) {
    let mut per: Vec<f64> = uas
        .iter()
        .map(|ua| {
            let t = std::time::Instant::now();
            for _ in 0..20 {
                f(black_box(ua));
            }
            t.elapsed().as_secs_f64() * 1e9 / 20.0
        })
        .collect();
    per.sort_by(f64::total_cmp);
    eprintln!(
        "{label}: median {:.0} ns, p90 {:.0} ns, p99 {:.0} ns",
        per[per.len() / 2],
        per[per.len() * 9 / 10],
        per[per.len() * 99 / 100]
    );
}

fn bench(c: &mut Criterion) {
    let t = std::time::Instant::now();
    let parser = UaParser::builtin().unwrap();
    eprintln!("builtin(): {:?}", t.elapsed());
    let t = std::time::Instant::now();
    parser.preload();
    eprintln!(
        "load rules (on the first UA the fast path does not answer): {:?}",
        t.elapsed()
    );
    let uas = traffic();
    let fast = uas
        .iter()
        .filter(|u| tailor::device::fast_path(u).is_some())
        .count();
    eprintln!(
        "fast path answers {fast} of {} UAs ({:.1} %)",
        uas.len(),
        fast as f64 * 100.0 / uas.len() as f64
    );
    let h = BTreeMap::new();
    // How selective the prefilter is on this mix: rules it lets through per section, on average.
    let mut through = [0usize; 3];
    for ua in &uas {
        for (t, (_, _, n)) in through
            .iter_mut()
            .zip(tailor::device::prefilter_stats(&parser, ua))
        {
            *t += n;
        }
    }
    let avg = through.map(|t| t as f64 / uas.len() as f64);
    eprintln!(
        "rules through the prefilter per UA: browser {:.1}, OS {:.1}, device {:.1}",
        avg[0], avg[1], avg[2]
    );
    // Warm every rule the mix reaches (lazy compilation), then time each UA to report the median.
    let t = std::time::Instant::now();
    for ua in &uas {
        black_box(detect(&parser, ua, &h));
    }
    eprintln!(
        "{} UAs, first pass (compiling the rules they reach): {:?}",
        uas.len(),
        t.elapsed()
    );
    per_ua("per UA", &uas, |ua| {
        black_box(detect(&parser, ua, &h));
    });
    // The same UAs through the rules alone (no fast path), for the side-by-side figure.
    per_ua("rules alone per UA", &uas, |ua| {
        black_box(parser.parse_rules(ua));
    });
    let mut i = 0;
    c.bench_function("device/detect, traffic mix", |b| {
        b.iter(|| {
            i = (i + 1) % uas.len();
            black_box(detect(&parser, black_box(&uas[i]), &h))
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
