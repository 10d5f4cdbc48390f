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

fn detect(ua: &str, headers: &[(&str, &str)]) -> tailor::device::Detected {
    let h = headers
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect();
    tailor::device::detect(parser(), ua, &h)
}

#[test]
fn device_types() {
    let cases = [
        ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1", "mobile"),
        ("Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1", "tablet"),
        ("Mozilla/5.0 (Linux; Android 13; SM-S911B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36", "mobile"),
        ("Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36", "tablet"),
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36", "desktop"),
        ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Safari/605.1.15", "desktop"),
        ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "bot"),
        ("Mozilla/5.0 (PlayStation; PlayStation 5/2.26) AppleWebKit/605.1.15 (KHTML, like Gecko)", "console"),
        ("Mozilla/5.0 (SMART-TV; LINUX; Tizen 6.0) AppleWebKit/537.36 (KHTML, like Gecko) 76.0.3809.146/6.0 TV Safari/537.36", "tv"),
        ("atc/1.0 watchOS/5.1.3 model/Watch3,4 hwp/t8004 build/16S535 (6; dt:156)", "wearable"),
    ];
    for (ua, want) in cases {
        assert_eq!(detect(ua, &[]).kind, want, "{ua}");
    }
    let bot = detect(
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        &[],
    );
    assert!(bot.is_bot);
    assert_eq!(bot.to_wire().is_bot, Some(true));
}

/// Chrome's frozen UA says `Android 10; K`; Client Hints tell the truth and win.
#[test]
fn client_hints_win_over_a_frozen_user_agent() {
    let ua = "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36";
    let d = detect(
        ua,
        &[
            ("Sec-CH-UA-Platform", "\"Android\""),
            ("Sec-CH-UA-Platform-Version", "\"14.0.0\""),
            ("Sec-CH-UA-Model", "\"Pixel 7\""),
            ("Sec-CH-UA-Mobile", "?1"),
            ("Sec-CH-UA-Full-Version-List", "\"Not_A Brand\";v=\"8.0.0.0\", \"Chromium\";v=\"120.0.6099.144\", \"Google Chrome\";v=\"120.0.6099.144\""),
        ],
    );
    let w = d.to_wire();
    assert_eq!(w.os.as_deref(), Some("Android"));
    assert_eq!(w.os_version.as_deref(), Some("14.0.0"));
    assert_eq!(w.model.as_deref(), Some("Pixel 7"));
    assert_eq!(w.browser.as_deref(), Some("Chrome Mobile"));
    assert_eq!(w.browser_version.as_deref(), Some("120.0.6099"));
    assert_eq!(w.kind.as_deref(), Some("mobile"));
    // Without hints the frozen UA is all we know.
    assert_eq!(detect(ua, &[]).to_wire().os_version.as_deref(), Some("10"));
}

#[test]
fn client_hints_lenient_values_and_windows_11() {
    let ua = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.0.0";
    // Unquoted values, as some proxies forward them.
    let d = detect(
        ua,
        &[
            ("sec-ch-ua-platform", "Windows"),
            ("sec-ch-ua-platform-version", "15.0.0"),
            (
                "sec-ch-ua",
                "Microsoft Edge;v=120, Chromium;v=120, Not?A_Brand;v=8",
            ),
        ],
    );
    assert_eq!(
        (d.os.family.as_str(), d.os.major.as_deref()),
        ("Windows", Some("11"))
    );
    assert_eq!(d.browser.family, "Edge");
    assert_eq!(d.kind, "desktop");
    let d10 = detect(
        ua,
        &[
            ("sec-ch-ua-platform", "\"Windows\""),
            ("sec-ch-ua-platform-version", "\"10.0.0\""),
        ],
    );
    assert_eq!(d10.os.major.as_deref(), Some("10"));
}

