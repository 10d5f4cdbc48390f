//! Snapshot tests of error output: one broken bundle per directory under tests/diagnostics/, with the
//! expected human report in `expected.txt` and JSON records in `expected.json`. Run with
//! `TAILOR_BLESS=1` to rewrite them after an intended change, then review the diff.

use super::{root, sources};

fn run(case: &str) {
    let dir = root().join("tests/diagnostics").join(case);
    let files = sources(&dir);
    let diags = match tailor::bundle::load_sources(&files) {
        Ok(_) => panic!("{case}: the broken bundle was accepted"),
        Err(d) => d,
    };
    assert!(diags.has_errors());
    let human = diags.render(&files);
    let json = serde_json::to_string_pretty(diags.items()).unwrap() + "\n";
    let (h, j) = (dir.join("expected.txt"), dir.join("expected.json"));
    if std::env::var_os("TAILOR_BLESS").is_some() {
        std::fs::write(&h, &human).unwrap();
        std::fs::write(&j, &json).unwrap();
        return;
    }
    let want_h = std::fs::read_to_string(&h)
        .unwrap_or_else(|_| panic!("{case}: no expected.txt; run with TAILOR_BLESS=1 and review"));
    let want_j = std::fs::read_to_string(&j).unwrap_or_default();
    assert_eq!(human, want_h, "{case}: human report changed");
    assert_eq!(json, want_j, "{case}: JSON report changed");
}

#[test]
fn unknown_names() {
    run("unknown_names");
}
#[test]
fn type_errors() {
    run("type_errors");
}
#[test]
fn syntax() {
    run("syntax");
}
#[test]
fn structure() {
    run("structure");
}
#[test]
fn segment_cycle() {
    run("segment_cycle");
}
#[test]
fn toml_syntax() {
    run("toml_syntax");
}
#[test]
fn allocation_rules() {
    run("allocation_rules");
}
#[test]
fn empty_expression() {
    run("empty_expression");
}

#[test]
fn every_case_has_a_test() {
    let mut dirs: Vec<String> = std::fs::read_dir(root().join("tests/diagnostics"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    dirs.sort();
    assert_eq!(
        dirs,
        [
            "allocation_rules",
            "empty_expression",
            "segment_cycle",
            "structure",
            "syntax",
            "toml_syntax",
            "type_errors",
            "unknown_names"
        ]
    );
}

/// Every error of every case points at a real line and column (artifact-less source loads always can).
#[test]
fn every_error_has_a_position() {
    for case in [
        "unknown_names",
        "type_errors",
        "syntax",
        "structure",
        "segment_cycle",
        "allocation_rules",
        "empty_expression",
    ] {
        let files = sources(&root().join("tests/diagnostics").join(case));
        let d = tailor::bundle::load_sources(&files).err().unwrap();
        for x in d.items() {
            assert!(
                x.file.is_some() && x.line > 0 && x.column > 0,
                "{case}: {x:?}"
            );
        }
    }
}
