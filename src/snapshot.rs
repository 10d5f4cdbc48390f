//! Profile snapshots as stores keep them, and real-time events folded into them.
//!
//! A snapshot is the JSON object the engine decodes (`traits`, `segments`, `consent`, `events`,
//! `exposures`; see rules/README.md). Every adapter that stores profiles (the native server's SQLite
//! store, the Worker's Durable Object) calls these functions, so a snapshot written through either API
//! is byte-identical. Stored snapshots are checked for shape, not against one bundle's schema: bundles
//! change, profiles outlive them, and the engine already turns a field of the wrong type into a note at
//! decision time.
//!
//! Errors are [`ErrorResponse`]s whose `code` maps to an HTTP status with
//! [`ErrorResponse::http_status`]: `invalid_profile` / `invalid_event` 400, `too_large` 413,
//! `internal` 500 (a stored snapshot that is not an object).

use crate::wire::ErrorResponse;
use serde_json::{Map, Value};

/// Limits on stored profiles.
#[derive(Clone, Copy, Debug)]
pub struct ProfileLimits {
    /// Largest stored snapshot, in bytes (413 above).
    pub max_bytes: usize,
    /// Events kept per stream; older ones are dropped first.
    pub max_events_per_stream: usize,
}

fn too_large(msg: String) -> ErrorResponse {
    ErrorResponse::new("too_large", msg)
}

fn internal(msg: String) -> ErrorResponse {
    ErrorResponse::new("internal", msg)
}

fn shape_error(msg: impl Into<String>) -> ErrorResponse {
    ErrorResponse::new("invalid_profile", msg)
}

/// Check a full snapshot for `PUT /v1/profiles/{id}` and return the bytes to store (with `visitor_id`
/// set to `id`: a snapshot is never stored under another visitor's id).
pub fn normalize_snapshot(
    id: &str,
    body: &[u8],
    limits: ProfileLimits,
) -> Result<Vec<u8>, ErrorResponse> {
    if body.len() > limits.max_bytes {
        return Err(too_large(format!(
            "the profile is {} bytes; the limit is {}",
            body.len(),
            limits.max_bytes
        )));
    }
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| shape_error(format!("the profile is not valid JSON: {e}")))?;
    let Value::Object(mut m) = v else {
        return Err(shape_error("a profile snapshot is a JSON object"));
    };
    if let Some(other) = m.get("visitor_id").and_then(Value::as_str) {
        if other != id {
            return Err(shape_error(format!(
                "the snapshot's `visitor_id` is `{other}` but the URL names `{id}`"
            )));
        }
    }
    check_shape(&m)?;
    m.insert("visitor_id".into(), Value::String(id.into()));
    for stream in m
        .get_mut("events")
        .and_then(Value::as_object_mut)
        .into_iter()
        .flat_map(|e| e.values_mut())
    {
        if let Value::Array(a) = stream {
            sort_and_cap(a, limits.max_events_per_stream);
        }
    }
    finish(m, limits)
}

fn finish(m: Map<String, Value>, limits: ProfileLimits) -> Result<Vec<u8>, ErrorResponse> {
    let out = serde_json::to_vec(&Value::Object(m))
        .map_err(|e| internal(format!("serializing a profile: {e}")))?;
    if out.len() > limits.max_bytes {
        return Err(too_large(format!(
            "the profile would be {} bytes; the limit is {}",
            out.len(),
            limits.max_bytes
        )));
    }
    Ok(out)
}

fn check_shape(m: &Map<String, Value>) -> Result<(), ErrorResponse> {
    for (k, v) in m {
        let ok = match k.as_str() {
            "visitor_id" => v.is_string(),
            "traits" | "consent" => v.is_object(),
            "segments" => v.as_array().is_some_and(|a| a.iter().all(Value::is_string)),
            "events" => v.as_object().is_some_and(|e| {
                e.values()
                    .all(|s| s.as_array().is_some_and(|a| a.iter().all(Value::is_object)))
            }),
            "exposures" => v
                .as_object()
                .is_some_and(|e| e.values().all(Value::is_number)),
            other => {
                return Err(shape_error(format!(
                    "unknown profile field `{other}`; a snapshot has `visitor_id`, `traits`, `segments`, `consent`, `events` and `exposures`"
                )))
            }
        };
        if !ok {
            let want = match k.as_str() {
                "visitor_id" => "a string",
                "traits" | "consent" => "an object",
                "segments" => "an array of strings",
                "events" => "an object of arrays of event objects",
                _ => "an object of numbers",
            };
            return Err(shape_error(format!("profile field `{k}` must be {want}")));
        }
    }
    Ok(())
}

