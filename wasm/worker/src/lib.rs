//! tailor on Cloudflare Workers: the native server's `/v1` API on the same core.
//!
//! A thin adapter, like `tailor serve`: it reads the request, `request.cf`, the host clock, Workers KV and
//! a Durable Object, calls [`tailor::Engine`], and maps answers to HTTP with the core's wire types, so a
//! decision is byte-for-byte the one the native server gives for the same input (the conformance test in
//! `wasm/worker/test` holds them to it).
//!
//! Storage and consistency (also in the README):
//! - **Bundles** live in KV namespace `TAILOR_BUNDLES`: each deployed artifact under its own key
//!   `bundles/<hash>`, and one `active` pointer naming the current deployment and its history. A deploy
//!   writes the artifact first and the pointer last, so readers see the old or the new bundle, never a
//!   mix; rollback rewrites only the pointer. Each isolate compiles a bundle once per hash and re-reads
//!   the pointer every `TAILOR_BUNDLE_REFRESH_MS`; when KV cannot be read or holds something unusable,
//!   the last good compiled bundle keeps serving and `/healthz` says so.
//! - **Profiles**: each visitor's Durable Object (`TAILOR_VISITORS`, [`visitor::VisitorObject`]) is the
//!   source of truth and serializes every read-modify-write (snapshot upserts, events, frequency-cap
//!   counts, erasure); after each committed write it copies the result to KV namespace
//!   `TAILOR_PROFILES`, which decide reads through a small per-isolate LRU. KV is eventually consistent
//!   (Cloudflare documents up to 60 s for other locations): a write is visible at once to decide in the
//!   isolate that made it and to `GET /v1/profiles/{id}` everywhere, and to decide elsewhere after KV
//!   propagation plus the LRU's TTL. When the profile read fails or takes longer than
//!   `TAILOR_PROFILE_TIMEOUT_MS`, decide answers with context-only rules and says so in `notes`.

mod bundles;
mod lru;
mod profiles;
pub mod visitor;

use serde::Serialize;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use tailor::wire::{DecideRequest, Device, ErrorResponse, Geo, Reason};
use worker::{event, Context, Env, Method, Request, Response};

/// An error answer: the core's [`ErrorResponse`] and its HTTP status.
pub(crate) struct Fail {
    status: u16,
    body: ErrorResponse,
}

impl Fail {
    pub(crate) fn new(status: u16, code: &str, message: impl Into<String>) -> Fail {
        Fail {
            status,
            body: ErrorResponse::new(code, message),
        }
    }

    pub(crate) fn internal(message: impl Into<String>) -> Fail {
        Fail::new(500, "internal", message)
    }

    fn respond(&self) -> Response {
        json(self.status, &self.body)
    }
}

impl From<ErrorResponse> for Fail {
    fn from(body: ErrorResponse) -> Fail {
        Fail {
            status: body.http_status(),
            body,
        }
    }
}

impl From<worker::Error> for Fail {
    fn from(e: worker::Error) -> Fail {
        Fail::internal(format!("worker runtime: {e}"))
    }
}

impl From<worker::KvError> for Fail {
    fn from(e: worker::KvError) -> Fail {
        Fail::new(503, "unavailable", format!("workers KV: {e}"))
    }
}

type Answer = Result<Response, Fail>;

/// A JSON response. Serialization of the core's types cannot fail; if it ever did, the answer is a
/// bare 500 rather than a panic (a panic kills the isolate).
pub(crate) fn json<T: Serialize + ?Sized>(status: u16, v: &T) -> Response {
    json_bytes(status, serde_json::to_vec(v).unwrap_or_default())
}

pub(crate) fn json_bytes(status: u16, body: Vec<u8>) -> Response {
    let r = match Response::from_bytes(body) {
        Ok(r) => r.with_status(status),
        Err(_) => return Response::empty().unwrap_or_else(|_| fallback()),
    };
    let _ = r.headers().set("content-type", "application/json");
    r
}

fn fallback() -> Response {
    Response::builder().with_status(500).fixed(Vec::new())
}

