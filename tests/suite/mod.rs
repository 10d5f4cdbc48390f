pub mod allocation;
pub mod cli;
pub mod conformance;
pub mod device;
pub mod diagnostics;
pub mod geoip;
pub mod properties;
pub mod serve;
pub mod wire;

use std::path::{Path, PathBuf};
use tailor::diagnostic::SourceFile;

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.toml` under `dir`, sorted, named relative to the repository root (stable snapshots).
pub fn sources(dir: &Path) -> Vec<SourceFile> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "toml") {
                found.push(p);
            }
        }
    }
    found.sort();
    found
        .into_iter()
        .map(|p| SourceFile {
            name: p.strip_prefix(root()).unwrap_or(&p).display().to_string(),
            text: std::fs::read_to_string(&p).unwrap(),
        })
        .collect()
}

/// Load and compile a bundle directory, panicking with the rendered diagnostics when invalid.
pub fn engine(dir: &Path) -> tailor::Engine {
    let files = sources(dir);
    match tailor::bundle::load_sources(&files) {
        Ok((c, _)) => tailor::Engine::new(c),
        Err(d) => panic!("{}", d.render(&files)),
    }
}