fn at_ms(e: &Value) -> i64 {
    e.get("at")
        .and_then(Value::as_str)
        .and_then(crate::time::parse_timestamp)
        .unwrap_or(i64::MIN)
}

/// Oldest first, at most `cap` (the newest kept). Stable: equal times keep arrival order.
fn sort_and_cap(a: &mut Vec<Value>, cap: usize) {
    a.sort_by_key(at_ms);
    if a.len() > cap {
        a.drain(..a.len() - cap);
    }
}

/// One ingested event: `{"visitor_id", "type", "at"?, …fields}`.
#[derive(Clone, Debug)]
pub struct Event {
    /// Whose snapshot it goes to.
    pub visitor_id: String,
    /// The snapshot stream it appends to (`purchases`, `views`, `cart_adds`, or its own type).
    pub stream: String,
    /// The stored record: `at` (RFC 3339, UTC) first, then the caller's fields.
    pub record: Map<String, Value>,
}

/// Standard event types and the snapshot stream they append to; any other type appends to a stream
/// of its own name.
pub const STANDARD_TYPES: [(&str, &str); 3] = [
    ("purchase", "purchases"),
    ("view", "views"),
    ("add_to_cart", "cart_adds"),
];

fn valid_name(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(b'a'..=b'z'))
        && s.len() <= 64
        && b.all(|c| matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'_'))
}

/// Parse one event; `now_ms` stamps events without `at`. Errors name the event's index.
pub fn parse_event(i: usize, v: Value, now_ms: i64) -> Result<Event, ErrorResponse> {
    let bad = |msg: String| ErrorResponse::new("invalid_event", format!("event {i}: {msg}"));
    let Value::Object(mut m) = v else {
        return Err(bad("an event is a JSON object".into()));
    };
    let visitor_id = match m.remove("visitor_id") {
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 256 => s,
        _ => {
            return Err(bad(
                "`visitor_id` must be a non-empty string (at most 256 bytes)".into(),
            ))
        }
    };
    let ty = match m.remove("type") {
        Some(Value::String(s)) => s,
        _ => return Err(bad("`type` must be a string such as \"purchase\"".into())),
    };
    let stream = STANDARD_TYPES
        .iter()
        .find(|(t, _)| *t == ty)
        .map(|(_, s)| (*s).to_string())
        .unwrap_or(ty);
    if !valid_name(&stream) {
        return Err(bad(format!(
            "`type` `{stream}` must be lowercase letters, digits and `_`, starting with a letter"
        )));
    }
    let at = match m.remove("at") {
        None => now_ms,
        Some(Value::String(s)) => crate::time::parse_timestamp(&s)
            .ok_or_else(|| bad(format!("`at` `{s}` is not an RFC 3339 timestamp")))?,
        Some(_) => return Err(bad("`at` must be an RFC 3339 string".into())),
    };
    let at = jiff::Timestamp::from_millisecond(at)
        .map_err(|_| bad("`at` is out of range".into()))?
        .to_string();
    let mut record = Map::with_capacity(m.len() + 1);
    record.insert("at".into(), Value::String(at));
    record.extend(m);
    Ok(Event {
        visitor_id,
        stream,
        record,
    })
}