/// Settings from Worker vars and secrets, read once per isolate (changing a var redeploys the Worker).
pub(crate) struct Config {
    admin_token: Option<String>,
    trusted_keys: Vec<tailor::signing::PublicKey>,
    pub(crate) bundle_refresh_ms: f64,
    pub(crate) profile_timeout_ms: u64,
    pub(crate) profile_cache_entries: usize,
    pub(crate) profile_cache_bytes: usize,
    pub(crate) profile_cache_ttl_ms: f64,
    max_body_bytes: usize,
    max_bundle_bytes: usize,
    max_events_per_batch: usize,
    pub(crate) limits: tailor::snapshot::ProfileLimits,
    /// A bad `TAILOR_TRUSTED_KEYS`: every bundle route refuses to run rather than run unverified.
    key_error: Option<String>,
    /// `TAILOR_BENCH_ROUTES=1`: enable `POST /bench/decide` (admin token) for BENCHMARKS.md.
    bench_routes: bool,
    /// `TAILOR_CORS_ORIGINS`: origins allowed to call from a browser (comma-separated; `*` for any).
    cors_origins: Vec<String>,
}

fn var(env: &Env, name: &str) -> Option<String> {
    env.secret(name)
        .map(|s| s.to_string())
        .or_else(|_| env.var(name).map(|v| v.to_string()))
        .ok()
        .filter(|s| !s.is_empty())
}

fn num<T: std::str::FromStr>(env: &Env, name: &str, default: T) -> T {
    var(env, name)
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(default)
}

