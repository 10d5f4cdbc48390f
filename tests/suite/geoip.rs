//! GeoIP against MaxMind's test databases: every network in `source-data/` gives its expected record, and
//! every corrupt database gives a clear error, never a panic.

use super::root;
use serde_json::Value;
use std::net::IpAddr;
use tailor::geoip::GeoDb;

fn data(p: &str) -> std::path::PathBuf {
    root().join("tests/data/maxmind").join(p)
}

fn open(name: &str) -> GeoDb {
    GeoDb::from_bytes(std::fs::read(data(&format!("test-data/{name}.mmdb"))).unwrap()).unwrap()
}

/// `"::1.2.3.0/120"` (IPv4 space of an IPv6 tree) → `1.2.3.0`; `"2001:db8::/32"` → `2001:db8::`.
fn first_address(cidr: &str) -> IpAddr {
    let addr = cidr.split('/').next().unwrap();
    match addr.strip_prefix("::").filter(|rest| rest.contains('.')) {
        Some(v4) => v4.parse().unwrap(),
        None => addr.parse().unwrap(),
    }
}

/// Check every network of a source-data file; returns how many were checked.
fn check_all(name: &str) -> usize {
    let db = open(name);
    let source: Vec<Value> = serde_json::from_str(
        &std::fs::read_to_string(data(&format!("source-data/{name}.json"))).unwrap(),
    )
    .unwrap();
    let mut failures = Vec::new();
    let mut checked = 0;
    for entry in &source {
        let (cidr, want) = entry.as_object().unwrap().iter().next().unwrap();
        let ip = first_address(cidr);
        let got = db
            .lookup(ip)
            .unwrap_or_else(|e| panic!("{name} {cidr}: {e}"));
        let Some(got) = got else {
            failures.push(format!("{cidr}: no record"));
            continue;
        };
        let s = |v: &Value| v.as_str().map(str::to_string);
        let expect = [
            (
                "country",
                s(&want["country"]["iso_code"]),
                got.country.clone(),
            ),
            (
                "region",
                s(&want["subdivisions"][0]["iso_code"]),
                got.region.clone(),
            ),
            ("city", s(&want["city"]["names"]["en"]), got.city.clone()),
            ("postal", s(&want["postal"]["code"]), got.postal.clone()),
            (
                "time_zone",
                s(&want["location"]["time_zone"]),
                got.time_zone.clone(),
            ),
            (
                "continent",
                s(&want["continent"]["code"]),
                got.continent.clone(),
            ),
        ];
        for (field, w, g) in expect {
            if w.as_deref() != g.as_deref() {
                failures.push(format!("{cidr}: {field} is {g:?}, expected {w:?}"));
            }
        }
        let nums = [
            (
                "latitude",
                want["location"]["latitude"].as_f64(),
                got.latitude,
            ),
            (
                "longitude",
                want["location"]["longitude"].as_f64(),
                got.longitude,
            ),
            (
                "accuracy_km",
                want["location"]["accuracy_radius"].as_f64(),
                got.accuracy_km,
            ),
        ];
        for (field, w, g) in nums {
            if w != g {
                failures.push(format!("{cidr}: {field} is {g:?}, expected {w:?}"));
            }
        }
        checked += 1;
    }
    assert!(
        failures.is_empty(),
        "{name}: {} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
    checked
}

#[test]
fn city_databases_match_source_data() {
    assert!(check_all("GeoIP2-City-Test") > 200);
    assert!(check_all("GeoLite2-City-Test") > 200);
}

#[test]
fn country_databases_match_source_data() {
    assert!(check_all("GeoIP2-Country-Test") > 100);
    assert!(check_all("GeoLite2-Country-Test") > 100);
}

#[test]
fn enterprise_database_matches_source_data() {
    assert!(check_all("GeoIP2-Enterprise-Test") > 20);
}

#[test]
fn anonymous_ip_flags() {
    let db = open("GeoIP2-Anonymous-IP-Test");
    let source: Vec<Value> = serde_json::from_str(
        &std::fs::read_to_string(data("source-data/GeoIP2-Anonymous-IP-Test.json")).unwrap(),
    )
    .unwrap();
    for entry in &source {
        let (cidr, want) = entry.as_object().unwrap().iter().next().unwrap();
        let any = want
            .as_object()
            .unwrap()
            .iter()
            .any(|(k, v)| k.starts_with("is_") && v == &Value::Bool(true));
        let got = db.lookup(first_address(cidr)).unwrap().unwrap();
        assert_eq!(got.anonymous, Some(any), "{cidr}");
        assert_eq!(got.country, None);
    }
    // A City database without flags says nothing about anonymity.
    let city = open("GeoIP2-City-Test");
    assert_eq!(
        city.lookup("2001:220::".parse().unwrap())
            .unwrap()
            .unwrap()
            .anonymous,
        None
    );
}

#[test]
fn addresses_outside_the_database_have_no_record() {
    let db = open("GeoIP2-City-Test");
    assert_eq!(db.lookup_str("10.0.0.1").unwrap(), None);
    assert!(db.lookup_str("not an ip").is_err());
    assert_eq!(db.database_type(), "GeoIP2-City");
}

/// Every corrupt database: opening or looking up gives an error or no record, and nothing panics.
#[test]
fn corrupt_databases_never_panic() {
    let mut files = Vec::new();
    let mut stack = vec![data("bad-data")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "mmdb") {
                files.push(p);
            }
        }
    }
    for n in [
        "GeoIP2-City-Test-Broken-Double-Format",
        "GeoIP2-City-Test-Invalid-Node-Count",
        "MaxMind-DB-test-broken-pointers-24",
        "MaxMind-DB-test-broken-search-tree-24",
    ] {
        files.push(data(&format!("test-data/{n}.mmdb")));
    }
    assert!(files.len() >= 20, "{} corrupt databases", files.len());
    let probes: Vec<IpAddr> = [
        "1.1.1.1",
        "1.1.1.3",
        "1.1.1.32",
        "2.125.160.216",
        "81.2.69.160",
        "::1.1.1.1",
        "2001:218::",
        "::",
        "255.255.255.255",
    ]
    .iter()
    .map(|a| a.parse().unwrap())
    .collect();
    let mut errors = 0;
    for f in &files {
        let result =
            std::panic::catch_unwind(|| match GeoDb::from_bytes(std::fs::read(f).unwrap()) {
                Err(e) => {
                    assert!(!e.message.is_empty());
                    1
                }
                Ok(db) => probes
                    .iter()
                    .filter(|ip| db.lookup(**ip).is_err())
                    .count()
                    .min(1),
            });
        match result {
            Ok(n) => errors += n,
            Err(_) => panic!("{} made the GeoIP reader panic", f.display()),
        }
    }
    // Most corrupt files are caught at open or on a probe; the rest hide their damage off the probed paths.
    assert!(
        errors * 2 >= files.len(),
        "only {errors} of {} corrupt databases gave an error",
        files.len()
    );
}
