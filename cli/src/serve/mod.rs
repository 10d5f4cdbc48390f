//! `tailor serve`: the native personalization server.
//!
//! A thin adapter around the core: it reads the request, the clock, the store and the GeoIP database,
//! calls [`tailor::Engine::decide`], and maps answers to HTTP. Everything that decides is in the core;
//! everything here is I/O, limits, auth and bookkeeping.
//!
//! Threads: axum on a multi-threaded tokio runtime. The hot path (decide with a cached profile) never
//! blocks: the profile cache and the user-agent cache are in memory, exposure rows go through a bounded
//! channel to one writer thread that group-commits them. SQLite reads on a cache miss and every write
//! run on tokio's blocking pool.

pub mod metrics;
pub mod recent;
pub mod shard;
pub mod store;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, MatchedPath, Path as UrlPath, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use store::{Exposure, Store};
use tailor::signing::{PublicKey, Rejection};
use tailor::snapshot::{self as profile, ProfileLimits};
use tailor::wire::{DecideRequest, Device, ErrorResponse, Reason};
use tailor::Engine;

/// Server configuration (from flags and environment).
pub struct Config {
    pub listen: String,
    pub data: PathBuf,
    pub bundle: Option<PathBuf>,
    pub geoip_db: Option<PathBuf>,
    pub trust_geo_headers: bool,
    pub admin_token: Option<String>,
    pub trusted_keys: Vec<PublicKey>,
    pub watch: Option<PathBuf>,
    pub cors_origins: Vec<String>,
    pub cache_bytes: u64,
    pub cache_ttl: Duration,
    pub max_body_bytes: usize,
    pub max_bundle_bytes: usize,
    pub max_events_per_batch: usize,
    pub limits: ProfileLimits,
    /// Serve the playground from this directory (the `wasm/browser` package, built).
    pub playground: Option<PathBuf>,
}

/// An error answer: a status and the core's [`ErrorResponse`] body.
#[derive(Debug)]
pub struct ApiError {
    pub status: u16,
    pub body: ErrorResponse,
}

impl ApiError {
    pub fn new(status: u16, code: &str, msg: impl Into<String>) -> ApiError {
        ApiError {
            status,
            body: ErrorResponse::new(code, msg),
        }
    }
    pub fn bad_request(code: &str, msg: impl Into<String>) -> ApiError {
        ApiError::new(400, code, msg)
    }
    pub fn too_large(msg: impl Into<String>) -> ApiError {
        ApiError::new(413, "too_large", msg)
    }
    pub fn internal(msg: impl Into<String>) -> ApiError {
        ApiError::new(500, "internal", msg)
    }
}

impl From<ErrorResponse> for ApiError {
    fn from(body: ErrorResponse) -> ApiError {
        ApiError {
            status: body.http_status(),
            body,
        }
    }
}

impl From<store::StoreError> for ApiError {
    fn from(e: store::StoreError) -> ApiError {
        ApiError::internal(e.0)
    }
}

