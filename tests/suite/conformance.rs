//! Runs the data-driven corpus in tests/conformance/*.json (format in tests/README.md) natively, through
//! both the source bundle and its built artifact, and checks the two give byte-identical JSON.

use super::{engine, root, sources};
use serde_json::Value;
use tailor::wire::DecideRequest;
use tailor::Engine;

fn check_decision(case: &str, placement: &str, want: &Value, got: &Value) -> Vec<String> {
    let mut errs = Vec::new();
    let mut expect = |field: &str, w: &Value| {
        let g = got.get(field).unwrap_or(&Value::Null);
        if g != w {
            errs.push(format!(
                "{case}: placement `{placement}`: {field} is {g}, expected {w}"
            ));
        }
    };
    match want {
        Value::Null => {
            expect("experience", &Value::Null);
            expect("reason", &Value::String("default".into()));
        }
        Value::String(e) => {
            expect("experience", &Value::String(e.clone()));
            expect("reason", &Value::String("matched".into()));
        }
        Value::Object(m) => {
            for (k, w) in m {
                expect(k, w);
            }
            if m.contains_key("experience") && !m.contains_key("reason") {
                expect("reason", &Value::String("matched".into()));
            }
        }
        other => errs.push(format!("{case}: bad expectation {other}")),
    }
    errs
}