impl Config {
    pub(crate) fn from_env(env: &Env) -> Config {
        let mut key_error = None;
        let trusted_keys = var(env, "TAILOR_TRUSTED_KEYS")
            .map(|s| {
                s.split([',', ' ', '\n'])
                    .filter(|k| !k.is_empty())
                    .filter_map(|k| match tailor::signing::PublicKey::from_text(k) {
                        Ok(k) => Some(k),
                        Err(e) => {
                            key_error = Some(format!("TAILOR_TRUSTED_KEYS: {e}"));
                            None
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        Config {
            admin_token: var(env, "TAILOR_ADMIN_TOKEN"),
            trusted_keys,
            bundle_refresh_ms: num(env, "TAILOR_BUNDLE_REFRESH_MS", 10_000.0),
            profile_timeout_ms: num(env, "TAILOR_PROFILE_TIMEOUT_MS", 100),
            profile_cache_entries: num(env, "TAILOR_PROFILE_CACHE_ENTRIES", 2_000),
            profile_cache_bytes: num(env, "TAILOR_PROFILE_CACHE_BYTES", 16 << 20),
            profile_cache_ttl_ms: num(env, "TAILOR_PROFILE_CACHE_TTL_MS", 10_000.0),
            max_body_bytes: num(env, "TAILOR_MAX_BODY_BYTES", 1 << 20),
            max_bundle_bytes: num(env, "TAILOR_MAX_BUNDLE_BYTES", 16 << 20),
            max_events_per_batch: num(env, "TAILOR_MAX_EVENTS_PER_BATCH", 1_000),
            limits: tailor::snapshot::ProfileLimits {
                max_bytes: num(env, "TAILOR_MAX_PROFILE_BYTES", 64 << 10),
                max_events_per_stream: num(env, "TAILOR_MAX_EVENTS_PER_STREAM", 200),
            },
            key_error,
            bench_routes: var(env, "TAILOR_BENCH_ROUTES").as_deref() == Some("1"),
            cors_origins: var(env, "TAILOR_CORS_ORIGINS")
                .map(|s| {
                    s.split(',')
                        .map(|o| o.trim().to_string())
                        .filter(|o| !o.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

/// What one isolate keeps between requests. Workers run one request at a time per isolate thread, and
/// no borrow of this is held across an `.await`.
#[derive(Default)]
pub(crate) struct Isolate {
    pub(crate) config: Option<Rc<Config>>,
    pub(crate) bundles: bundles::Cache,
    pub(crate) profiles: Option<lru::Lru<Rc<profiles::Cached>>>,
    ua: Option<Rc<tailor::device::UaParser>>,
    ua_cache: Option<lru::Lru<Rc<Device>>>,
}

thread_local! {
    pub(crate) static ISOLATE: RefCell<Isolate> = RefCell::new(Isolate::default());
}

pub(crate) fn config(env: &Env) -> Rc<Config> {
    ISOLATE.with(|i| {
        let mut i = i.borrow_mut();
        i.config
            .get_or_insert_with(|| Rc::new(Config::from_env(env)))
            .clone()
    })
}

pub(crate) fn now_ms() -> f64 {
    js_sys::Date::now()
}

pub(crate) fn rfc3339(ms: f64) -> String {
    // Milliseconds since the epoch fit i64 for any date a host clock reports.
    #[allow(clippy::cast_possible_truncation)]
    let ms = ms as i64;
    tailor::time::format_timestamp(ms)
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> worker::Result<Response> {
    let cfg = config(&env);
    // CORS as on the native server: allowed origins get the headers (and preflights a 204); others get
    // neither, and the browser refuses the answer.
    let origin = req
        .headers()
        .get("origin")
        .ok()
        .flatten()
        .filter(|o| cfg.cors_origins.iter().any(|a| a == "*" || a == o));
    if req.method() == Method::Options {
        let r = Response::builder().with_status(204).fixed(Vec::new());
        if let Some(o) = &origin {
            let h = r.headers();
            let _ = h.set("access-control-allow-methods", "GET,POST,PUT,DELETE");
            let _ = h.set(
                "access-control-allow-headers",
                "content-type,authorization,x-request-id",
            );
            let _ = h.set("access-control-max-age", "600");
            allow_origin(&r, o, &cfg);
        }
        return Ok(r);
    }
    let r = match route(req, &env, &ctx).await {
        Ok(r) => r,
        Err(f) => f.respond(),
    };
    if let Some(o) = &origin {
        allow_origin(&r, o, &cfg);
    }
    Ok(r)
}

fn allow_origin(r: &Response, origin: &str, cfg: &Config) {
    let h = r.headers();
    if cfg.cors_origins.iter().any(|a| a == "*") {
        let _ = h.set("access-control-allow-origin", "*");
    } else {
        let _ = h.set("access-control-allow-origin", origin);
        let _ = h.set("vary", "origin");
    }
}

async fn route(req: Request, env: &Env, ctx: &Context) -> Answer {
    let path = req.path();
    let method = req.method();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let cfg = config(env);
    match (method, segments.as_slice()) {
        (Method::Post, ["v1", "decide"]) => decide(req, env, ctx, &cfg).await,
        (Method::Get, ["healthz"]) => healthz(env, &cfg).await,
        (m, ["v1", "profiles", id]) => {
            authorize(&req, &cfg)?;
            let id = decode_id(id)?;
            match m {
                Method::Put => profiles::put(req, env, &cfg, &id).await,
                Method::Get => profiles::get(env, &id).await,
                Method::Delete => profiles::delete(env, &cfg, &id).await,
                _ => Err(not_allowed()),
            }
        }
        (m, ["v1", "events"]) => {
            authorize(&req, &cfg)?;
            match m {
                Method::Post => profiles::events(req, env, &cfg).await,
                _ => Err(not_allowed()),
            }
        }
        (m, ["v1", "bundle"]) => {
            authorize(&req, &cfg)?;
            match m {
                Method::Get => bundles::get(env, &cfg).await,
                Method::Put => {
                    let body = read_body(req, cfg.max_bundle_bytes).await?;
                    bundles::deploy(env, &cfg, body).await
                }
                _ => Err(not_allowed()),
            }
        }
        (m, ["v1", "bundle", "rollback"]) => {
            authorize(&req, &cfg)?;
            match m {
                Method::Post => bundles::rollback(env, &cfg).await,
                _ => Err(not_allowed()),
            }
        }
        (Method::Post, ["bench", "decide"]) if cfg.bench_routes => {
            authorize(&req, &cfg)?;
            bench_decide(req, env, &cfg).await
        }
        (_, ["v1", "decide"]) | (_, ["healthz"]) => Err(not_allowed()),
        _ => Err(Fail::new(
            404,
            "not_found",
            "no such route; see the README for the API",
        )),
    }
}

fn not_allowed() -> Fail {
    Fail::new(
        405,
        "method_not_allowed",
        "this route does not take that method",
    )
}

/// Visitor ids arrive percent-encoded in the path.
fn decode_id(raw: &str) -> Result<String, Fail> {
    let id = js_sys::decode_uri_component(raw)
        .ok()
        .and_then(|s| s.as_string())
        .ok_or_else(|| Fail::new(400, "invalid_request", "the visitor id is not valid UTF-8"))?;
    if id.is_empty() || id.len() > 256 {
        return Err(Fail::new(
            400,
            "invalid_request",
            "a visitor id is 1 to 256 bytes",
        ));
    }
    Ok(id)
}

/// Admin and ingestion routes: `Authorization: Bearer <TAILOR_ADMIN_TOKEN>` (constant-time compare in
/// the core). Without a configured token these routes are disabled.
fn authorize(req: &Request, cfg: &Config) -> Result<(), Fail> {
    let Some(token) = &cfg.admin_token else {
        return Err(Fail::new(
            403,
            "forbidden",
            "admin routes are disabled: set the TAILOR_ADMIN_TOKEN secret",
        ));
    };
    let h = req.headers().get("authorization").ok().flatten();
    match tailor::auth::check_bearer(h.as_deref(), token) {
        tailor::auth::Auth::Granted => Ok(()),
        tailor::auth::Auth::Missing => Err(Fail::new(
            401,
            "unauthorized",
            "this route needs `Authorization: Bearer <token>`",
        )),
        tailor::auth::Auth::Denied => {
            Err(Fail::new(403, "forbidden", "the bearer token is not valid"))
        }
    }
}

/// The body, refused with 413 past `limit` (by `Content-Length` before reading, and by what arrived).
pub(crate) async fn read_body(mut req: Request, limit: usize) -> Result<Vec<u8>, Fail> {
    let too_large = || {
        Fail::new(
            413,
            "too_large",
            format!("the request body is larger than this route accepts ({limit} bytes)"),
        )
    };
    let declared = req
        .headers()
        .get("content-length")
        .ok()
        .flatten()
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let body = req.bytes().await?;
    if body.len() > limit {
        return Err(too_large());
    }
    Ok(body)
}

/// `X-Tailor-Preview-At`: decide as of another time, admin token only (as on the native server).
fn preview_at(req: &Request, cfg: &Config) -> Result<Option<i64>, Fail> {
    let text = |name: &str| req.headers().get(name).ok().flatten();
    Ok(tailor::wire::preview_time(
        text(tailor::wire::PREVIEW_HEADER).as_deref(),
        text("authorization").as_deref(),
        cfg.admin_token.as_deref(),
    )?)
}

/// `request.cf` as `geo.*`. Read field by field from the JS object: Cloudflare omits what it does not
/// know, and a missing field must not fail the request (workers-rs' typed getters unwrap).
fn geo_from_cf(req: &Request) -> Option<Geo> {
    let cf = js_sys::Reflect::get(req.inner(), &"cf".into()).ok()?;
    if !cf.is_object() {
        return None;
    }
    let text = |k: &str| {
        js_sys::Reflect::get(&cf, &k.into())
            .ok()
            .and_then(|v| v.as_string())
            .filter(|s| !s.is_empty())
            .map(tailor::wire::Text::from)
    };
    let number = |k: &str| {
        js_sys::Reflect::get(&cf, &k.into()).ok().and_then(|v| {
            v.as_f64()
                .or_else(|| v.as_string().and_then(|s| s.trim().parse().ok()))
                .filter(|x: &f64| x.is_finite())
        })
    };
    let geo = Geo {
        country: text("country").filter(|c| c != "XX" && c != "T1"),
        region: text("regionCode"),
        city: text("city"),
        postal: text("postalCode"),
        latitude: number("latitude"),
        longitude: number("longitude"),
        time_zone: text("timezone"),
        continent: text("continent"),
        ..Geo::default()
    };
    (geo != Geo::default()).then_some(geo)
}

fn detect_device(headers: &BTreeMap<tailor::wire::Text, tailor::wire::Text>) -> Option<Device> {
    let (ua, key) = tailor::device::cache_key(headers)?;
    let now = now_ms();
    let (hit, parser) = ISOLATE.with(|i| {
        let mut i = i.borrow_mut();
        let hit = i
            .ua_cache
            .get_or_insert_with(|| lru::Lru::new(1_024, usize::MAX, f64::INFINITY))
            .get(&key, now);
        if hit.is_some() {
            return (hit, None);
        }
        // Built on first use: an isolate that only sees requests with a device pays nothing.
        if i.ua.is_none() {
            i.ua = tailor::device::UaParser::builtin().ok().map(Rc::new);
        }
        (None, i.ua.clone())
    });
    if let Some(d) = hit {
        return Some((*d).clone());
    }
    let d = tailor::device::detect(parser?.as_ref(), ua, headers).to_wire();
    ISOLATE.with(|i| {
        if let Some(c) = i.borrow_mut().ua_cache.as_mut() {
            c.put(&key, Rc::new(d.clone()), 0, now);
        }
    });
    Some(d)
}

async fn decide(req: Request, env: &Env, ctx: &Context, cfg: &Config) -> Answer {
    let preview = preview_at(&req, cfg)?;
    let mut http_headers = BTreeMap::new();
    for (k, v) in req.headers().entries() {
        if tailor::wire::forwarded_header(&k, false) {
            http_headers.insert(k, v);
        }
    }
    let cf_geo = geo_from_cf(&req);
    let ip = req.headers().get("cf-connecting-ip").ok().flatten();
    let body = read_body(req, cfg.max_body_bytes).await?;
    let mut dreq = DecideRequest::from_json(&body)?;
    let (dep, mut notes) = bundles::current(env, cfg).await?;
    let engine = &dep.engine;
    engine.validate(&dreq)?;
    if dreq.visitor_id.as_ref().is_some_and(|v| v.len() > 256) {
        return Err(Fail::new(
            400,
            "invalid_request",
            "`visitor_id` is longer than 256 bytes",
        ));
    }
    let c = &mut dreq.context;
    for (k, v) in http_headers {
        if tailor::wire::header(&c.headers, &k).is_none() {
            c.headers.insert(k.into(), v.into());
        }
    }
    if c.ip.is_none() {
        c.ip = ip.map(Into::into);
    }
    if c.device.is_none() {
        c.device = detect_device(&c.headers);
    }
    if c.geo.is_none() {
        c.geo = cf_geo;
    }
    let visitor = match &dreq.visitor_id {
        Some(id) => Some(profiles::for_decide(env, cfg, id, engine).await),
        None => None,
    };
    let (profile, counts) = match &visitor {
        Some(v) => {
            notes.extend(v.note.clone());
            (v.profile.clone(), v.counts())
        }
        None => (None, Vec::new()),
    };
    let now = preview.unwrap_or_else(|| {
        #[allow(clippy::cast_possible_truncation)]
        let ms = now_ms() as i64;
        ms
    });
    let mut resp = engine.decide_with_counts(&dreq, profile.as_deref(), now, &counts);
    for n in notes {
        resp.add_note(n);
    }
    // Frequency caps: count this serve now in the isolate, and durably in the visitor's object after
    // the response (a preview is a look, not a visit).
    if let (Some(id), Some(v), None) = (&dreq.visitor_id, &visitor, preview) {
        let capped: Vec<String> = resp
            .decisions
            .iter()
            .filter(|d| d.reason == Reason::Matched)
            .filter_map(|d| {
                d.experience
                    .as_deref()
                    .filter(|e| engine.has_frequency_cap(&d.placement, e))
                    .map(|e| e.to_string())
            })
            .collect();
        if !capped.is_empty() {
            v.count(&capped);
            let env2 = env.clone();
            let id = id.clone();
            ctx.wait_until(async move {
                if let Err(f) = profiles::count_durably(&env2, &id, &capped).await {
                    worker::console_error!("frequency-cap count not saved: {}", f.body.message);
                }
            });
        }
    }
    Ok(json_bytes(200, resp.to_json().unwrap_or_default()))
}

async fn healthz(env: &Env, cfg: &Config) -> Answer {
    let state = bundles::health(env, cfg).await;
    Ok(json(200, &state))
}

/// `POST /bench/decide?n=N&now=MS` (only with `TAILOR_BENCH_ROUTES=1` and the admin token): N times what
/// decide does per request once the bundle and profile are cached in the isolate (parse the body,
/// validate, decide, serialize). Workers freeze the clock during execution, so the caller measures:
/// (time for N) − (time for 0), divided by N, is the CPU time of one decide in workerd.
async fn bench_decide(req: Request, env: &Env, cfg: &Config) -> Answer {
    // The query by hand: `Request::url()` parses with the `url` crate, whose IDNA tables cost ~200 KB
    // of wasm (measured) for two integers.
    let href = req.inner().url();
    let query = |name: &str| {
        href.split_once('?').and_then(|(_, q)| {
            q.split('&')
                .filter_map(|kv| kv.split_once('='))
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        })
    };
    let n: u32 = query("n")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .min(1_000_000);
    let now: i64 = query("now").and_then(|v| v.parse().ok()).unwrap_or(0);
    let body = read_body(req, cfg.max_body_bytes).await?;
    let (dep, _) = bundles::current(env, cfg).await?;
    let engine = &dep.engine;
    let first = DecideRequest::from_json(&body)?;
    let visitor = match &first.visitor_id {
        Some(id) => Some(profiles::for_decide(env, cfg, id, engine).await),
        None => None,
    };
    let profile = visitor.as_ref().and_then(|v| v.profile.clone());
    let mut bytes = 0usize;
    for _ in 0..n {
        let r = DecideRequest::from_json(&body)?;
        engine.validate(&r)?;
        let resp = engine.decide(&r, profile.as_deref(), now);
        bytes += resp.to_json().map(|v| v.len()).unwrap_or(0);
    }
    Ok(json(200, &serde_json::json!({ "n": n, "bytes": bytes })))
}
