//! Any text as an audience inside a valid bundle: parse and check must never panic, and a bundle that
//! loads must decide without panicking.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tailor::diagnostic::SourceFile;

fuzz_target!(|data: &[u8]| {
    let Ok(expr) = std::str::from_utf8(data) else { return };
    if expr.contains("'''") {
        return;
    }
    let text = format!(
        "[bundle]\nid = \"f\"\nversion = \"1\"\n[schema.traits]\nltv = \"number\"\n[schema.events.purchases]\nprice = \"number\"\n\
         [placements.p]\ndefault = {{}}\n[[placements.p.experiences]]\nid = \"e\"\naudience = '''{expr}'''\ncontent = {{}}\n"
    );
    let files = vec![SourceFile { name: "fuzz.toml".into(), text }];
    match tailor::bundle::load_sources(&files) {
        Ok((c, _)) => {
            let engine = tailor::Engine::new(c);
            let _ = engine.decide_json(br#"{"visitor_id":"v","placements":["p"],"explain":true}"#, Some(br#"{"traits":{"ltv":3}}"#), 0);
        }
        Err(d) => {
            let _ = d.render(&files);
        }
    }
});