fn run_file(name: &str) -> usize {
    let path = root().join("tests/conformance").join(name);
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let bundle_dir = root().join(doc["bundle"].as_str().unwrap());
    let from_source = engine(&bundle_dir);
    // The same bundle through the artifact path: build, serialize, load.
    let files = sources(&bundle_dir);
    let (checked, _) = tailor::bundle::load_sources(&files).unwrap();
    let artifact = serde_json::to_vec(&tailor::bundle::to_artifact(&checked)).unwrap();
    let from_artifact = Engine::from_artifact(&artifact).unwrap_or_else(|e| panic!("{e:?}"));

    let mut failures = Vec::new();
    let cases = doc["cases"].as_array().unwrap();
    for case in cases {
        let cname = case["name"].as_str().unwrap();
        let expect = case["expect"].as_object().unwrap();
        let mut req = case["request"].clone();
        if req.get("placements").is_none() {
            req["placements"] =
                Value::Array(expect.keys().map(|k| Value::String(k.clone())).collect());
        }
        let req_bytes = serde_json::to_vec(&req).unwrap();
        let profile = case.get("profile").map(|p| serde_json::to_vec(p).unwrap());
        let now = tailor::time::parse_timestamp(case["now"].as_str().unwrap()).unwrap();
        let a = from_source
            .decide_json(&req_bytes, profile.as_deref(), now)
            .unwrap_or_else(|e| panic!("{cname}: {e:?}"));
        let b = from_artifact
            .decide_json(&req_bytes, profile.as_deref(), now)
            .unwrap();
        let (ja, jb) = (
            serde_json::to_string(&a).unwrap(),
            serde_json::to_string(&b).unwrap(),
        );
        assert_eq!(ja, jb, "{cname}: source and artifact engines disagree");
        // The HTTP runtimes answer with `to_json`, which must be serde's text byte for byte.
        assert_eq!(
            String::from_utf8(a.to_json().unwrap()).unwrap(),
            ja,
            "{cname}: DecideResponse::to_json differs from serde_json"
        );
        // One placement asked for alone decodes the snapshot for it alone (`decide_json`); runtimes that
        // cache a fully decoded snapshot call `decide`. Both must give the same JSON, and the decision
        // must be the one it got among the others.
        let full = profile
            .as_deref()
            .map(|p| from_source.decode_profile(p).unwrap());
        for d in &a.decisions {
            let mut one: DecideRequest = serde_json::from_slice(&req_bytes).unwrap();
            one.placements = vec![d.placement().into()];
            let alone = from_source
                .decide_json(&serde_json::to_vec(&one).unwrap(), profile.as_deref(), now)
                .unwrap();
            let cached = from_source.decide(&one, full.as_ref(), now);
            assert_eq!(
                serde_json::to_string(&alone).unwrap(),
                serde_json::to_string(&cached).unwrap(),
                "{cname}: `{}` decoded for itself and fully decoded disagree",
                d.placement
            );
            assert_eq!(
                serde_json::to_value(&alone.decisions).unwrap(),
                serde_json::to_value(std::slice::from_ref(d)).unwrap(),
                "{cname}: `{}` alone and among the others disagree",
                d.placement
            );
        }
        // With explain on, decisions must not change.
        let mut req_explain: DecideRequest = serde_json::from_slice(&req_bytes).unwrap();
        req_explain.explain = true;
        let p = profile
            .as_deref()
            .map(|p| from_source.decode_profile(p).unwrap());
        let c = from_source.decide(&req_explain, p.as_ref(), now);
        for (x, y) in a.decisions.iter().zip(&c.decisions) {
            assert_eq!(
                (&x.experience, &x.variant, x.reason),
                (&y.experience, &y.variant, y.reason),
                "{cname}: explain changed the decision"
            );
            assert!(y.trace.is_some(), "{cname}: explain gave no trace");
        }
        assert_eq!(
            c.to_json().unwrap(),
            serde_json::to_vec(&c).unwrap(),
            "{cname}: DecideResponse::to_json differs from serde_json with a trace"
        );
        let got: Value = serde_json::from_str(&ja).unwrap();
        for (placement, want) in expect {
            let d = got["decisions"]
                .as_array()
                .unwrap()
                .iter()
                .find(|d| d["placement"] == placement.as_str());
            match d {
                Some(d) => failures.extend(check_decision(cname, placement, want, d)),
                None => failures.push(format!("{cname}: no decision for `{placement}`")),
            }
        }
        let notes: Vec<&str> = got["notes"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if let Some(want) = case.get("expect_notes") {
            for w in want.as_array().unwrap() {
                if !notes.contains(&w.as_str().unwrap()) {
                    failures.push(format!("{cname}: missing note {w}; notes are {notes:?}"));
                }
            }
        } else if !notes.is_empty() {
            failures.push(format!("{cname}: unexpected notes {notes:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} conformance failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    cases.len()
}

#[test]
fn features() {
    assert!(run_file("features.json") >= 8);
}

#[test]
fn allocation() {
    assert!(run_file("allocation.json") >= 20);
}

#[test]
fn retail() {
    assert!(run_file("retail.json") >= 8);
}

#[test]
fn every_corpus_file_is_run() {
    let mut names: Vec<String> = std::fs::read_dir(root().join("tests/conformance"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["allocation.json", "features.json", "retail.json"],
        "add new corpus files to this suite"
    );
}

/// A profile decoded for one bundle's schema is never read with another bundle's indexes.
#[test]
fn profile_from_another_bundle_is_ignored() {
    let lang = engine(&root().join("tests/bundles/lang"));
    let retail = engine(&root().join("rules/retail"));
    let p = lang
        .decode_profile(br#"{"traits":{"tier":"gold","ltv":5000}}"#)
        .unwrap();
    let req = DecideRequest {
        visitor_id: Some("v".into()),
        placements: vec!["home_hero".into()],
        ..DecideRequest::default()
    };
    let r = retail.decide(&req, Some(&p), 0);
    assert_eq!(
        r.notes,
        ["the profile was decoded for another bundle and was ignored"]
    );
    assert!(lang.decide(&req, Some(&p), 0).notes.is_empty());
}

/// Only what some audience can read is decoded: a trait read by an unreferenced segment is skipped, so its
/// wrong type is not even noticed, while the same trait read through a referenced segment is.
#[test]
fn profile_decoding_follows_reachable_segments() {
    let bundle = |audience: &str| {
        let text = format!(
            "[bundle]\nid = \"r\"\nversion = \"1\"\n[schema.traits]\nltv = \"number\"\n[segments.big]\nwhen = 'profile.ltv > 10'\n\
             [placements.p]\ndefault = {{}}\n[[placements.p.experiences]]\nid = \"e\"\naudience = '{audience}'\ncontent = {{}}\n"
        );
        let files = vec![tailor::diagnostic::SourceFile {
            name: "b.toml".into(),
            text,
        }];
        Engine::new(tailor::bundle::load_sources(&files).unwrap().0)
    };
    let profile = br#"{"traits": {"ltv": "lots"}}"#;
    let unreferenced = bundle("geo.country == \"KR\"");
    assert!(unreferenced
        .decode_profile(profile)
        .unwrap()
        .problems
        .is_empty());
    let referenced = bundle("segment.big");
    assert_eq!(
        referenced.decode_profile(profile).unwrap().problems.len(),
        1
    );
}

/// The engine's decisions carry their JSON text made at load; a decision changed afterwards (content,
/// ids, reason, a trace) must be written as it is now, not as it was made.
#[test]
fn a_changed_decision_is_written_as_changed() {
    use std::borrow::Cow;
    use std::sync::Arc;
    let e = engine(&root().join("rules/retail"));
    let req: DecideRequest = serde_json::from_value(serde_json::json!({
        "visitor_id": "v-rendered",
        "placements": ["home_hero", "app_banner", "product_recs", "promo_strip"],
        "context": {"geo": {"country": "KR"}},
    }))
    .unwrap();
    let now = tailor::time::parse_timestamp("2026-12-03T10:00:00Z").unwrap();
    let check = |r: &tailor::wire::DecideResponse<'_>, what: &str| {
        assert_eq!(
            String::from_utf8(r.to_json().unwrap()).unwrap(),
            serde_json::to_string(r).unwrap(),
            "{what}"
        );
    };
    let fresh = e.decide(&req, None, now);
    check(&fresh, "as decided");
    assert!(
        fresh.decisions.iter().any(|d| d.experience.is_some()),
        "{:?}",
        fresh.decisions
    );
    type Change = fn(&mut tailor::wire::Decision<'_>);
    let mutations: [(&str, Change); 6] = [
        ("content", |d| {
            d.content = Cow::Owned(Arc::from(
                serde_json::value::RawValue::from_string(r#"{"changed":true}"#.into()).unwrap(),
            ));
        }),
        ("placement", |d| {
            d.placement = Cow::Owned(Arc::from("renamed"))
        }),
        ("experience", |d| {
            d.experience = Some(Cow::Owned(Arc::from("other")))
        }),
        ("variant", |d| d.variant = None),
        ("reason", |d| d.reason = tailor::wire::Reason::Holdout),
        ("trace", |d| d.trace = Some(tailor::wire::Trace::default())),
    ];
    for (what, change) in mutations {
        let mut changed = 0;
        for i in 0..fresh.decisions.len() {
            let mut r = e.decide(&req, None, now);
            let before = r.to_json().unwrap();
            change(&mut r.decisions[i]);
            check(&r, what);
            changed += usize::from(r.to_json().unwrap() != before);
        }
        // (Some mutations are no-ops on some decisions, e.g. no variant on a default.)
        assert!(changed > 0, "{what} changed no decision's text");
    }
    // A response given another bundle reference is written with it.
    let mut r = e.decide(&req, None, now);
    r.bundle.to_mut().version = Arc::from("another");
    check(&r, "bundle");
    assert!(String::from_utf8(r.to_json().unwrap())
        .unwrap()
        .contains(r#""version":"another""#));
    // The same text in a new allocation is written correctly too (field by field).
    let mut r = e.decide(&req, None, now);
    r.decisions[0].placement = Cow::Owned(Arc::from(&*r.decisions[0].placement.to_string()));
    check(&r, "same text, new allocation");
    assert_eq!(r.to_json().unwrap(), fresh.to_json().unwrap());
}

/// Which (placement, experience) pairs are capped: the server counts serves of exactly these.
#[test]
fn has_frequency_cap_names_exactly_the_capped_experiences() {
    let e = engine(&root().join("rules/retail"));
    assert!(e.has_frequency_caps());
    assert!(e.has_frequency_cap("home_hero", "vip-welcome-back"));
    // An uncapped experience of the same placement, and the capped id under another placement.
    assert!(!e.has_frequency_cap("home_hero", "gangnam-store"));
    assert!(!e.has_frequency_cap("promo_strip", "vip-welcome-back"));
    assert!(!e.has_frequency_cap("no_such_placement", "vip-welcome-back"));
}

/// The frequency cap is tested before the audience (cheapest first): a capped experience is reported
/// `frequency_capped` even when its audience is also false, and its audience is not evaluated.
#[test]
fn a_capped_experience_is_frequency_capped_before_its_audience_is_read() {
    let e = engine(&root().join("rules/retail"));
    let req: DecideRequest = serde_json::from_value(serde_json::json!({
        "visitor_id": "v-cap-order",
        "placements": ["home_hero"],
        "explain": true,
    }))
    .unwrap();
    let now = tailor::time::parse_timestamp("2026-12-03T10:00:00Z").unwrap();
    // No purchases: `vip-welcome-back`'s audience (high value, returning) is false.
    let outcome = |exposures: u32| {
        let p = e
            .decode_profile(
                serde_json::json!({"exposures": {"vip-welcome-back": exposures}})
                    .to_string()
                    .as_bytes(),
            )
            .unwrap();
        let r = serde_json::to_value(e.decide(&req, Some(&p), now)).unwrap();
        let t = &r["decisions"][0]["trace"]["experiences"][0];
        assert_eq!(t["experience"], "vip-welcome-back", "{r}");
        t["outcome"].as_str().unwrap().to_string()
    };
    assert_eq!(outcome(0), "audience_false");
    assert_eq!(outcome(19), "audience_false");
    assert_eq!(outcome(20), "frequency_capped");
}