impl From<BytesRejection> for ApiError {
    fn from(r: BytesRejection) -> ApiError {
        let status = r.status().as_u16();
        if status == 413 {
            ApiError::too_large("the request body is larger than this route accepts")
        } else {
            ApiError::new(status, "invalid_request", r.body_text())
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        json_response(status, &self.body)
    }
}

fn json_response<T: serde::Serialize>(status: StatusCode, v: &T) -> Response {
    match serde_json::to_vec(v) {
        Ok(body) => json_body(status, body),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

fn json_body(status: StatusCode, body: Vec<u8>) -> Response {
    // Built directly: the tuple form goes through `IntoResponseParts` and a header array (~500
    // instructions per decide, callgrind).
    let mut r = Response::new(axum::body::Body::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// The bundle being served.
pub struct Deployed {
    pub engine: Engine,
    /// The artifact as deployed (served to the playground).
    pub artifact: Arc<[u8]>,
    pub seq: i64,
    pub deployed_at_ms: i64,
    pub signed: bool,
}

/// Work for the background log writer.
pub enum LogItem {
    /// A first exposure, for the exposure log.
    Exposure(Exposure),
    /// One more serve of a frequency-capped experience, for the visitor's persisted counts.
    Capped { visitor: String, experience: String },
}

thread_local! {
    /// This thread's recent devices and locations ([`recent`]).
    static RECENT_DEVICES: std::cell::RefCell<recent::Recent<String, Device>> = Default::default();
    /// The device cache key of this thread's current request.
    static DEVICE_KEY: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
    static RECENT_GEO: std::cell::RefCell<recent::Recent<std::net::IpAddr, Option<tailor::wire::Geo>>> =
        Default::default();
}

/// A thread's handle on a deployed bundle ([`AppState::serving`]).
struct Serving(Arc<Deployed>);

thread_local! {
    /// This thread's handle: (state id, generation, handle).
    static SERVING: std::cell::RefCell<Option<(u64, u64, Arc<Serving>)>> = const { std::cell::RefCell::new(None) };
}

/// Distinguishes servers in one process (tests) in the per-thread tables ([`recent`]).
static NEXT_STATE_ID: AtomicU64 = AtomicU64::new(1);

/// Shared server state.
pub struct AppState {
    /// This state's id in the per-thread tables.
    id: u64,
    cfg: Config,
    store: Arc<Store>,
    bundle: RwLock<Option<Arc<Deployed>>>,
    /// Swaps so far ([`AppState::serving`]).
    generation: AtomicU64,
    /// Serializes deploy and rollback (store write + swap).
    deploy_lock: Mutex<()>,
    geo: Option<tailor::geoip::GeoDb>,
    ua: tailor::device::UaParser,
    /// Detected devices by User-Agent + Client Hints: real traffic repeats a few thousand strings.
    ua_cache: store::FastCache<String, Arc<Device>>,
    /// GeoIP answers by parsed client address (a cold lookup decodes the City record: ~9k instructions,
    /// callgrind; a hit ~0.5k). Keyed by `IpAddr`, not the text a client sent, so a key is 16 bytes
    /// whatever the body holds. The database does not change while the server runs, so entries never go
    /// stale; the bound keeps memory at a few MiB.
    geo_cache: store::FastCache<std::net::IpAddr, Option<Arc<tailor::wire::Geo>>>,
    /// To the log writer: first exposures and cap-count increments (`None` once shutting down).
    exposures: Mutex<Option<mpsc::SyncSender<LogItem>>>,
    exposures_dropped: AtomicU64,
    metrics: metrics::Metrics,
    request_ids: AtomicU64,
    /// Concurrent SQLite reads on the decide path (= the reader pool size).
    readers: tokio::sync::Semaphore,
}

/// Entries in the GeoIP answer cache (~300 bytes each).
const GEO_CACHE_ENTRIES: u64 = 16_384;

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

fn rejection_to_api(r: Rejection) -> ApiError {
    ApiError::from(ErrorResponse::from(r))
}

impl AppState {
    fn current(&self) -> Option<Arc<Deployed>> {
        match self.bundle.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    fn swap(&self, d: Arc<Deployed>) {
        let mut g = match self.bundle.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        *g = Some(d);
        // After the store: a thread that sees the new generation reads this bundle or a newer one.
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// The active bundle for a decision, through this thread's own handle: `current` takes a shared
    /// `RwLock` and clones a shared `Arc`, four atomic updates per request of cache lines that every
    /// core writes; this reads the generation (written only by a swap) and clones an `Arc` only this
    /// thread made. Never older than the last completed swap: the generation is read first, and a
    /// handle is reused only while it matches. A thread keeps its handle (and so the bundle it holds)
    /// until its next decision after a swap.
    fn serving(&self) -> Option<Arc<Serving>> {
        let generation = self.generation.load(Ordering::Acquire);
        let kept = SERVING.try_with(|s| {
            s.try_borrow().ok().and_then(|s| match &*s {
                Some((id, g, h)) if *id == self.id && *g == generation => Some(h.clone()),
                _ => None,
            })
        });
        if let Ok(Some(h)) = kept {
            return Some(h);
        }
        let h = Arc::new(Serving(self.current()?));
        let _ = SERVING.try_with(|s| {
            if let Ok(mut s) = s.try_borrow_mut() {
                *s = Some((self.id, generation, h.clone()));
            }
        });
        Some(h)
    }

    /// Validate, compile, record and swap in an artifact. The old bundle serves until the swap.
    pub fn deploy(&self, artifact: Vec<u8>) -> Result<Arc<Deployed>, ApiError> {
        let checked = tailor::signing::load_verified(&artifact, &self.cfg.trusted_keys)
            .map_err(rejection_to_api)?;
        let signed = !self.cfg.trusted_keys.is_empty();
        let hash = checked.hash.clone();
        let engine = Engine::new(checked);
        let _g = match self.deploy_lock.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let at = now_ms();
        let seq = self.store.deploy_bundle(&hash, &artifact, at)?;
        let d = Arc::new(Deployed {
            engine,
            artifact: Arc::from(artifact),
            seq,
            deployed_at_ms: at,
            signed,
        });
        self.swap(d.clone());
        let b = d.engine.bundle();
        tracing::info!(bundle = %b.id, version = %b.version, hash = %b.hash, seq, "bundle deployed");
        Ok(d)
    }

    /// Activate the deployment before the current one.
    pub fn rollback(&self) -> Result<Arc<Deployed>, ApiError> {
        let _g = match self.deploy_lock.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let Some(cur) = self.current() else {
            return Err(ApiError::new(
                409,
                "no_previous_bundle",
                "no bundle is deployed",
            ));
        };
        let Some(prev) = self.store.previous_bundle(cur.seq)? else {
            return Err(ApiError::new(
                409,
                "no_previous_bundle",
                "there is no earlier deployment to roll back to",
            ));
        };
        let checked = tailor::signing::load_verified(&prev.artifact, &self.cfg.trusted_keys)
            .map_err(rejection_to_api)?;
        let engine = Engine::new(checked);
        self.store.activate_bundle(prev.seq)?;
        let d = Arc::new(Deployed {
            engine,
            artifact: Arc::from(prev.artifact),
            seq: prev.seq,
            deployed_at_ms: prev.deployed_at_ms,
            signed: !self.cfg.trusted_keys.is_empty(),
        });
        self.swap(d.clone());
        let b = d.engine.bundle();
        tracing::info!(bundle = %b.id, version = %b.version, hash = %b.hash, seq = prev.seq, "rolled back");
        Ok(d)
    }

    /// The device of a request: from its User-Agent (the one in `headers`, or else `http_ua`, the HTTP
    /// header kept out of them) and its client hints.
    fn detect_device(
        &self,
        headers: &BTreeMap<tailor::wire::Text, tailor::wire::Text>,
        http_ua: Option<&str>,
    ) -> Option<Device> {
        let ua = header(headers, "user-agent").or(http_ua)?;
        // The key built in this thread's buffer: a hit allocates nothing.
        let recent = DEVICE_KEY.try_with(|b| {
            let mut b = b.try_borrow_mut().ok()?;
            b.clear();
            tailor::device::cache_key_for(ua, headers, &mut b);
            RECENT_DEVICES
                .try_with(|r| {
                    r.try_borrow()
                        .ok()
                        .and_then(|r| r.get(self.id, b.as_str()).cloned())
                })
                .ok()
                .flatten()
        });
        if let Ok(Some(d)) = recent {
            return Some(d);
        }
        let mut key = String::new();
        tailor::device::cache_key_for(ua, headers, &mut key);
        let d = match self.ua_cache.get(&key) {
            Some(d) => (*d).clone(),
            None => {
                let d = tailor::device::detect(&self.ua, ua, headers).to_wire();
                self.ua_cache.insert(key.clone(), Arc::new(d.clone()));
                d
            }
        };
        let _ = RECENT_DEVICES.try_with(|r| {
            if let Ok(mut r) = r.try_borrow_mut() {
                r.put(self.id, key, d.clone());
            }
        });
        Some(d)
    }

    /// The location of a client address. Unknown or malformed addresses give `None` (the decision still
    /// succeeds); answers for well-formed addresses are cached, known or not.
    fn geo_lookup(&self, ip: &str) -> Option<tailor::wire::Geo> {
        let db = self.geo.as_ref()?;
        let addr: std::net::IpAddr = ip.trim().parse().ok()?;
        let recent = RECENT_GEO.try_with(|r| {
            r.try_borrow()
                .ok()
                .and_then(|r| r.get(self.id, &addr).cloned())
        });
        if let Ok(Some(g)) = recent {
            return g;
        }
        let g = match self.geo_cache.get(&addr) {
            Some(g) => g.as_deref().cloned(),
            None => {
                let g = db.lookup(addr).ok().flatten();
                self.geo_cache
                    .insert(addr, g.as_ref().map(|g| Arc::new(g.clone())));
                g
            }
        };
        let _ = RECENT_GEO.try_with(|r| {
            if let Ok(mut r) = r.try_borrow_mut() {
                r.put(self.id, addr, g.clone());
            }
        });
        g
    }

    /// Queue the first sighting of (visitor, experience, variant, bundle) for the exposure log. The
    /// visitor's cache entry remembers what it queued ([`store::Cached::first_exposure`]: 64-bit hashes,
    /// a collision drops one row with odds ~1e-17 per pair), seeded from the log when the entry is
    /// created; a row still queued then, or a list starting again, may queue a repeat, which is
    /// harmless, as the report uses each visitor's first exposure.
    fn log_exposure(
        &self,
        snapshot: &store::Cached,
        visitor: &str,
        experience: &str,
        variant: &str,
        b: &tailor::wire::BundleRef,
        now: i64,
    ) {
        let key = self
            .store
            .exposure_key(visitor, experience, variant, &b.hash);
        if !snapshot.first_exposure(key) {
            return;
        }
        let e = Exposure {
            visitor: visitor.to_string(),
            experience: experience.to_string(),
            variant: variant.to_string(),
            bundle_version: b.version.to_string(),
            bundle_hash: b.hash.to_string(),
            at_ms: now,
        };
        self.send_log(LogItem::Exposure(e));
    }

    fn send_log(&self, item: LogItem) {
        let sent = match self.exposures.lock() {
            Ok(g) => g.as_ref().map(|tx| tx.try_send(item).is_ok()),
            Err(_) => None,
        };
        if sent != Some(true) {
            self.exposures_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

use tailor::wire::{forwarded_header, header};

type AppResult = Result<Response, ApiError>;

/// The request's headers (moved, not cloned as axum's `HeaderMap` extractor does) and its body, at most
/// `--max-body-bytes` (413 past it, whether the client sent a `Content-Length` or chunks). The body is
/// read frame by frame: loopback clients send a small body in one frame, which is kept as it arrived,
/// where `Bytes`'s extractor rebuilds the request and gathers frames in a list (~600 instructions and an
/// allocation per decide, callgrind).
struct HeadersAndBody(HeaderMap, Bytes);

impl axum::extract::FromRequest<Arc<AppState>> for HeadersAndBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, st: &Arc<AppState>) -> Result<Self, ApiError> {
        use http_body_util::BodyExt;
        let too_large =
            || ApiError::too_large("the request body is larger than this route accepts");
        let limit = st.cfg.max_body_bytes;
        let (parts, body) = req.into_parts();
        let declared = parts
            .headers
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return Err(too_large());
        }
        let headers = parts.headers;
        let mut body = http_body_util::Limited::new(body, limit);
        let mut first: Option<Bytes> = None;
        let mut more: Option<bytes::BytesMut> = None;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    too_large()
                } else {
                    ApiError::bad_request(
                        "invalid_request",
                        format!("cannot read the request body: {e}"),
                    )
                }
            })?;
            let Ok(data) = frame.into_data() else {
                continue; // trailers
            };
            match (&mut first, &mut more) {
                (None, _) => first = Some(data),
                (Some(f), None) => {
                    let mut m = bytes::BytesMut::with_capacity(f.len() + data.len());
                    m.extend_from_slice(f);
                    m.extend_from_slice(&data);
                    more = Some(m);
                }
                (Some(_), Some(m)) => m.extend_from_slice(&data),
            }
        }
        let body = match more {
            Some(m) => m.freeze(),
            None => first.unwrap_or_default(),
        };
        Ok(HeadersAndBody(headers, body))
    }
}

async fn decide(
    State(st): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    HeadersAndBody(http_headers, body): HeadersAndBody,
) -> AppResult {
    let preview = preview_at(&st, &http_headers)?;
    let mut req = DecideRequest::from_json(&body).map_err(|e| ApiError {
        status: 400,
        body: e,
    })?;
    let Some(serving) = st.serving() else {
        return Err(ApiError::new(
            503,
            "no_bundle",
            "no bundle is deployed; PUT /v1/bundle first",
        ));
    };
    let engine = &serving.0.engine;
    engine.validate(&req).map_err(|e| ApiError {
        status: 400,
        body: e,
    })?;
    if req.visitor_id.as_ref().is_some_and(|v| v.len() > 256) {
        return Err(ApiError::bad_request(
            "invalid_request",
            "`visitor_id` is longer than 256 bytes",
        ));
    }
    // The visitor's cache entry first, so its profile loads while the device and location are found.
    let early = req.visitor_id.as_ref().and_then(|id| st.store.cached(id));
    if let Some(s) = &early {
        s.prefetch();
    }
    let ctx = &mut req.context;
    // The HTTP User-Agent goes to device detection; into the context only when the rules can read it.
    // Copying it there cost ~0.28k instructions a decide (callgrind: a heap string, a map node and
    // their drops).
    let mut http_ua = None;
    let ua_to_rules = engine.reads_header("user-agent");
    for (name, value) in &http_headers {
        let n = name.as_str();
        if forwarded_header(n, st.cfg.trust_geo_headers) && header(&ctx.headers, n).is_none() {
            if let Ok(v) = value.to_str() {
                if name == axum::http::header::USER_AGENT && !ua_to_rules {
                    http_ua = Some(v);
                } else {
                    ctx.headers.insert(n.into(), v.into());
                }
            }
        }
    }
    if ctx.ip.is_none() {
        ctx.ip = Some(tailor::wire::Text::from(peer.ip().to_string()));
    }
    if ctx.device.is_none() {
        ctx.device = st.detect_device(&ctx.headers, http_ua);
    }
    if ctx.geo.is_none() && st.cfg.trust_geo_headers {
        ctx.geo = tailor::geoip::geo_from_headers(&ctx.headers);
    }
    if let (None, Some(ip)) = (&ctx.geo, &ctx.ip) {
        ctx.geo = st.geo_lookup(ip);
    }
    let snapshot = match &req.visitor_id {
        Some(id) => Some(match early {
            Some(s) => s,
            // Cap counts are read with the snapshot only when this bundle caps anything.
            None if engine.has_frequency_caps() => {
                store_read(&st, id, "profile read", |store, id| store.profile(id, true)).await?
            }
            None => {
                store_read(&st, id, "profile read", |store, id| {
                    store.profile(id, false)
                })
                .await?
            }
        }),
        None => None,
    };
    let mut notes = Vec::new();
    let profile = match snapshot.as_ref().map(|s| s.profile(engine)) {
        Some(Ok((p, fresh))) => {
            if let (true, Some(id), Some(s)) = (fresh, &req.visitor_id, &snapshot) {
                st.store.reweigh(id, s, engine.profile_layout_id());
            }
            p
        }
        Some(Err(e)) => {
            // A stored snapshot this bundle cannot read must not fail the visitor's page.
            notes.push(format!("the stored profile was ignored: {}", e.message));
            None
        }
        None => None,
    };
    // Frequency caps: the counts this server keeps for the visitor (incremented below, persisted by the
    // log writer), added to whatever the snapshot says.
    let counts = match (&req.visitor_id, &snapshot, engine.has_frequency_caps()) {
        (Some(id), Some(snap), true) => Some(match st.store.counts_cached(id, snap) {
            Some(c) => c,
            None => snap.set_counts(
                store_read(&st, id, "counts read", |store, id| store.counts(id)).await?,
            ),
        }),
        _ => None,
    };
    let now = preview.unwrap_or_else(now_ms);
    let mut resp = {
        let guard = counts.as_ref().map(|c| match c.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        });
        let list: &[(tailor::wire::Text, u32)] = guard.as_ref().map_or(&[], |g| &g[..]);
        engine.decide_with_counts(&req, profile.as_deref(), now, list)
    };
    for n in notes {
        resp.add_note(n);
    }
    st.metrics.decisions(resp.decisions.iter().map(|d| {
        (
            &*d.placement,
            d.experience.as_deref(),
            d.variant.as_deref(),
            match d.reason {
                Reason::Matched => 0,
                Reason::Default => 1,
                Reason::Holdout => 2,
                Reason::UnknownPlacement => metrics::UNKNOWN_PLACEMENT,
            },
        )
    }));
    // A preview is a look, not a visit: no exposure, no cap count.
    if let (Some(visitor), Some(snap)) = (
        req.visitor_id.as_ref().filter(|_| preview.is_none()),
        &snapshot,
    ) {
        let b = engine.bundle();
        for d in &resp.decisions {
            if let (Reason::Matched, Some(e), Some(v)) = (
                d.reason,
                d.experience.as_deref().map(|e| &**e),
                d.variant.as_deref().map(|v| &**v),
            ) {
                st.log_exposure(snap, visitor, e, v, b, now);
                if let Some(c) = counts
                    .as_ref()
                    .filter(|_| engine.has_frequency_cap(&d.placement, e))
                {
                    // Counted in memory now (the next decision sees it), persisted by the log writer.
                    if let Ok(mut g) = c.lock() {
                        match g.iter_mut().find(|(x, _)| **x == *e) {
                            Some((_, n)) => *n = n.saturating_add(1),
                            None => g.push((tailor::wire::Text::from(e), 1)),
                        }
                    }
                    st.send_log(LogItem::Capped {
                        // `String::from`, not `to_string`: the latter goes through the formatter.
                        visitor: String::from(visitor.as_str()),
                        experience: String::from(e),
                    });
                }
            }
        }
    }
    match resp.to_json() {
        Ok(body) => Ok(json_body(StatusCode::OK, body)),
        Err(_) => Ok(StatusCode::INTERNAL_SERVER_ERROR.into_response()),
    }
}

/// `X-Tailor-Preview-At: <RFC 3339>` decides as of another time (to preview a scheduled campaign, and
/// to run the conformance corpus through every runtime). Only with the admin token: a visitor must not
/// be able to see a campaign before it starts.
fn preview_at(st: &AppState, h: &HeaderMap) -> Result<Option<i64>, ApiError> {
    // A `HeaderName` made once: a lookup by `&str` parses and validates the name on every request
    // (~300 instructions).
    static PREVIEW: HeaderName = HeaderName::from_static(tailor::wire::PREVIEW_HEADER);
    fn text(v: &HeaderValue) -> &str {
        v.to_str().unwrap_or_default()
    }
    let Some(preview) = h.get(&PREVIEW).map(text) else {
        return Ok(None);
    };
    Ok(tailor::wire::preview_time(
        Some(preview),
        h.get(axum::http::header::AUTHORIZATION).map(text),
        st.cfg.admin_token.as_deref(),
    )?)
}

/// A SQLite read for the decide path on the blocking pool, under a reader permit: a burst of cache misses
/// queues here instead of opening a connection (and its page cache) and a blocking thread per request.
async fn store_read<T: Send + 'static>(
    st: &AppState,
    id: &str,
    what: &'static str,
    read: fn(&Store, &str) -> Result<T, store::StoreError>,
) -> Result<T, ApiError> {
    let _permit = st
        .readers
        .acquire()
        .await
        .map_err(|e| ApiError::internal(format!("{what}: {e}")))?;
    let (store, id) = (st.store.clone(), id.to_string());
    Ok(tokio::task::spawn_blocking(move || read(&store, &id))
        .await
        .map_err(|e| ApiError::internal(format!("{what}: {e}")))??)
}

fn check_id(id: &str) -> Result<(), ApiError> {
    if id.is_empty() || id.len() > 256 {
        return Err(ApiError::bad_request(
            "invalid_request",
            "a visitor id is 1 to 256 bytes",
        ));
    }
    Ok(())
}

async fn put_profile(
    State(st): State<Arc<AppState>>,
    UrlPath(id): UrlPath<String>,
    body: Result<Bytes, BytesRejection>,
) -> AppResult {
    check_id(&id)?;
    let body = body?;
    let snapshot = profile::normalize_snapshot(&id, &body, st.cfg.limits)?;
    if let Some(d) = st.current() {
        // Structure the active bundle cannot decode at all is refused now rather than ignored later.
        d.engine.decode_profile(&snapshot).map_err(|e| ApiError {
            status: 400,
            body: e,
        })?;
    }
    let store = st.store.clone();
    let id2 = id.clone();
    tokio::task::spawn_blocking(move || store.put_profile(&id2, snapshot, now_ms()))
        .await
        .map_err(|e| ApiError::internal(format!("profile write: {e}")))??;
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({ "visitor_id": id, "stored": true }),
    ))
}

