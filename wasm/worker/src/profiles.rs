//! Profiles for decide (KV + per-isolate LRU) and the profile routes (through the visitor's Durable
//! Object). See the crate docs for the consistency model.
//!
//! KV value (`TAILOR_PROFILES`, key `v/<visitor id>`): an envelope `{"snapshot": <snapshot or null>,
//! "counts": {"<experience>": n}}`, so one read gives decide both the snapshot and the frequency-cap
//! counts.

use crate::visitor::WireEvent;
use crate::{now_ms, read_body, Answer, Config, Fail, ISOLATE};
use futures_util::future::{select, Either};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;
use tailor::context::Profile;
use tailor::wire::{ErrorResponse, EventBatch};
use tailor::Engine;
use worker::{Delay, Env, Method, Request, RequestInit};

pub(crate) const PROFILES: &str = "TAILOR_PROFILES";
const VISITORS: &str = "TAILOR_VISITORS";

pub(crate) fn kv_key(id: &str) -> String {
    format!("v/{id}")
}

/// The KV envelope for a snapshot (JSON text, or none) and counts.
pub(crate) fn envelope(snapshot: Option<&str>, counts: &BTreeMap<String, u32>) -> String {
    format!(
        "{{\"snapshot\":{},\"counts\":{}}}",
        snapshot.unwrap_or("null"),
        serde_json::to_string(counts).unwrap_or_else(|_| "{}".into())
    )
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    snapshot: Option<&'a RawValue>,
    #[serde(default)]
    counts: BTreeMap<String, u32>,
}

/// A visitor as this isolate last read it.
pub(crate) struct Cached {
    snapshot: Option<Vec<u8>>,
    decoded: RefCell<Option<Rc<Profile>>>,
    counts: RefCell<Vec<(String, u32)>>,
}

impl Cached {
    fn parse(envelope: &[u8]) -> Result<Cached, String> {
        let e: Envelope = serde_json::from_slice(envelope).map_err(|e| e.to_string())?;
        Ok(Cached {
            snapshot: e
                .snapshot
                .filter(|s| s.get() != "null")
                .map(|s| s.get().as_bytes().to_vec()),
            decoded: RefCell::new(None),
            counts: RefCell::new(e.counts.into_iter().collect()),
        })
    }

    fn absent() -> Cached {
        Cached {
            snapshot: None,
            decoded: RefCell::new(None),
            counts: RefCell::new(Vec::new()),
        }
    }

    /// The snapshot decoded for `engine`'s schema (once per bundle layout).
    fn profile(&self, engine: &Engine) -> Result<Option<Rc<Profile>>, ErrorResponse> {
        let Some(raw) = &self.snapshot else {
            return Ok(None);
        };
        let layout = engine.profile_layout_id();
        if let Some(p) = self
            .decoded
            .borrow()
            .as_ref()
            .filter(|p| p.layout_id == layout)
        {
            return Ok(Some(p.clone()));
        }
        let p = Rc::new(engine.decode_profile(raw)?);
        *self.decoded.borrow_mut() = Some(p.clone());
        Ok(Some(p))
    }
}

/// What decide knows about one visitor.
pub(crate) struct Visitor {
    pub(crate) profile: Option<Rc<Profile>>,
    /// Why the profile is missing when it should not be (store failure, timeout, unreadable).
    pub(crate) note: Option<String>,
    cached: Option<Rc<Cached>>,
}

impl Visitor {
    pub(crate) fn counts(&self) -> Vec<(String, u32)> {
        self.cached
            .as_ref()
            .map(|c| c.counts.borrow().clone())
            .unwrap_or_default()
    }

    /// Count one serve of each experience in this isolate's copy (the next decide here sees it).
    pub(crate) fn count(&self, experiences: &[String]) {
        if let Some(c) = &self.cached {
            let mut g = c.counts.borrow_mut();
            for e in experiences {
                match g.iter_mut().find(|(x, _)| x == e) {
                    Some((_, n)) => *n = n.saturating_add(1),
                    None => g.push((e.clone(), 1)),
                }
            }
        }
    }
}

