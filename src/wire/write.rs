//! The response's JSON text, written directly.
//!
//! Why not serde: serde_json writes each of a four-placement response's ~37 strings (keys included)
//! through `format_escaped_str` at ~150 instructions apiece (callgrind on `tailor serve`: 5.4k
//! instructions per decide, 7 % of the server's user time). Keys here are literal bytes, and a value is
//! copied whole after one word-at-a-time scan for the bytes JSON must escape.
//!
//! Invariant: [`DecideResponse::to_json`] is byte-for-byte `serde_json::to_vec` of the same response
//! (same field order, same `skip_serializing_if` rules, same escapes: `\"`, `\\`, the short forms
//! `\b \t \n \f \r`, else `\u00xx` in lowercase hex; everything else verbatim). A property test in
//! `tests/suite/wire.rs` holds it to that on random responses; traces (`explain`) go through serde.
//!
//! An engine's answer is mostly constants of the bundle: the engine writes the start of the response
//! and each decision it can give (placement default, holdout, each variant) once at load with this same
//! writer, and `to_json` copies those texts while a decision still holds the values they were made for
//! ([`super::Rendered`], [`super::RenderedBundle`]; 45.8k → 44.1k instructions per decide request,
//! callgrind on the server, 2026-12-04). The conformance corpus checks the copied
//! texts against serde on every case; `a_changed_decision_is_written_as_changed` checks the fallback.

use super::{DecideResponse, Decision, Reason};
use crate::context::scan::find_stop;

/// Append `s` as a JSON string.
fn string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let mut rest = s.as_bytes();
    loop {
        let i = find_stop(rest);
        let (plain, tail) = rest.split_at(i.min(rest.len()));
        out.extend_from_slice(plain);
        let Some((&c, after)) = tail.split_first() else {
            break;
        };
        match c {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x08 => out.extend_from_slice(b"\\b"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            0x0c => out.extend_from_slice(b"\\f"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                let hex = |n: u8| HEX.get(usize::from(n & 0x0f)).copied().unwrap_or(b'0');
                out.extend_from_slice(&[b'\\', b'u', b'0', b'0', hex(c >> 4), hex(c)]);
            }
        }
        rest = after;
    }
    out.push(b'"');
}

fn reason(r: Reason) -> &'static [u8] {
    match r {
        Reason::Matched => b"\"matched\"",
        Reason::Default => b"\"default\"",
        Reason::Holdout => b"\"holdout\"",
        Reason::UnknownPlacement => b"\"unknown_placement\"",
    }
}

fn decision(out: &mut Vec<u8>, d: &Decision) -> Result<(), serde_json::Error> {
    if let Some(json) = d.rendered.json_for(d) {
        out.extend_from_slice(json);
        return Ok(());
    }
    fields(out, d)
}

/// `{"bundle":{...},"decisions":[`.
fn head(out: &mut Vec<u8>, b: &super::BundleRef) {
    out.extend_from_slice(b"{\"bundle\":{\"id\":");
    string(out, &b.id);
    out.extend_from_slice(b",\"version\":");
    string(out, &b.version);
    out.extend_from_slice(b",\"hash\":");
    string(out, &b.hash);
    out.extend_from_slice(b"},\"decisions\":[");
}

/// The start of a response's text made once at load ([`super::RenderedBundle`]).
pub(crate) fn bundle_text(b: &super::BundleRef) -> Vec<u8> {
    let mut out = Vec::new();
    head(&mut out, b);
    out
}

/// A decision's text made once at load ([`super::Rendered`]), field by field.
pub(crate) fn decision_text(d: &Decision) -> Vec<u8> {
    let mut out = Vec::new();
    // Only traces go through serde, and a rendered decision has none.
    let _ = fields(&mut out, d);
    out
}

fn fields(out: &mut Vec<u8>, d: &Decision) -> Result<(), serde_json::Error> {
    out.extend_from_slice(b"{\"placement\":");
    string(out, &d.placement);
    if let Some(e) = &d.experience {
        out.extend_from_slice(b",\"experience\":");
        string(out, e);
    }
    if let Some(v) = &d.variant {
        out.extend_from_slice(b",\"variant\":");
        string(out, v);
    }
    out.extend_from_slice(b",\"content\":");
    out.extend_from_slice(d.content.get().as_bytes());
    out.extend_from_slice(b",\"reason\":");
    out.extend_from_slice(reason(d.reason));
    if let Some(t) = &d.trace {
        out.extend_from_slice(b",\"trace\":");
        serde_json::to_writer(&mut *out, t)?;
    }
    out.push(b'}');
    Ok(())
}

impl DecideResponse<'_> {
    /// The compact JSON text of this response: exactly what `serde_json::to_vec` gives, faster (see the
    /// module docs of `wire::write`). Every HTTP runtime answers with these bytes.
    pub fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        let b = &self.bundle;
        let mut out = Vec::with_capacity(
            160 + b.hash.len()
                + self
                    .decisions
                    .iter()
                    .map(|d| 96 + d.placement.len() + d.content.get().len())
                    .sum::<usize>(),
        );
        match self.rendered.json_for(b) {
            Some(head) => out.extend_from_slice(head),
            None => head(&mut out, b),
        }
        for (i, d) in self.decisions.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            decision(&mut out, d)?;
        }
        out.push(b']');
        if !self.notes.is_empty() {
            out.extend_from_slice(b",\"notes\":[");
            for (i, n) in self.notes.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                string(&mut out, n);
            }
            out.push(b']');
        }
        out.push(b'}');
        Ok(out)
    }
}
