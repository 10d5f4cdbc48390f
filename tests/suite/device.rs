//! Device detection accuracy on the uap-core test files of the shipped rule revision
//! (tests/data/uap/, Apache-2.0). Issue 3's target: ≥ 99 % browser, OS and device family.

use super::root;
use serde_json::Value;
use std::sync::OnceLock;
use tailor::device::UaParser;

fn parser() -> &'static UaParser {
    static P: OnceLock<UaParser> = OnceLock::new();
    P.get_or_init(|| UaParser::builtin().unwrap())
}

fn cases(name: &str) -> Vec<Value> {
    serde_json::from_str(
        &std::fs::read_to_string(root().join("tests/data/uap").join(name)).unwrap(),
    )
    .unwrap()
}

/// Share of cases whose listed fields all match, with the first mismatches for the report.
fn accuracy(name: &str, fields: &[&str], get: impl Fn(&str) -> Value) -> (f64, f64, Vec<String>) {
    let cases = cases(name);
    let (mut family_ok, mut all_ok) = (0usize, 0usize);
    let mut misses = Vec::new();
    for c in &cases {
        let ua = c["user_agent_string"].as_str().unwrap();
        let got = get(ua);
        let fam = got["family"] == c["family"];
        let all = fields.iter().all(|f| got[*f] == c[*f]);
        family_ok += usize::from(fam);
        all_ok += usize::from(all);
        if !all && misses.len() < 10 {
            misses.push(format!("{ua}\n   want {}\n   got  {}", c, got));
        }
    }
    let n = cases.len() as f64;
    (
        family_ok as f64 / n * 100.0,
        all_ok as f64 / n * 100.0,
        misses,
    )
}

fn check(name: &str, fields: &[&str], get: impl Fn(&str) -> Value) {
    let (family, all, misses) = accuracy(name, fields, get);
    eprintln!("{name}: family {family:.2} %, all fields {all:.2} %");
    assert!(
        family >= 99.0,
        "{name}: family accuracy {family:.2} % < 99 %; first misses:\n{}",
        misses.join("\n")
    );
    assert!(
        all >= 99.0,
        "{name}: all-field accuracy {all:.2} % < 99 %; first misses:\n{}",
        misses.join("\n")
    );
}

#[test]
fn browsers() {
    check(
        "test_ua.json",
        &["family", "major", "minor", "patch"],
        |ua| serde_json::to_value(parser().user_agent(ua)).unwrap(),
    );
}

#[test]
fn operating_systems() {
    check(
        "test_os.json",
        &["family", "major", "minor", "patch", "patch_minor"],
        |ua| serde_json::to_value(parser().os(ua)).unwrap(),
    );
}

#[test]
fn devices() {
    check("test_device.json", &["family", "brand", "model"], |ua| {
        serde_json::to_value(parser().hardware(ua)).unwrap()
    });
}

#[test]
fn unknown_is_other() {
    let (ua, os, hw) = parser().parse("");
    assert_eq!(
        (ua.family.as_str(), os.family.as_str(), hw.family.as_str()),
        ("Other", "Other", "Other")
    );
}