async fn get_profile(State(st): State<Arc<AppState>>, UrlPath(id): UrlPath<String>) -> AppResult {
    check_id(&id)?;
    let store = st.store.clone();
    let id2 = id.clone();
    let s = tokio::task::spawn_blocking(move || store.profile_uncached(&id2))
        .await
        .map_err(|e| ApiError::internal(format!("profile read: {e}")))??;
    match s {
        Some(bytes) => Ok((
            StatusCode::OK,
            [(
                axum::http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            bytes.to_vec(),
        )
            .into_response()),
        None => Err(ApiError::new(
            404,
            "not_found",
            format!("no profile for visitor `{id}`"),
        )),
    }
}

async fn delete_profile(
    State(st): State<Arc<AppState>>,
    UrlPath(id): UrlPath<String>,
) -> AppResult {
    check_id(&id)?;
    let store = st.store.clone();
    let id2 = id.clone();
    let existed = tokio::task::spawn_blocking(move || store.delete_profile(&id2))
        .await
        .map_err(|e| ApiError::internal(format!("profile delete: {e}")))??;
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({ "visitor_id": id, "deleted": existed }),
    ))
}

async fn post_events(
    State(st): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> AppResult {
    let body = body?;
    let batch: tailor::wire::EventBatch = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(
            "invalid_request",
            format!("expected {{\"events\": [...]}}: {e}"),
        )
    })?;
    if batch.events.len() > st.cfg.max_events_per_batch {
        return Err(ApiError::too_large(format!(
            "{} events in one batch; the limit is {}",
            batch.events.len(),
            st.cfg.max_events_per_batch
        )));
    }
    let now = now_ms();
    let events = batch
        .events
        .into_iter()
        .enumerate()
        .map(|(i, v)| profile::parse_event(i, v, now))
        .collect::<Result<Vec<_>, _>>()?;
    let mut ids: Vec<String> = events.iter().map(|e| e.visitor_id.clone()).collect();
    ids.sort();
    ids.dedup();
    let n = events.len();
    let visitors = ids.len();
    let limits = st.cfg.limits;
    let store = st.store.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        store.update_profiles(&ids, now_ms(), |id, cur| {
            let mine: Vec<&profile::Event> = events.iter().filter(|e| e.visitor_id == id).collect();
            profile::apply_events(id, cur, &mine, limits)
        })
    })
    .await
    .map_err(|e| ApiError::internal(format!("event write: {e}")))??;
    outcome?;
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({ "accepted": n, "visitors": visitors }),
    ))
}

