//! The `tailor` binary end to end: exit codes, error formats, build → check → decide, simulate.

use super::root;
use std::process::{Command, Output};

/// The CLI lives in the `tailor-cli` package; build it once next to this test binary.
pub fn bin() -> &'static std::path::Path {
    static BIN: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-q", "-p", "tailor-cli"])
            .current_dir(root())
            .status()
            .unwrap();
        assert!(status.success(), "building the CLI failed");
        // target/<profile>/deps/tests-<hash> → target/<profile>/tailor
        let exe = std::env::current_exe().unwrap();
        exe.parent()
            .and_then(|d| d.parent())
            .unwrap()
            .join(format!("tailor{}", std::env::consts::EXE_SUFFIX))
    })
}

fn tailor(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .current_dir(root())
        .output()
        .unwrap()
}

/// Run the CLI with `input` on stdin; returns its output.
fn tailor_stdin(args: &[&str], input: &[u8]) -> Output {
    use std::io::Write;
    let mut child = Command::new(bin())
        .args(args)
        .current_dir(root())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

fn json_lines(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("tailor-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

#[test]
fn check_every_example_bundle() {
    for entry in std::fs::read_dir(root().join("rules")).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            let out = tailor(&["check", p.to_str().unwrap()]);
            assert!(
                out.status.success(),
                "{}: {}",
                p.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

#[test]
fn invalid_bundle_exits_1_with_every_error() {
    let out = tailor(&["check", "tests/diagnostics/unknown_names"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("tests/diagnostics/unknown_names/bundle.toml:20:29"),
        "{err}"
    );
    assert!(err.contains("8 errors found"), "{err}");

    let out = tailor(&[
        "check",
        "--error-format",
        "json",
        "tests/diagnostics/unknown_names",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let recs = v.as_array().unwrap();
    assert_eq!(recs.len(), 8);
    for r in recs {
        for k in ["code", "message", "file", "line", "column"] {
            assert!(r.get(k).is_some(), "{r} lacks {k}");
        }
    }
    assert_eq!(recs[2]["help"], "did you mean `geo.country`?");
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(tailor(&["check"]).status.code(), Some(2));
    assert_eq!(tailor(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(tailor(&["check", "no/such/dir"]).status.code(), Some(2));
    assert_eq!(
        tailor(&[
            "decide",
            "--bundle",
            "rules/retail",
            "--request",
            "x.json",
            "--now",
            "yesterday"
        ])
        .status
        .code(),
        Some(2)
    );
}

#[test]
fn help_on_every_command() {
    for cmd in ["check", "build", "decide", "simulate", "geo", "device"] {
        let out = tailor(&[cmd, "--help"]);
        assert!(out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Usage: tailor"),
            "{cmd}"
        );
    }
}

#[test]
fn build_check_decide_and_tamper() {
    let art = tmp("retail.json");
    let out = tailor(&["build", "rules/retail", "-o", art.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = tailor(&["check", art.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let decide = |bundle: &str| {
        tailor(&[
            "decide",
            "--bundle",
            bundle,
            "--request",
            "rules/retail/examples/seoul-mobile.request.json",
            "--profile",
            "rules/retail/examples/big-spender.profile.json",
            "--now",
            "2026-12-03T10:00:00Z",
        ])
    };
    let a = decide("rules/retail");
    let b = decide(art.to_str().unwrap());
    assert!(a.status.success() && b.status.success());
    assert_eq!(a.stdout, b.stdout, "source and artifact decide differently");
    let v: serde_json::Value = serde_json::from_slice(&a.stdout).unwrap();
    assert_eq!(v["decisions"][0]["experience"], "vip-welcome-back");

    // Change one character of the content: the hash no longer matches.
    let text = std::fs::read_to_string(&art)
        .unwrap()
        .replacen("Welcome back", "Welcome b4ck", 1);
    let bad = tmp("tampered.json");
    std::fs::write(&bad, text).unwrap();
    let out = tailor(&["check", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("hash-mismatch"));
}

#[test]
fn invalid_request_exits_1_with_json_error() {
    let req = tmp("bad-request.json");
    std::fs::write(&req, r#"{"placements": ["home_hero"], "visitor": "typo"}"#).unwrap();
    let out = tailor(&[
        "decide",
        "--bundle",
        "rules/retail",
        "--request",
        req.to_str().unwrap(),
        "--now",
        "2026-12-03T10:00:00Z",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(v["code"], "invalid_request");
}

#[test]
fn simulate_shows_shares() {
    let out = tailor(&[
        "simulate",
        "--bundle",
        "rules/retail",
        "--visitors",
        "20000",
        "--now",
        "2026-12-03T10:00:00Z",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = v["rows"].as_array().unwrap();
    let share = |p: &str, e: &str| {
        rows.iter()
            .filter(|r| r["placement"] == p && r["experience"] == e)
            .map(|r| r["share"].as_f64().unwrap())
            .sum::<f64>()
    };
    // 10 % holdout on product_recs.
    assert!((share("product_recs", "(holdout)") - 0.10).abs() < 0.01);
    // Every placement's shares add up to 1.
    for p in ["home_hero", "product_recs", "promo_strip"] {
        let total: f64 = rows
            .iter()
            .filter(|r| r["placement"] == p)
            .map(|r| r["share"].as_f64().unwrap())
            .sum();
        assert!((total - 1.0).abs() < 1e-9, "{p}: {total}");
    }
    let table = tailor(&[
        "simulate",
        "--bundle",
        "rules/retail",
        "--visitors",
        "1000",
        "--now",
        "2026-12-03T10:00:00Z",
    ]);
    assert!(String::from_utf8_lossy(&table.stdout).contains("recs-layout-test"));
}

#[test]
fn geo_reads_ips_from_stdin() {
    let out = tailor_stdin(
        &[
            "geo",
            "--db",
            "tests/data/maxmind/test-data/GeoIP2-City-Test.mmdb",
        ],
        b"81.2.69.160\n10.0.0.1\nnot-an-ip\n\n2001:220::1\n",
    );
    assert!(out.status.success());
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[0]["ip"], "81.2.69.160");
    assert_eq!(lines[0]["country"], "GB");
    assert_eq!(lines[0]["city"], "London");
    assert_eq!(lines[1]["found"], false);
    assert!(lines[2]["error"]
        .as_str()
        .unwrap()
        .contains("not an IP address"));
    assert_eq!(lines[3]["country"], "KR");
    let bad = tailor(&[
        "geo",
        "--db",
        "tests/data/maxmind/bad-data/libmaxminddb/libmaxminddb-metadata-marker-only.mmdb",
    ]);
    assert_eq!(bad.status.code(), Some(1));
}

#[test]
fn device_reads_user_agents_from_stdin() {
    let run = |args: &[&str], input: &[u8]| {
        let out = tailor_stdin(args, input);
        assert!(out.status.success());
        json_lines(&out)
    };
    let lines = run(&["device"], b"Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1\nGooglebot/2.1\n");
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["type"], "mobile");
    assert_eq!(lines[0]["browser"]["family"], "Mobile Safari");
    assert_eq!(lines[0]["os"]["family"], "iOS");
    assert_eq!(lines[0]["device"]["brand"], "Apple");
    assert_eq!(lines[1]["is_bot"], true);
    let lines = run(&["device", "--json"], br#"{"user_agent":"Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36","headers":{"sec-ch-ua-model":"\"Pixel 7\""}}
not json
"#);
    assert_eq!(lines[0]["device"]["model"], "Pixel 7");
    assert!(lines[1]["error"].as_str().is_some());
}

/// `decide` resolves device and location itself when the request only has headers and an IP.
#[test]
fn decide_resolves_device_and_geo() {
    let req = tmp("raw-request.json");
    std::fs::write(
        &req,
        r#"{"visitor_id": "v-app", "placements": ["app_banner", "home_hero"],
            "context": {"ip": "2001:220::1",
                        "headers": {"User-Agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"}}}"#,
    )
    .unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec![
            "decide",
            "--bundle",
            "rules/retail",
            "--request",
            req.to_str().unwrap(),
            "--now",
            "2026-11-24T10:00:00Z",
        ];
        args.extend_from_slice(extra);
        let out = tailor(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    // Device from the User-Agent, no location: not in KR/JP, so no app banner.
    let v = run(&[]);
    assert_eq!(v["decisions"][0]["reason"], "default");
    // The IP is in Korea in MaxMind's test City database: a mobile web visitor in KR gets the banner.
    let v = run(&[
        "--geoip-db",
        "tests/data/maxmind/test-data/GeoIP2-City-Test.mmdb",
    ]);
    assert_eq!(v["decisions"][0]["experience"], "app-download-kr-jp");
    assert_eq!(v["decisions"][1]["experience"], "kr-hero");
}
