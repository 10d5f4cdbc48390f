//! The allocation spec: test vectors from an independent implementation, and the distribution.

use super::{engine, root};
use serde_json::Value;
use tailor::allocation::{bucket, murmur3_x86_32, Draw};
use tailor::wire::DecideRequest;

fn vectors() -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(root().join("tests/data/allocation_vectors.json")).unwrap(),
    )
    .unwrap()
}

#[test]
fn murmur3_matches_reference_vectors() {
    let v = vectors();
    let hashes = v["murmur3_x86_32"].as_array().unwrap();
    assert!(hashes.len() >= 10);
    for h in hashes {
        let input = h["input"].as_str().unwrap();
        let seed = u32::try_from(h["seed"].as_u64().unwrap()).unwrap();
        assert_eq!(
            u64::from(murmur3_x86_32(input.as_bytes(), seed)),
            h["hash"].as_u64().unwrap(),
            "murmur3({input:?}, {seed})"
        );
    }
}

#[test]
fn buckets_match_reference_vectors() {
    let v = vectors();
    for b in v["buckets"].as_array().unwrap() {
        let draw = match b["draw"].as_str().unwrap() {
            "traffic" => Draw::Traffic,
            "variant" => Draw::Variant,
            "exclusion" => Draw::Exclusion,
            _ => Draw::Holdout,
        };
        let got = bucket(
            b["salt"].as_str().unwrap(),
            draw,
            b["unit"].as_str().unwrap(),
            b["visitor"].as_str().unwrap(),
        );
        assert_eq!(
            u64::from(got),
            b["bucket"].as_u64().unwrap(),
            "{}",
            b["key"]
        );
    }
}

/// 100,000 visitors land within ±0.5 percentage points of the weights (1:3 variants, 25 % traffic, 50 %
/// holdout, a two-member exclusion group).
#[test]
fn distribution_follows_weights() {
    let e = engine(&root().join("tests/bundles/lang"));
    let req = DecideRequest {
        placements: vec![
            "ab".into(),
            "partial".into(),
            "held".into(),
            "group_a".into(),
        ],
        ..DecideRequest::default()
    };
    let n = 100_000u32;
    let sim = e.simulate(&req, None, 1_800_000_000_000, n);
    let share = |p: &str, x: &str, v: &str| {
        sim.rows
            .iter()
            .find(|r| r.placement == p && r.experience == x && r.variant == v)
            .map_or(0.0, |r| r.share * 100.0)
    };
    let checks = [
        (share("ab", "ab-test", "a"), 25.0),
        (share("ab", "ab-test", "b"), 75.0),
        (share("partial", "partial-traffic", "main"), 25.0),
        (share("held", "(holdout)", ""), 50.0),
        (share("group_a", "group-a-exp", "main"), 50.0),
    ];
    for (got, want) in checks {
        assert!(
            (got - want).abs() <= 0.5,
            "share {got:.3} % is not within 0.5 pp of {want} %"
        );
    }
}

/// Draws are independent: being in the traffic share says nothing about the variant.
#[test]
fn draws_are_independent() {
    let mut both = 0u32;
    let n = 100_000u32;
    for i in 0..n {
        let v = format!("visitor-{i}");
        let t = bucket("s", Draw::Traffic, "exp", &v) < 5000;
        let w = bucket("s", Draw::Variant, "exp", &v) < 5000;
        if t && w {
            both += 1;
        }
    }
    let share = f64::from(both) / f64::from(n) * 100.0;
    assert!((share - 25.0).abs() < 0.5, "joint share {share}");
}

/// A draw's hash prefix computed once (what an engine keeps per experience) and continued with each
/// visitor gives the bucket of the whole input hashed in one go, whatever the lengths (partial 4-byte
/// blocks carried across the prefix's end).
#[test]
fn prefixed_buckets_equal_one_shot_hashes() {
    use tailor::allocation::{bucket_after, prefix};
    let words = [
        "",
        "a",
        "ab",
        "abc",
        "abcd",
        "abcde",
        "salt-2026",
        "vip-welcome-back",
    ];
    for salt in words {
        for unit in words {
            for draw in [Draw::Holdout, Draw::Exclusion, Draw::Traffic, Draw::Variant] {
                let p = prefix(salt, draw, unit);
                for visitor in words.iter().chain(&["v123456789", "visitor-0"]) {
                    let whole = format!("{salt}.{}:{unit}:{visitor}", draw.name());
                    let expected = murmur3_x86_32(whole.as_bytes(), 0) % 10_000;
                    assert_eq!(bucket_after(&p, visitor), expected, "{whole}");
                    assert_eq!(bucket(salt, draw, unit, visitor), expected, "{whole}");
                }
            }
        }
    }
}
