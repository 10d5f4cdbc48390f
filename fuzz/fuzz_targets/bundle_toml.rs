//! Any text as a bundle file: loading must report diagnostics, never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tailor::diagnostic::SourceFile;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let files = vec![SourceFile { name: "fuzz.toml".into(), text: text.to_string() }];
    if let Err(d) = tailor::bundle::load_sources(&files) {
        let _ = d.render(&files);
    }
});