/// Fold `events` (all for one visitor) into its snapshot.
pub fn apply_events(
    id: &str,
    current: Option<&[u8]>,
    events: &[&Event],
    limits: ProfileLimits,
) -> Result<Vec<u8>, ErrorResponse> {
    let mut m = match current.map(serde_json::from_slice::<Value>) {
        Some(Ok(Value::Object(m))) => m,
        Some(_) => {
            return Err(internal(
                "a stored snapshot is not a JSON object".to_string(),
            ))
        }
        None => {
            let mut m = Map::new();
            m.insert("visitor_id".into(), Value::String(id.into()));
            m
        }
    };
    let streams = m
        .entry("events")
        .or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(streams) = streams else {
        return Err(internal("stored `events` is not an object".to_string()));
    };
    let mut touched: Vec<&str> = Vec::new();
    for e in events {
        let s = streams
            .entry(e.stream.clone())
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(a) = s {
            a.push(Value::Object(e.record.clone()));
        }
        if !touched.contains(&e.stream.as_str()) {
            touched.push(&e.stream);
        }
    }
    for t in touched {
        if let Some(Value::Array(a)) = streams.get_mut(t) {
            sort_and_cap(a, limits.max_events_per_stream);
        }
    }
    finish(m, limits)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    const LIMITS: ProfileLimits = ProfileLimits {
        max_bytes: 4096,
        max_events_per_stream: 3,
    };

    #[test]
    fn snapshot_is_pinned_to_its_url_id() {
        let s = normalize_snapshot("a", br#"{"traits":{"tier":"gold"}}"#, LIMITS).unwrap();
        let v: Value = serde_json::from_slice(&s).unwrap();
        assert_eq!(v["visitor_id"], "a");
        let e = normalize_snapshot("a", br#"{"visitor_id":"b"}"#, LIMITS).unwrap_err();
        assert_eq!(e.http_status(), 400);
        assert!(normalize_snapshot("a", br#"{"traits":[]}"#, LIMITS).is_err());
        assert!(normalize_snapshot("a", br#"{"trait":{}}"#, LIMITS).is_err());
        assert!(normalize_snapshot("a", br#"[1]"#, LIMITS).is_err());
        let big = format!(r#"{{"traits":{{"x":"{}"}}}}"#, "y".repeat(5000));
        assert_eq!(
            normalize_snapshot("a", big.as_bytes(), LIMITS)
                .unwrap_err()
                .http_status(),
            413
        );
    }

    #[test]
    fn events_append_sorted_and_capped() {
        let evs: Vec<Event> = (0..5)
            .map(|d| {
                parse_event(
                    d,
                    serde_json::json!({"visitor_id":"a","type":"purchase","at":format!("2026-01-0{}T00:00:00Z", 9 - d),"price":d}),
                    0,
                )
                .unwrap()
            })
            .collect();
        let refs: Vec<&Event> = evs.iter().collect();
        let s = apply_events("a", None, &refs, LIMITS).unwrap();
        let v: Value = serde_json::from_slice(&s).unwrap();
        let p = v["events"]["purchases"].as_array().unwrap();
        // The three newest (Jan 7, 8, 9), oldest first.
        let days: Vec<&str> = p.iter().map(|e| e["at"].as_str().unwrap()).collect();
        assert_eq!(
            days,
            [
                "2026-01-07T00:00:00Z",
                "2026-01-08T00:00:00Z",
                "2026-01-09T00:00:00Z"
            ]
        );
        assert_eq!(v["visitor_id"], "a");
    }

    #[test]
    fn event_validation() {
        let p = |v: Value| parse_event(0, v, 0);
        assert!(p(serde_json::json!({"type":"purchase"})).is_err());
        assert!(p(serde_json::json!({"visitor_id":"a","type":"Bad Type"})).is_err());
        assert!(p(serde_json::json!({"visitor_id":"a","type":"view","at":"yesterday"})).is_err());
        let e = p(serde_json::json!({"visitor_id":"a","type":"add_to_cart","sku":"x"})).unwrap();
        assert_eq!(e.stream, "cart_adds");
        assert_eq!(e.record["at"], "1970-01-01T00:00:00Z");
        let e = p(serde_json::json!({"visitor_id":"a","type":"wishlist"})).unwrap();
        assert_eq!(e.stream, "wishlist");
    }
}