fn remember(id: &str, c: Rc<Cached>, cfg: &Config) {
    let now = now_ms();
    // Weighed before decoding: the key, the snapshot, and 3× the snapshot for its decoded form (the
    // measured ratio on the example profiles is 1–2×), plus bookkeeping.
    let weight = id.len() + 4 * c.snapshot.as_ref().map_or(0, Vec::len) + 256;
    ISOLATE.with(|i| {
        i.borrow_mut()
            .profiles
            .get_or_insert_with(|| {
                crate::lru::Lru::new(
                    cfg.profile_cache_entries,
                    cfg.profile_cache_bytes,
                    cfg.profile_cache_ttl_ms,
                )
            })
            .put(id, c, weight, now)
    });
}

fn context_only(why: String) -> Visitor {
    Visitor {
        profile: None,
        note: Some(format!("{why}; decided with context-only rules")),
        cached: None,
    }
}

/// The visitor's profile for decide: the isolate's LRU, else KV within `TAILOR_PROFILE_TIMEOUT_MS`.
/// Never fails: a store problem becomes a note and a context-only decision.
pub(crate) async fn for_decide(env: &Env, cfg: &Config, id: &str, engine: &Engine) -> Visitor {
    let now = now_ms();
    let hit = ISOLATE.with(|i| {
        i.borrow_mut()
            .profiles
            .as_mut()
            .and_then(|l| l.get(id, now))
    });
    let cached = match hit {
        Some(c) => c,
        None => {
            let kv = match env.kv(PROFILES) {
                Ok(kv) => kv,
                Err(e) => return context_only(format!("the profile store is not bound ({e})")),
            };
            let key = kv_key(id);
            let read = std::pin::pin!(kv.get(&key).bytes());
            let timeout =
                std::pin::pin!(Delay::from(Duration::from_millis(cfg.profile_timeout_ms)));
            let bytes = match select(read, timeout).await {
                Either::Left((Ok(b), _)) => b,
                Either::Left((Err(e), _)) => {
                    return context_only(format!("the profile store could not be read ({e})"))
                }
                Either::Right(_) => {
                    return context_only(format!(
                        "the profile store did not answer within {} ms",
                        cfg.profile_timeout_ms
                    ))
                }
            };
            let c = match bytes {
                None => Cached::absent(),
                Some(b) => match Cached::parse(&b) {
                    Ok(c) => c,
                    Err(e) => {
                        return context_only(format!("the stored profile is not readable ({e})"))
                    }
                },
            };
            let c = Rc::new(c);
            remember(id, c.clone(), cfg);
            c
        }
    };
    match cached.profile(engine) {
        Ok(profile) => Visitor {
            profile,
            note: None,
            cached: Some(cached),
        },
        // A stored snapshot this bundle cannot read must not fail the visitor's page (as natively).
        Err(e) => Visitor {
            profile: None,
            note: Some(format!("the stored profile was ignored: {}", e.message)),
            cached: Some(cached),
        },
    }
}

/// One request to the visitor's Durable Object; its error answers come back as [`Fail`]s.
async fn call(
    env: &Env,
    id: &str,
    method: Method,
    path: &str,
    body: Option<Vec<u8>>,
) -> Result<Vec<u8>, Fail> {
    let stub = env.durable_object(VISITORS)?.id_from_name(id)?.get_stub()?;
    let headers = worker::Headers::new();
    headers.set("x-tailor-visitor", id)?;
    let mut init = RequestInit::new();
    init.with_method(method).with_headers(headers);
    if let Some(b) = body {
        init.with_body(Some(js_sys::Uint8Array::from(b.as_slice()).into()));
    }
    let req = Request::new_with_init(&format!("https://visitor{path}"), &init)?;
    let mut resp = stub.fetch_with_request(req).await?;
    let status = resp.status_code();
    let bytes = resp.bytes().await?;
    if status == 200 {
        return Ok(bytes);
    }
    let body = serde_json::from_slice::<ErrorResponse>(&bytes).unwrap_or_else(|_| {
        ErrorResponse::new("internal", format!("visitor object answered {status}"))
    });
    Err(Fail { status, body })
}

/// After a write: the object's envelope becomes this isolate's copy (read-your-writes here).
fn adopt(id: &str, envelope: &[u8], cfg: &Config) {
    if let Ok(c) = Cached::parse(envelope) {
        remember(id, Rc::new(c), cfg);
    }
}