/// `src/device/uap-prefilter.json` is derived from the embedded rules; it must never go stale.
/// After changing the rules or the literal extraction: `TAILOR_BLESS=1 cargo test --test tests prefilter`.
#[test]
fn precomputed_prefilter_is_current() {
    let table = tailor::device::prefilter_table(tailor::device::UAP_RULES).unwrap();
    let path = super::root().join("src/device/uap-prefilter.json");
    if std::env::var_os("TAILOR_BLESS").is_some() {
        std::fs::write(&path, format!("{table}\n")).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap();
    assert!(
        committed.trim() == table,
        "src/device/uap-prefilter.json is stale: regenerate with TAILOR_BLESS=1 cargo test --test tests prefilter"
    );
    // Loading with the table and computing the prefilter give the same answers.
    let fast = tailor::device::UaParser::builtin().unwrap();
    let slow = tailor::device::UaParser::from_json(tailor::device::UAP_RULES).unwrap();
    for ua in [
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.144 Mobile Safari/537.36",
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    ] {
        assert_eq!(fast.parse(ua), slow.parse(ua), "{ua}");
    }
}

/// `X-Requested-With` names the Android app hosting a web view; rules read it as `device.app`.
#[test]
fn app_web_views_are_detected_and_targetable() {
    use std::collections::BTreeMap;
    let parser = tailor::device::UaParser::builtin().unwrap();
    let ua = "Mozilla/5.0 (Linux; Android 14; Pixel 8 Build/UQ1A.240105.004; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/120.0.6099.193 Mobile Safari/537.36";
    let with = |v: &str| BTreeMap::from([("X-Requested-With".into(), tailor::wire::Text::from(v))]);
    let d = tailor::device::detect(&parser, ua, &with("com.example.shop"));
    assert_eq!(d.app.as_deref(), Some("com.example.shop"));
    assert_eq!(d.to_wire().app.as_deref(), Some("com.example.shop"));
    for not_an_app in [
        "XMLHttpRequest",
        "",
        "shop",
        "com..example",
        "1com.example",
        "com.example/x",
    ] {
        assert_eq!(
            tailor::device::detect(&parser, ua, &with(not_an_app)).app,
            None,
            "{not_an_app:?}"
        );
    }
    assert_eq!(
        tailor::device::detect(&parser, ua, &BTreeMap::new()).app,
        None
    );

    let bundle = r#"
[bundle]
id = "apps"
version = "1"

[placements.banner]
default = { in_app = false }

[[placements.banner.experiences]]
id = "in-app"
audience = 'device.app == "com.example.shop"'
requires_visitor_id = false
content = { in_app = true }
"#;
    let files = vec![tailor::diagnostic::SourceFile {
        name: "bundle.toml".into(),
        text: bundle.into(),
    }];
    let engine = match tailor::bundle::load_sources(&files) {
        Ok((c, _)) => tailor::Engine::new(c),
        Err(d) => panic!("{}", d.render(&files)),
    };
    let mut req = tailor::wire::DecideRequest {
        placements: vec!["banner".into()],
        ..Default::default()
    };
    req.context.device = Some(d.to_wire());
    let r = engine.decide(&req, None, 0);
    assert_eq!(r.decisions[0].experience(), Some("in-app"));
    req.context.device = Some(tailor::device::detect(&parser, ua, &BTreeMap::new()).to_wire());
    assert_eq!(engine.decide(&req, None, 0).decisions[0].experience, None);
}

/// The fast path must answer exactly what the rules answer, wherever it answers at all.
#[test]
fn fast_path_agrees_with_the_rules_on_every_uap_test_ua() {
    let mut answered = 0;
    for file in ["test_ua.json", "test_os.json", "test_device.json"] {
        for c in cases(file) {
            let ua = c["user_agent_string"].as_str().unwrap();
            if let Some(fast) = tailor::device::fast_path(ua) {
                assert_eq!(fast, parser().parse_rules(ua), "{ua}");
                answered += 1;
            }
            assert_eq!(parser().parse(ua), parser().parse_rules(ua), "{ua}");
        }
    }
    assert!(
        answered > 0,
        "the fast path answered none of the uap-core test UAs"
    );
}

/// Real UAs of each fast shape (from the npm `user-agents` mix): the fast path takes them.
#[test]
fn fast_path_covers_the_common_shapes() {
    let common = [
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/124.0.6367.88 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.80",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Safari/605.1.15",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
    ];
    for ua in common {
        let fast = tailor::device::fast_path(ua).unwrap_or_else(|| panic!("not taken: {ua}"));
        assert_eq!(fast, parser().parse_rules(ua), "{ua}");
    }
    // One more token, or a device model, goes to the rules.
    for ua in [
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 OPR/109.0.0.0",
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36",
        "Mozilla/5.0 (Windows NT 6.1; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/109.0.0.0 Safari/537.36",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1 [FBAN/FBIOS]",
    ] {
        assert!(tailor::device::fast_path(ua).is_none(), "{ua}");
    }
}

mod fast_path_properties {
    use super::parser;
    use proptest::prelude::*;

    fn v(n: usize) -> impl Strategy<Value = String> {
        proptest::collection::vec(0u32..100_000, n)
            .prop_map(|p| p.iter().map(u32::to_string).collect::<Vec<_>>().join("."))
    }

    fn ua() -> impl Strategy<Value = String> {
        let mac = (10u32..16, 0u32..20, proptest::option::of(0u32..12))
            .prop_map(|(a, b, c)| c.map_or(format!("{a}_{b}"), |c| format!("{a}_{b}_{c}")));
        let ios = (7u32..30, 0u32..10, proptest::option::of(0u32..10))
            .prop_map(|(a, b, c)| c.map_or(format!("{a}_{b}"), |c| format!("{a}_{b}_{c}")));
        let safari = (1usize..4).prop_flat_map(v);
        let mobile = "[0-9A-Z]{1,8}";
        prop_oneof![
            (mac.clone(), v(4)).prop_map(|(m, c)| format!("Mozilla/5.0 (Macintosh; Intel Mac OS X {m}) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{c} Safari/537.36")),
            (mac.clone(), v(4), v(4)).prop_map(|(m, c, e)| format!("Mozilla/5.0 (Macintosh; Intel Mac OS X {m}) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{c} Safari/537.36 Edg/{e}")),
            (mac, (2usize..4).prop_flat_map(v), safari.clone()).prop_map(|(m, s, w)| format!("Mozilla/5.0 (Macintosh; Intel Mac OS X {m}) AppleWebKit/{w} (KHTML, like Gecko) Version/{s} Safari/{w}")),
            v(4).prop_map(|c| format!("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{c} Safari/537.36")),
            (v(4), v(4)).prop_map(|(c, e)| format!("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{c} Safari/537.36 Edg/{e}")),
            v(4).prop_map(|c| format!("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{c} Safari/537.36")),
            (ios.clone(), (2usize..4).prop_flat_map(v), mobile, safari.clone()).prop_map(|(i, s, m, w)| format!("Mozilla/5.0 (iPhone; CPU iPhone OS {i} like Mac OS X) AppleWebKit/{w} (KHTML, like Gecko) Version/{s} Mobile/{m} Safari/604.1")),
            (ios, v(4), mobile, safari).prop_map(|(i, c, m, w)| format!("Mozilla/5.0 (iPhone; CPU iPhone OS {i} like Mac OS X) AppleWebKit/{w} (KHTML, like Gecko) CriOS/{c} Mobile/{m} Safari/604.1")),
            (1u32..40, v(4)).prop_map(|(a, c)| format!("Mozilla/5.0 (Linux; Android {a}; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{c} Mobile Safari/537.36")),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]
        #[test]
        fn fast_path_equals_the_rules(ua in ua()) {
            let fast = tailor::device::fast_path(&ua);
            prop_assert!(fast.is_some(), "not taken: {}", ua);
            prop_assert_eq!(fast.unwrap(), parser().parse_rules(&ua), "{}", ua);
        }
    }
}

/// The device cache key: the User-Agent plus every header detection reads, the same whether built
/// owned or into a reused buffer, and different whenever the answer could differ.
#[test]
fn cache_keys_cover_every_header_detection_reads() {
    use std::collections::BTreeMap;
    use tailor::device::{cache_key, cache_key_into};
    let h = |pairs: &[(&str, &str)]| -> BTreeMap<tailor::wire::Text, tailor::wire::Text> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect()
    };
    let ua = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/125.0 Mobile Safari/537.36";
    let plain = h(&[("user-agent", ua), ("accept", "*/*")]);
    let app = h(&[("user-agent", ua), ("x-requested-with", "com.example.shop")]);
    let hints = h(&[("user-agent", ua), ("sec-ch-ua-platform", "\"Android\"")]);
    let mut buf = String::from("left over");
    for headers in [&plain, &app, &hints] {
        let (owned_ua, owned) = cache_key(headers).unwrap();
        buf.clear();
        assert_eq!(cache_key_into(headers, &mut buf), Some(owned_ua));
        assert_eq!(buf, owned);
        assert_eq!(owned_ua, ua);
    }
    let keys: Vec<String> = [&plain, &app, &hints]
        .iter()
        .map(|x| cache_key(x).unwrap().1)
        .collect();
    assert_eq!(
        keys[0], ua,
        "headers detection does not read are not in the key"
    );
    assert_ne!(keys[0], keys[1]);
    assert_ne!(keys[0], keys[2]);
    assert_ne!(keys[1], keys[2]);
    assert!(cache_key(&h(&[("accept", "*/*")])).is_none());
}
