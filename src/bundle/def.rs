//! Normalized bundle definitions: what `tailor build` writes into the artifact and what every runtime loads.
//!
//! Normalization: every experience has explicit variants, schedules are absolute RFC 3339 instants (time
//! zones resolved at build), the salt is explicit, defaults are filled in. Expressions stay as source text
//! so an artifact can be read and re-checked by any runtime.

use crate::schema::Schema;
use serde::{Deserialize, Serialize};

/// Artifact format version written by this build of tailor.
pub const FORMAT_VERSION: u32 = 1;

/// A whole bundle.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleDef {
    /// Bundle id.
    pub id: String,
    /// Bundle version (free text, e.g. `2026.11.1`).
    pub version: String,
    /// Human description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Allocation salt (defaults to the id). Changing it reshuffles every visitor.
    pub salt: String,
    /// When true, a visitor without an explicit personalization consent is treated as denied.
    #[serde(default)]
    pub require_consent: bool,
    /// Declared attributes.
    #[serde(default)]
    pub schema: Schema,
    /// Named reusable conditions.
    #[serde(default)]
    pub segments: Vec<SegmentDef>,
    /// Named polygons for `in_area`.
    #[serde(default)]
    pub areas: Vec<AreaDef>,
    /// Holdout groups.
    #[serde(default)]
    pub holdouts: Vec<HoldoutDef>,
    /// Placements.
    #[serde(default)]
    pub placements: Vec<PlacementDef>,
}

/// `[segments.<id>]`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentDef {
    /// Segment id (an identifier: referenced as `segment.<id>`).
    pub id: String,
    /// Human description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Condition.
    pub when: String,
}

/// `[areas.<id>]`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AreaDef {
    /// Area id.
    pub id: String,
    /// Vertices as `[latitude, longitude]`, implicitly closed.
    pub polygon: Vec<[f64; 2]>,
}

/// `[holdouts.<id>]`: a share of visitors who always get default content.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoldoutDef {
    /// Holdout id (part of the hashed key).
    pub id: String,
    /// Share held out, 0–100 (resolution 0.01).
    pub percent: f64,
    /// Placements covered; empty means all.
    #[serde(default)]
    pub placements: Vec<String>,
}

/// `[placements.<id>]`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlacementDef {
    /// Placement id.
    pub id: String,
    /// Human description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Content when no experience matches.
    #[serde(default)]
    pub default: serde_json::Value,
    /// Experiences in file order.
    #[serde(default)]
    pub experiences: Vec<ExperienceDef>,
}

/// One experience of a placement.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperienceDef {
    /// Experience id, unique in the bundle.
    pub id: String,
    /// Human description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Condition; absent means everyone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// Higher first; ties keep file order.
    #[serde(default)]
    pub priority: i64,
    /// Active from (inclusive), RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    /// Active until (exclusive), RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
    /// Share of visitors admitted, 0–100.
    pub traffic: f64,
    /// Mutual-exclusion group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclusion_group: Option<String>,
    /// Maximum exposures per visitor (from the profile's exposure counts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency_cap: Option<u32>,
    /// When false, visitors without an id can match (single variant, full traffic only).
    pub requires_visitor_id: bool,
    /// Variants.
    pub variants: Vec<VariantDef>,
}

/// One variant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariantDef {
    /// Variant id, unique in its experience.
    pub id: String,
    /// Integer weight.
    pub weight: u32,
    /// Arbitrary JSON content.
    pub content: serde_json::Value,
}

/// The deployable artifact written by `tailor build`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Artifact {
    /// [`FORMAT_VERSION`].
    pub format: u32,
    /// Bundle id (copy of `definitions.id`).
    pub id: String,
    /// Bundle version (copy of `definitions.version`).
    pub version: String,
    /// `sha256:<hex>` over the canonical JSON of `definitions`.
    pub content_hash: String,
    /// Ed25519 signature over `content_hash`, when signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// The bundle.
    pub definitions: BundleDef,
}

/// Canonical JSON: object keys sorted, no whitespace, numbers as serde_json prints them. Stable whatever
/// map ordering features are compiled in, so the hash is the same in every runtime.
pub fn canonical_json(v: &serde_json::Value, out: &mut String) {
    use serde_json::Value as J;
    match v {
        J::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(k).unwrap_or_default());
                out.push(':');
                if let Some(x) = m.get(*k) {
                    canonical_json(x, out);
                }
            }
            out.push('}');
        }
        J::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_json(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&serde_json::to_string(other).unwrap_or_default()),
    }
}

/// `sha256:<hex>` of the canonical JSON of `def`.
pub fn content_hash(def: &BundleDef) -> String {
    use sha2::{Digest, Sha256};
    let v = serde_json::to_value(def).unwrap_or(serde_json::Value::Null);
    let mut s = String::new();
    canonical_json(&v, &mut s);
    let digest = Sha256::digest(s.as_bytes());
    let mut hex = String::with_capacity(71);
    hex.push_str("sha256:");
    for byte in digest {
        hex.push_str(&format!("{byte:02x}"));
    }
    hex
}
