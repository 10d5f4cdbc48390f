//! Bundles: from source files or a built artifact to a [`CheckedBundle`].
//!
//! `source` reads TOML with spans, `check` validates semantics, `def` holds the normalized definitions
//! that `tailor build` writes as the artifact.

pub mod check;
pub mod def;
pub mod source;

pub use check::CheckedBundle;
pub use def::{Artifact, BundleDef};

use crate::diagnostic::{Diagnostic, Diagnostics, SourceFile};

/// Largest artifact accepted, in bytes.
pub const MAX_ARTIFACT_BYTES: usize = 64 * 1024 * 1024;

/// Check a bundle given as source files (TOML). Files are read in the order given; callers pass them sorted
/// by name so diagnostics and file order are stable. On failure the diagnostics are resolved to
/// file/line/column.
pub fn load_sources(files: &[SourceFile]) -> Result<(CheckedBundle, Diagnostics), Diagnostics> {
    let mut diags = Diagnostics::default();
    if files.is_empty() {
        diags.push(
            Diagnostic::error("empty-bundle", "the bundle has no `.toml` files").help(
                "a bundle directory holds at least `bundle.toml` with `[bundle]` and a placement",
            ),
        );
        return Err(diags);
    }
    let (def, locs) = source::read_bundle(files, &mut diags);
    let checked = check::check(def, &locs, &mut diags);
    diags.resolve(files);
    match checked {
        Some(c) if !diags.has_errors() => Ok((c, diags)),
        _ => Err(diags),
    }
}

/// Check a built artifact (JSON): format version, content hash, then every definition as for sources.
pub fn load_artifact(json: &[u8]) -> Result<CheckedBundle, Diagnostics> {
    let mut diags = Diagnostics::default();
    if json.len() > MAX_ARTIFACT_BYTES {
        diags.push(Diagnostic::error(
            "limit",
            format!(
                "the artifact is {} bytes; the limit is {MAX_ARTIFACT_BYTES}",
                json.len()
            ),
        ));
        return Err(diags);
    }
    let artifact: Artifact = match serde_json::from_slice(json) {
        Ok(a) => a,
        Err(e) => {
            diags.push(
                Diagnostic::error(
                    "invalid-artifact",
                    format!("not a tailor bundle artifact: {e}"),
                )
                .help("build one with `tailor build DIR -o FILE`"),
            );
            return Err(diags);
        }
    };
    if artifact.format != def::FORMAT_VERSION {
        diags.push(
            Diagnostic::error(
                "unsupported-format",
                format!(
                    "artifact format {} is not supported; this tailor reads format {}",
                    artifact.format,
                    def::FORMAT_VERSION
                ),
            )
            .help("rebuild the bundle with this version of `tailor build`"),
        );
        return Err(diags);
    }
    let hash = def::content_hash(&artifact.definitions);
    if hash != artifact.content_hash {
        diags.push(Diagnostic::error("hash-mismatch", format!("content hash mismatch: the artifact says `{}`, its definitions hash to `{hash}`", artifact.content_hash)).help("the artifact was modified after it was built; rebuild it"));
        return Err(diags);
    }
    if artifact.id != artifact.definitions.id || artifact.version != artifact.definitions.version {
        diags.push(Diagnostic::error(
            "invalid-artifact",
            "the artifact's id or version differs from its definitions",
        ));
        return Err(diags);
    }
    let locs = source::Locs::default();
    match check::check(artifact.definitions, &locs, &mut diags) {
        Some(c) if !diags.has_errors() => Ok(c),
        _ => Err(diags),
    }
}

/// The deployable artifact of a checked bundle.
pub fn to_artifact(c: &CheckedBundle) -> Artifact {
    Artifact {
        format: def::FORMAT_VERSION,
        id: c.def.id.clone(),
        version: c.def.version.clone(),
        content_hash: c.hash.clone(),
        signature: None,
        definitions: c.def.clone(),
    }
}
