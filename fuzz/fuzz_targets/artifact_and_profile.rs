//! Any bytes as an artifact, and as request/profile JSON for a fixed bundle: errors, never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = tailor::Engine::from_artifact(data);
    let files = vec![tailor::diagnostic::SourceFile {
        name: "b.toml".into(),
        text: "[bundle]\nid = \"f\"\nversion = \"1\"\n[schema.traits]\nltv = \"number\"\n[placements.p]\ndefault = {}\n\
               [[placements.p.experiences]]\nid = \"e\"\naudience = 'profile.ltv > 1'\ncontent = {}\n"
            .into(),
    }];
    if let Ok((c, _)) = tailor::bundle::load_sources(&files) {
        let engine = tailor::Engine::new(c);
        let _ = engine.decide_json(data, Some(data), 0);
        let _ = engine.decide_json(br#"{"placements":["p"],"visitor_id":"v"}"#, Some(data), 0);
    }
});