fn bundle_info(d: &Deployed) -> serde_json::Value {
    let b = d.engine.bundle();
    serde_json::json!({
        "id": b.id,
        "version": b.version,
        "hash": b.hash,
        "deployed_at": rfc3339(d.deployed_at_ms),
        "deployment": d.seq,
        "signature_verified": d.signed,
    })
}

async fn put_bundle(
    State(st): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> AppResult {
    let body = body?;
    let st2 = st.clone();
    let d = tokio::task::spawn_blocking(move || st2.deploy(body.to_vec()))
        .await
        .map_err(|e| ApiError::internal(format!("deploy: {e}")))??;
    Ok(json_response(StatusCode::OK, &bundle_info(&d)))
}

async fn get_bundle(State(st): State<Arc<AppState>>) -> AppResult {
    match st.current() {
        Some(d) => Ok(json_response(StatusCode::OK, &bundle_info(&d))),
        None => Err(ApiError::new(404, "no_bundle", "no bundle is deployed")),
    }
}

async fn rollback(State(st): State<Arc<AppState>>) -> AppResult {
    let st2 = st.clone();
    let d = tokio::task::spawn_blocking(move || st2.rollback())
        .await
        .map_err(|e| ApiError::internal(format!("rollback: {e}")))??;
    Ok(json_response(StatusCode::OK, &bundle_info(&d)))
}

async fn healthz(State(st): State<Arc<AppState>>) -> Response {
    let bundle = st.current().map(|d| bundle_info(&d));
    json_response(
        StatusCode::OK,
        &serde_json::json!({ "status": "ok", "bundle": bundle }),
    )
}

async fn metrics(State(st): State<Arc<AppState>>) -> Response {
    let (entries, bytes) = st.store.cache_usage();
    let (hits, misses) = st.store.lookups();
    let cur = st.current();
    let b = cur.as_ref().map(|d| d.engine.bundle());
    let text = st.metrics.render(&metrics::Snapshot {
        cache_hits: hits,
        cache_misses: misses,
        cache_entries: entries,
        cache_bytes: bytes,
        exposures_dropped: st.exposures_dropped.load(Ordering::Relaxed),
        bundle: b.map(|b| (&*b.id, &*b.version, &*b.hash)),
    });
    (
        StatusCode::OK,
        [(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        text,
    )
        .into_response()
}

/// A constant JSON answer: the load benchmark's baseline for HTTP cost alone.
async fn static_json() -> Response {
    (
        StatusCode::OK,
        [(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        r#"{"status":"ok"}"#,
    )
        .into_response()
}

/// The active artifact, for the playground (which decides in the browser with tailor-wasm).
async fn bundle_json(State(st): State<Arc<AppState>>) -> Response {
    match st.current() {
        Some(d) => (
            StatusCode::OK,
            [(
                axum::http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            d.artifact.to_vec(),
        )
            .into_response(),
        None => ApiError::new(404, "no_bundle", "no bundle is deployed").into_response(),
    }
}

async fn not_found() -> ApiError {
    ApiError::new(
        404,
        "not_found",
        "no such route; see the README for the API",
    )
}

/// Admin and ingestion routes: `Authorization: Bearer <token>`.
async fn require_token(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let Some(token) = &st.cfg.admin_token else {
        return ApiError::new(
            403,
            "forbidden",
            "admin routes are disabled: start the server with --admin-token or TAILOR_ADMIN_TOKEN",
        )
        .into_response();
    };
    let h = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match tailor::auth::check_bearer(h, token) {
        tailor::auth::Auth::Granted => next.run(req).await,
        tailor::auth::Auth::Missing => {
            let mut r = ApiError::new(
                401,
                "unauthorized",
                "this route needs `Authorization: Bearer <token>`",
            )
            .into_response();
            r.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer"),
            );
            r
        }
        tailor::auth::Auth::Denied => {
            ApiError::new(403, "forbidden", "the bearer token is not valid").into_response()
        }
    }
}

/// Request ids, access log, metrics. The log never includes headers or bodies (they carry tokens and
/// personal data).
async fn observe(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().clone();
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(|| format!("{:x}", st.request_ids.fetch_add(1, Ordering::Relaxed)));
    let mut resp = next.run(req).await;
    let secs = start.elapsed().as_secs_f64();
    let status = resp.status().as_u16();
    st.metrics.request(&route, status, secs);
    if status >= 500 {
        tracing::error!(request_id = %id, %method, %route, status, micros = (secs * 1e6) as u64, "request failed");
    } else {
        tracing::debug!(request_id = %id, %method, %route, status, micros = (secs * 1e6) as u64, "request");
    }
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

fn router(st: Arc<AppState>) -> Router {
    let body = DefaultBodyLimit::max(st.cfg.max_body_bytes);
    let admin = Router::new()
        .route(
            "/v1/profiles/{id}",
            put(put_profile).get(get_profile).delete(delete_profile),
        )
        .route("/v1/events", post(post_events))
        .route("/v1/bundle/rollback", post(rollback))
        .route("/v1/bundle", get(get_bundle))
        .layer(body)
        .merge(
            Router::new()
                .route("/v1/bundle", put(put_bundle))
                .layer(DefaultBodyLimit::max(st.cfg.max_bundle_bytes)),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            st.clone(),
            require_token,
        ));
    let public = Router::new()
        .route("/v1/decide", post(decide))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/static", get(static_json).post(static_json))
        .layer(body);
    let mut public = public;
    if let Some(dir) = &st.cfg.playground {
        use tower_http::services::ServeDir;
        // The page, the JS API and the wasm build, laid out as in wasm/browser so relative imports work
        // here and on any static host.
        public = public
            .route(
                "/",
                get(|| async { axum::response::Redirect::temporary("/playground/") }),
            )
            .route("/bundle.json", get(bundle_json))
            .nest_service("/playground", ServeDir::new(dir.join("playground")))
            .nest_service("/js", ServeDir::new(dir.join("js")))
            .nest_service("/pkg", ServeDir::new(dir.join("pkg")));
    }
    let mut app = public
        .merge(admin)
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(st.clone(), observe));
    if !st.cfg.cors_origins.is_empty() {
        use tower_http::cors::{AllowOrigin, CorsLayer};
        let origins = if st.cfg.cors_origins.iter().any(|o| o == "*") {
            AllowOrigin::any()
        } else {
            AllowOrigin::list(
                st.cfg
                    .cors_origins
                    .iter()
                    .filter_map(|o| HeaderValue::from_str(o).ok()),
            )
        };
        app = app.layer(
            CorsLayer::new()
                .allow_origin(origins)
                .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
                .allow_headers([
                    axum::http::header::CONTENT_TYPE,
                    axum::http::header::AUTHORIZATION,
                    axum::http::HeaderName::from_static("x-request-id"),
                ])
                .max_age(Duration::from_secs(600)),
        );
    }
    app.with_state(st)
}

/// Log writer: blocks for the first item, then drains what else is queued (up to 4,096 items) and
/// commits exposure rows and frequency-cap count increments, one transaction each per batch (one fsync per
/// batch instead of per decision).
/// How long the log writer collects items before committing them.
const LOG_LINGER: Duration = Duration::from_millis(20);
/// How often the log writer commits exposure rows and frequency-cap counts (see [`log_writer`]).
const LOG_COMMIT_EVERY: Duration = Duration::from_secs(1);

fn log_writer(store: Arc<Store>, rx: mpsc::Receiver<LogItem>) {
    let mut conn = match store.connection() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("exposure log disabled: {e}");
            return;
        }
    };
    let mut batch = Vec::with_capacity(4096);
    let mut counts: BTreeMap<(String, String), u32> = BTreeMap::new();
    let mut last_commit = Instant::now();
    let commit = |conn: &mut _, batch: &mut Vec<_>, counts: &mut BTreeMap<_, _>| {
        if !batch.is_empty() {
            if let Err(e) = store.append_exposures(conn, batch) {
                tracing::error!(rows = batch.len(), "exposure log write failed: {e}");
            }
            batch.clear();
        }
        if !counts.is_empty() {
            if let Err(e) = store.add_counts(conn, counts) {
                tracing::error!(rows = counts.len(), "frequency-cap counts not stored: {e}");
            }
            counts.clear();
        }
    };
    loop {
        let first = match rx.recv_timeout(LOG_COMMIT_EVERY) {
            Ok(item) => Some(item),
            Err(mpsc::RecvTimeoutError::Timeout) => None,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        if first.is_some() {
            // Linger before draining: senders enqueue without waking this thread while it sleeps, so
            // under load it wakes ~50 times a second instead of being woken (a context switch on both
            // sides) for every decision. Measured with perf under the load benchmark: without the
            // linger, scheduler and wake-up paths took ~15 % of the server's CPU.
            std::thread::sleep(LOG_LINGER);
        }
        let mut next = first;
        while let Some(item) = next.take() {
            match item {
                LogItem::Exposure(e) => batch.push(e),
                LogItem::Capped {
                    visitor,
                    experience,
                } => {
                    *counts.entry((visitor, experience)).or_default() += 1;
                }
            }
            next = rx.try_recv().ok();
        }
        // Commit at most once per `LOG_COMMIT_EVERY` (or when a batch grows large): counts of one
        // visitor add up in memory, and each commit writes each touched page once. Measured under the
        // load benchmark: committing every 20 ms window cost 0.35 `pwrite` calls per decision (and
        // the decide route twice the static route's system time). Exposure rows and cap counts are a
        // log, not acknowledged writes (decisions read the in-memory counts at once); a crash loses at
        // most this window, and a graceful stop drains and commits everything.
        if last_commit.elapsed() >= LOG_COMMIT_EVERY
            || batch.len() >= 50_000
            || counts.len() >= 50_000
        {
            commit(&mut conn, &mut batch, &mut counts);
            last_commit = Instant::now();
        }
    }
    commit(&mut conn, &mut batch, &mut counts);
}

/// Read a bundle path (directory of TOML or built artifact) into artifact bytes; diagnostics go to stderr.
pub fn artifact_from_path(path: &Path) -> Result<Vec<u8>, String> {
    if path.is_dir() {
        let files = crate::read_dir_sources(path).map_err(|f| f.1)?;
        match tailor::bundle::load_sources(&files) {
            Ok((c, _)) => {
                serde_json::to_vec(&tailor::bundle::to_artifact(&c)).map_err(|e| e.to_string())
            }
            Err(d) => Err(format!(
                "the bundle `{}` is invalid:\n{}",
                path.display(),
                d.render(&files)
            )),
        }
    } else {
        std::fs::read(path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))
    }
}

/// Poll `dir` for changes to its `.toml` files; rebuild and deploy. A bundle with errors is reported
/// in the log and the serving bundle stays.
fn watch(st: Arc<AppState>, dir: PathBuf) {
    fn fingerprint(dir: &Path) -> Vec<(PathBuf, u64, Option<std::time::SystemTime>)> {
        let mut v: Vec<_> = walk(dir)
            .into_iter()
            .filter_map(|p| {
                let m = std::fs::metadata(&p).ok()?;
                Some((p, m.len(), m.modified().ok()))
            })
            .collect();
        v.sort();
        v
    }
    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() {
                    out.extend(walk(&p));
                } else if p.extension().is_some_and(|x| x == "toml") {
                    out.push(p);
                }
            }
        }
        out
    }
    let build_and_deploy = |only_if_new: bool| match artifact_from_path(&dir) {
        Ok(a) => {
            if only_if_new && st.current().is_some_and(|d| *d.artifact == *a) {
                return;
            }
            if let Err(e) = st.deploy(a) {
                tracing::warn!("watch: {}", e.body.message);
            }
        }
        Err(msg) => tracing::warn!("watch: {msg}"),
    };
    let mut last = fingerprint(&dir);
    // An edit saved after start-up loaded the bundle but before this first look is in `last` already:
    // build once now and deploy it unless it is what is serving (a test that edited right after the
    // server started found its edit never deployed on a loaded machine).
    build_and_deploy(true);
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let now = fingerprint(&dir);
        if now == last {
            continue;
        }
        last = now;
        build_and_deploy(false);
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: draining in-flight requests");
}