/// `PUT /v1/profiles/{id}`.
pub(crate) async fn put(req: Request, env: &Env, cfg: &Config, id: &str) -> Answer {
    let body = read_body(req, cfg.max_body_bytes).await?;
    let snapshot = tailor::snapshot::normalize_snapshot(id, &body, cfg.limits)?;
    if let Ok((a, _)) = crate::bundles::current(env, cfg).await {
        // Structure the active bundle cannot decode at all is refused now rather than ignored later.
        a.engine.decode_profile(&snapshot)?;
    }
    let env_bytes = call(env, id, Method::Put, "/snapshot", Some(snapshot)).await?;
    adopt(id, &env_bytes, cfg);
    Ok(crate::json(
        200,
        &serde_json::json!({ "visitor_id": id, "stored": true }),
    ))
}

/// `GET /v1/profiles/{id}`: from the visitor's object (strongly consistent).
pub(crate) async fn get(env: &Env, id: &str) -> Answer {
    let bytes = call(env, id, Method::Get, "/snapshot", None).await?;
    Ok(crate::json_bytes(200, bytes))
}

/// `DELETE /v1/profiles/{id}`: erasure of the snapshot and counts, in the object and in KV.
pub(crate) async fn delete(env: &Env, cfg: &Config, id: &str) -> Answer {
    let bytes = call(env, id, Method::Delete, "/snapshot", None).await?;
    remember(id, Rc::new(Cached::absent()), cfg);
    let deleted = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| v.get("deleted").and_then(serde_json::Value::as_bool))
        .unwrap_or(false);
    Ok(crate::json(
        200,
        &serde_json::json!({ "visitor_id": id, "deleted": deleted }),
    ))
}

/// `POST /v1/events`: every event is checked before anything is written; then each visitor's events
/// go to that visitor's object in one write (atomic per visitor, not across visitors).
pub(crate) async fn events(req: Request, env: &Env, cfg: &Config) -> Answer {
    let body = read_body(req, cfg.max_body_bytes).await?;
    let batch: EventBatch = serde_json::from_slice(&body).map_err(|e| {
        Fail::new(
            400,
            "invalid_request",
            format!("expected {{\"events\": [...]}}: {e}"),
        )
    })?;
    if batch.events.len() > cfg.max_events_per_batch {
        return Err(Fail::new(
            413,
            "too_large",
            format!(
                "{} events in one batch; the limit is {}",
                batch.events.len(),
                cfg.max_events_per_batch
            ),
        ));
    }
    #[allow(clippy::cast_possible_truncation)]
    let now = now_ms() as i64;
    let n = batch.events.len();
    let mut by_visitor: BTreeMap<String, Vec<WireEvent>> = BTreeMap::new();
    for (i, v) in batch.events.into_iter().enumerate() {
        let e = tailor::snapshot::parse_event(i, v, now)?;
        by_visitor.entry(e.visitor_id).or_default().push(WireEvent {
            stream: e.stream,
            record: e.record,
        });
    }
    let visitors = by_visitor.len();
    let writes = by_visitor.into_iter().map(|(id, evs)| async move {
        let body = serde_json::to_vec(&evs).unwrap_or_default();
        let r = call(env, &id, Method::Post, "/events", Some(body)).await;
        (id, r)
    });
    let mut failed = Vec::new();
    for (id, r) in futures_util::future::join_all(writes).await {
        match r {
            Ok(env_bytes) => adopt(&id, &env_bytes, cfg),
            Err(f) => failed.push(format!("`{id}`: {}", f.body.message)),
        }
    }
    if !failed.is_empty() {
        return Err(Fail::new(
            503,
            "unavailable",
            format!(
                "events for {} of {visitors} visitors were not stored ({}); the others were",
                failed.len(),
                failed.join("; ")
            ),
        ));
    }
    Ok(crate::json(
        200,
        &serde_json::json!({ "accepted": n, "visitors": visitors }),
    ))
}

/// Persist one serve of each capped experience in the visitor's object (after the response).
pub(crate) async fn count_durably(env: &Env, id: &str, experiences: &[String]) -> Result<(), Fail> {
    let body = serde_json::to_vec(experiences).unwrap_or_default();
    call(env, id, Method::Post, "/count", Some(body))
        .await
        .map(|_| ())
}
