//! `tailor-wasm`: the core engine for browsers and Node, through wasm-bindgen.
//!
//! A thin adapter. The boundary is designed to be crossed cheaply:
//! - a bundle is compiled once (`Engine.fromBundle`), never per call;
//! - a profile snapshot is decoded once into a [`Profile`] handle that stays on the wasm side, so a page that
//!   keeps its visitor's snapshot in `localStorage` decodes it once, not on every decision;
//! - a decision crosses as one JSON string each way (V8's `JSON.stringify`/`JSON.parse` of a few hundred
//!   bytes costs less than walking a JS object field by field through the boundary); the JS wrapper in
//!   `js/tailor.mjs` turns it into plain objects.
//!
//! Errors are thrown as JSON text of the core's `ErrorResponse`; the wrapper rethrows them as
//! `TailorError` with `code`, `message` and `errors`.

use wasm_bindgen::prelude::*;

fn error(e: &tailor::wire::ErrorResponse) -> JsValue {
    JsValue::from_str(&serde_json::to_string(e).unwrap_or_else(|_| e.to_string()))
}

fn parse_request(request: &str) -> Result<tailor::wire::DecideRequest, JsValue> {
    tailor::wire::DecideRequest::from_json(request.as_bytes()).map_err(|e| error(&e))
}

/// A compiled bundle.
#[wasm_bindgen]
pub struct Engine {
    inner: tailor::Engine,
}

/// A profile snapshot decoded for one engine.
#[wasm_bindgen]
pub struct Profile {
    inner: tailor::context::Profile,
}

#[wasm_bindgen]
impl Engine {
    /// Compile a built bundle artifact (the JSON written by `tailor build`), given as UTF-8 bytes.
    #[wasm_bindgen(js_name = fromBytes)]
    pub fn from_bytes(artifact: &[u8]) -> Result<Engine, JsValue> {
        tailor::Engine::from_artifact(artifact)
            .map(|inner| Engine { inner })
            .map_err(|e| error(&e))
    }

    /// `{id, version, hash}` of the bundle, as JSON.
    #[wasm_bindgen(js_name = bundleJson)]
    pub fn bundle_json(&self) -> String {
        serde_json::to_string(self.inner.bundle()).unwrap_or_default()
    }

    /// Placement ids in bundle order, as a JSON array.
    #[wasm_bindgen(js_name = placementsJson)]
    pub fn placements_json(&self) -> String {
        let ids: Vec<&str> = self.inner.placement_ids().collect();
        serde_json::to_string(&ids).unwrap_or_default()
    }

    /// Decode a profile snapshot (JSON text) for this engine.
    #[wasm_bindgen(js_name = decodeProfile)]
    pub fn decode_profile(&self, snapshot: &str) -> Result<Profile, JsValue> {
        self.inner
            .decode_profile(snapshot.as_bytes())
            .map(|inner| Profile { inner })
            .map_err(|e| error(&e))
    }

    /// Decide without a profile: the request as JSON text, `now` in Unix milliseconds. Returns the
    /// response as JSON text.
    #[wasm_bindgen(js_name = decideJson)]
    pub fn decide_json(&self, request: &str, now_ms: f64) -> Result<String, JsValue> {
        self.run(request, None, now_ms)
    }

    /// Allocation preview: decide for `visitors` synthetic visitor ids with the request's context (and
    /// the profile, if any) and return the share of each placement/experience/variant outcome as JSON.
    #[wasm_bindgen(js_name = simulateJson)]
    pub fn simulate_json(
        &self,
        request: &str,
        profile: Option<Profile>,
        visitors: u32,
        now_ms: f64,
    ) -> Result<String, JsValue> {
        let req = parse_request(request)?;
        #[allow(clippy::cast_possible_truncation)]
        let now = now_ms as i64;
        let sim = self.inner.simulate(
            &req,
            profile.as_ref().map(|p| &p.inner),
            now,
            visitors.min(100_000),
        );
        serde_json::to_string(&sim).map_err(|e| JsValue::from_str(&e.to_string()))
    }

    /// Decide with a decoded profile (borrowed: one handle serves many decisions).
    #[wasm_bindgen(js_name = decideWith)]
    pub fn decide_with(
        &self,
        request: &str,
        profile: &Profile,
        now_ms: f64,
    ) -> Result<String, JsValue> {
        self.run(request, Some(&profile.inner), now_ms)
    }
}

impl Engine {
    fn run(
        &self,
        request: &str,
        profile: Option<&tailor::context::Profile>,
        now_ms: f64,
    ) -> Result<String, JsValue> {
        let req = parse_request(request)?;
        self.inner.validate(&req).map_err(|e| error(&e))?;
        if !now_ms.is_finite() {
            return Err(error(&tailor::wire::ErrorResponse::new(
                "invalid_request",
                "`now` must be a finite number of milliseconds",
            )));
        }
        // Milliseconds since 1970 fit an f64 exactly far beyond any real date.
        #[allow(clippy::cast_possible_truncation)]
        let now = now_ms as i64;
        let resp = self.inner.decide(&req, profile, now);
        resp.to_json()
            // JSON text is UTF-8: the conversion takes the buffer without copying.
            .map(|b| {
                String::from_utf8(b)
                    .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
            })
            .map_err(|e| {
                error(&tailor::wire::ErrorResponse::new(
                    "internal",
                    format!("serializing the response: {e}"),
                ))
            })
    }
}

/// Detect the device from a User-Agent and Client Hints headers (a JSON object of header name → value);
/// returns the wire `device` object as JSON. The rules compile on first use and stay for the page's life.
#[wasm_bindgen(js_name = detectDeviceJson)]
pub fn detect_device_json(user_agent: &str, headers_json: &str) -> Result<String, JsValue> {
    use std::sync::OnceLock;
    static PARSER: OnceLock<Result<tailor::device::UaParser, String>> = OnceLock::new();
    let parser = PARSER
        .get_or_init(|| tailor::device::UaParser::builtin().map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| JsValue::from_str(e))?;
    let headers: std::collections::BTreeMap<tailor::wire::Text, tailor::wire::Text> =
        if headers_json.is_empty() {
            Default::default()
        } else {
            serde_json::from_str(headers_json).map_err(|e| {
                JsValue::from_str(&format!("headers must be a JSON object of strings: {e}"))
            })?
        };
    let d = tailor::device::detect(parser, user_agent, &headers).to_wire();
    serde_json::to_string(&d).map_err(|e| JsValue::from_str(&e.to_string()))
}

/// A MaxMind DB (GeoIP2/GeoLite2 City or Country, DB-IP layouts) read from bytes.
#[wasm_bindgen]
pub struct GeoDb {
    inner: tailor::geoip::GeoDb,
}

#[wasm_bindgen]
impl GeoDb {
    /// Open a database from its bytes (copied into wasm memory once).
    #[wasm_bindgen(js_name = fromBytes)]
    pub fn from_bytes(bytes: Vec<u8>) -> Result<GeoDb, JsValue> {
        tailor::geoip::GeoDb::from_bytes(bytes)
            .map(|inner| GeoDb { inner })
            .map_err(|e| JsValue::from_str(&e.to_string()))
    }

    /// The wire `geo` object for an IP address as JSON, `null` when the database has no record.
    #[wasm_bindgen(js_name = lookupJson)]
    pub fn lookup_json(&self, ip: &str) -> Result<String, JsValue> {
        match self.inner.lookup_str(ip) {
            Ok(g) => serde_json::to_string(&g).map_err(|e| JsValue::from_str(&e.to_string())),
            Err(e) => Err(JsValue::from_str(&e.to_string())),
        }
    }
}