/// Run the server until SIGINT/SIGTERM.
pub fn run(cfg: Config) -> Result<(), String> {
    let store = Arc::new(
        Store::open(
            &cfg.data,
            store::CacheConfig {
                max_bytes: cfg.cache_bytes,
                ttl: cfg.cache_ttl,
            },
        )
        .map_err(|e| e.0)?,
    );
    let geo = match &cfg.geoip_db {
        Some(p) => {
            let bytes =
                std::fs::read(p).map_err(|e| format!("cannot read `{}`: {e}", p.display()))?;
            Some(
                tailor::geoip::GeoDb::from_bytes(bytes)
                    .map_err(|e| format!("`{}`: {e}", p.display()))?,
            )
        }
        None => None,
    };
    let ua = tailor::device::UaParser::builtin().map_err(|e| e.to_string())?;
    // A long-running server loads the device rules now, not on the first uncommon User-Agent.
    ua.preload();
    let (tx, rx) = mpsc::sync_channel(65_536);
    let st = Arc::new(AppState {
        id: NEXT_STATE_ID.fetch_add(1, Ordering::Relaxed),
        store: store.clone(),
        bundle: RwLock::new(None),
        generation: AtomicU64::new(0),
        deploy_lock: Mutex::new(()),
        geo,
        ua,
        ua_cache: moka::sync::Cache::builder()
            .max_capacity(10_000)
            .build_with_hasher(foldhash::fast::RandomState::default()),
        geo_cache: moka::sync::Cache::builder()
            .max_capacity(GEO_CACHE_ENTRIES)
            .build_with_hasher(foldhash::fast::RandomState::default()),
        exposures: Mutex::new(Some(tx)),
        exposures_dropped: AtomicU64::new(0),
        metrics: metrics::Metrics::default(),
        request_ids: AtomicU64::new(1),
        readers: tokio::sync::Semaphore::new(store::READERS),
        cfg,
    });
    // The bundle: `--bundle` when given (recorded as a new deployment if it differs from the active
    // one), else the store's active deployment.
    let active = store.active_bundle().map_err(|e| e.0)?;
    let from_flag = match &st.cfg.bundle {
        Some(p) => Some(artifact_from_path(p)?),
        None => None,
    };
    match (from_flag, active) {
        (Some(a), active) => {
            let checked = tailor::signing::load_verified(&a, &st.cfg.trusted_keys)
                .map_err(|r| format!("--bundle refused: {r}"))?;
            match active {
                Some(row) if row.hash == checked.hash => st.swap(Arc::new(Deployed {
                    engine: Engine::new(checked),
                    artifact: Arc::from(a),
                    seq: row.seq,
                    deployed_at_ms: row.deployed_at_ms,
                    signed: !st.cfg.trusted_keys.is_empty(),
                })),
                _ => {
                    st.deploy(a).map_err(|e| e.body.message)?;
                }
            }
        }
        (None, Some(row)) => {
            let checked = tailor::signing::load_verified(&row.artifact, &st.cfg.trusted_keys)
                .map_err(|r| format!("the stored bundle was refused: {r}"))?;
            st.swap(Arc::new(Deployed {
                engine: Engine::new(checked),
                artifact: Arc::from(row.artifact),
                seq: row.seq,
                deployed_at_ms: row.deployed_at_ms,
                signed: !st.cfg.trusted_keys.is_empty(),
            }));
        }
        (None, None) => {
            tracing::warn!("no bundle: decide answers 503 until one is deployed (PUT /v1/bundle)")
        }
    }
    let writer = {
        let store = store.clone();
        std::thread::Builder::new()
            .name("exposure-log".into())
            .spawn(move || log_writer(store, rx))
            .map_err(|e| e.to_string())?
    };
    if let Some(dir) = st.cfg.watch.clone() {
        let st = st.clone();
        std::thread::Builder::new()
            .name("watch".into())
            .spawn(move || watch(st, dir))
            .map_err(|e| e.to_string())?;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // Blocking work is SQLite I/O, bounded by the reader semaphore and the single writer.
        .max_blocking_threads(32)
        .build()
        .map_err(|e| e.to_string())?;
    let result = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(&st.cfg.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", st.cfg.listen))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        // The one line on stdout: tests and scripts read the bound port from it.
        println!("listening on http://{addr}");
        tracing::info!(%addr, "listening");
        let app = router(st.clone());
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| e.to_string())
    });
    // Close the exposure channel and let the writer commit what is queued.
    if let Ok(mut g) = st.exposures.lock() {
        g.take();
    }
    let _ = writer.join();
    tracing::info!("stopped");
    result
}
