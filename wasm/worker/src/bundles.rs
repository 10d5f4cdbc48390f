//! Bundles in Workers KV, compiled once per isolate.
//!
//! KV layout (namespace `TAILOR_BUNDLES`): `bundles/<hash>` holds each deployed artifact as uploaded;
//! `active` holds a [`Pointer`]: the current deployment and up to [`HISTORY`] earlier ones, newest first.
//! A single KV write is atomic, so swapping the pointer swaps the bundle for every reader at once; the
//! artifact it names is written before it. Two admins deploying at the same instant both succeed and the
//! later pointer write wins (KV has no compare-and-swap); deployments are an operator action, not traffic.

use crate::{now_ms, rfc3339, Answer, Config, Fail, ISOLATE};
use serde::{Deserialize, Serialize};
use std::rc::Rc;
use tailor::wire::ErrorResponse;
use tailor::Engine;
use worker::Env;

const NAMESPACE: &str = "TAILOR_BUNDLES";
const POINTER: &str = "active";
/// Earlier deployments kept in the pointer for rollback.
const HISTORY: usize = 20;
/// Compiled engines kept per isolate (the active one, and recent ones for a quick rollback).
const COMPILED: usize = 3;

/// One deployment, as `GET /v1/bundle` shows it (the native server's fields).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Entry {
    id: String,
    version: String,
    hash: String,
    deployed_at: String,
    deployment: u64,
    signature_verified: bool,
}

/// The `active` key.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Pointer {
    current: Entry,
    #[serde(default)]
    previous: Vec<Entry>,
}

/// The deployment serving in this isolate.
pub(crate) struct Active {
    pub(crate) engine: Rc<Engine>,
    entry: Entry,
}

/// Per-isolate bundle state.
#[derive(Default)]
pub(crate) struct Cache {
    compiled: Vec<(String, Rc<Engine>)>,
    active: Option<Rc<Active>>,
    /// When the pointer was last read (or a read was attempted), host milliseconds.
    checked_ms: f64,
    /// Why the active bundle may be out of date (the last pointer refresh failed).
    stale: Option<String>,
}

fn artifact_key(hash: &str) -> String {
    format!("bundles/{hash}")
}

fn install(engine: Rc<Engine>, entry: Entry) -> Rc<Active> {
    let a = Rc::new(Active { engine, entry });
    ISOLATE.with(|i| {
        let mut i = i.borrow_mut();
        let c = &mut i.bundles;
        c.compiled.retain(|(h, _)| *h != a.entry.hash);
        c.compiled.push((a.entry.hash.clone(), a.engine.clone()));
        if c.compiled.len() > COMPILED {
            c.compiled.remove(0);
        }
        c.active = Some(a.clone());
        c.checked_ms = now_ms();
        c.stale = None;
    });
    a
}

async fn read_pointer_text(env: &Env) -> Result<Option<String>, Fail> {
    Ok(env.kv(NAMESPACE)?.get(POINTER).text().await?)
}

fn parse_pointer(text: &str) -> Result<Pointer, Fail> {
    serde_json::from_str(text).map_err(|e| {
        Fail::new(
            503,
            "unavailable",
            format!("the `{POINTER}` bundle pointer in KV is not valid: {e}"),
        )
    })
}

async fn read_pointer(env: &Env) -> Result<Option<Pointer>, Fail> {
    read_pointer_text(env)
        .await?
        .map(|t| parse_pointer(&t))
        .transpose()
}

fn compile(artifact: &[u8], cfg: &Config) -> Result<Engine, Fail> {
    if let Some(e) = &cfg.key_error {
        return Err(Fail::internal(e.clone()));
    }
    let checked = tailor::signing::load_verified(artifact, &cfg.trusted_keys)
        .map_err(|r| Fail::from(ErrorResponse::from(r)))?;
    Ok(Engine::new(checked))
}

/// The engine for `entry`: from this isolate's cache, or read from KV and compiled.
async fn load(env: &Env, cfg: &Config, entry: &Entry) -> Result<Rc<Engine>, Fail> {
    let cached = ISOLATE.with(|i| {
        i.borrow()
            .bundles
            .compiled
            .iter()
            .find(|(h, _)| *h == entry.hash)
            .map(|(_, e)| e.clone())
    });
    if let Some(e) = cached {
        return Ok(e);
    }
    let kv = env.kv(NAMESPACE)?;
    let bytes = kv
        .get(&artifact_key(&entry.hash))
        .bytes()
        .await?
        .ok_or_else(|| {
            Fail::new(
                503,
                "unavailable",
                format!("bundle artifact `{}` is missing from KV", entry.hash),
            )
        })?;
    let engine = compile(&bytes, cfg)?;
    if *engine.bundle().hash != *entry.hash {
        return Err(Fail::new(
            503,
            "unavailable",
            format!(
                "KV key `{}` holds bundle `{}`",
                artifact_key(&entry.hash),
                engine.bundle().hash
            ),
        ));
    }
    Ok(Rc::new(engine))
}

async fn refresh(env: &Env, cfg: &Config) -> Result<Rc<Active>, Fail> {
    let Some(p) = read_pointer(env).await? else {
        return Err(Fail::new(
            503,
            "no_bundle",
            "no bundle is deployed; PUT /v1/bundle first",
        ));
    };
    let engine = load(env, cfg, &p.current).await?;
    Ok(install(engine, p.current))
}

/// The bundle to decide with, re-reading the pointer at most every `TAILOR_BUNDLE_REFRESH_MS`. When
/// the refresh fails and this isolate has a bundle, that bundle keeps serving.
pub(crate) async fn current(env: &Env, cfg: &Config) -> Result<(Rc<Active>, Vec<String>), Fail> {
    let now = now_ms();
    let (active, fresh) = ISOLATE.with(|i| {
        let i = i.borrow();
        let c = &i.bundles;
        (
            c.active.clone(),
            now - c.checked_ms < cfg.bundle_refresh_ms && now >= c.checked_ms,
        )
    });
    if let (Some(a), true) = (&active, fresh) {
        return Ok((a.clone(), Vec::new()));
    }
    match refresh(env, cfg).await {
        Ok(a) => Ok((a, Vec::new())),
        Err(f) => match active {
            Some(a) => {
                worker::console_error!(
                    "bundle refresh failed, serving the last good bundle: {}",
                    f.body.message
                );
                ISOLATE.with(|i| {
                    let mut i = i.borrow_mut();
                    i.bundles.checked_ms = now;
                    i.bundles.stale = Some(f.body.message.clone());
                });
                Ok((a, Vec::new()))
            }
            None => Err(f),
        },
    }
}

/// `PUT /v1/bundle`.
pub(crate) async fn deploy(env: &Env, cfg: &Config, artifact: Vec<u8>) -> Answer {
    let engine = compile(&artifact, cfg)?;
    // A pointer that cannot be parsed is replaced (with no history) rather than blocking every deploy;
    // a pointer that cannot be *read* refuses the deploy (503), so a passing KV fault never erases the
    // rollback history.
    let prev = match read_pointer_text(env).await? {
        None => None,
        Some(t) => match parse_pointer(&t) {
            Ok(p) => Some(p),
            Err(f) => {
                worker::console_error!(
                    "replacing an unreadable bundle pointer: {}",
                    f.body.message
                );
                None
            }
        },
    };
    let b = engine.bundle();
    let entry = Entry {
        id: b.id.to_string(),
        version: b.version.to_string(),
        hash: b.hash.to_string(),
        deployed_at: rfc3339(now_ms()),
        deployment: prev.as_ref().map_or(1, |p| p.current.deployment + 1),
        signature_verified: !cfg.trusted_keys.is_empty(),
    };
    let mut previous = Vec::new();
    if let Some(p) = prev {
        previous.push(p.current);
        previous.extend(p.previous);
        previous.truncate(HISTORY);
    }
    let kv = env.kv(NAMESPACE)?;
    kv.put_bytes(&artifact_key(&entry.hash), &artifact)?
        .execute()
        .await?;
    let pointer = Pointer {
        current: entry.clone(),
        previous,
    };
    kv.put(POINTER, serde_json::to_string(&pointer).unwrap_or_default())?
        .execute()
        .await?;
    install(Rc::new(engine), entry.clone());
    Ok(crate::json(200, &entry))
}

/// `POST /v1/bundle/rollback`: activate the deployment before the current one.
pub(crate) async fn rollback(env: &Env, cfg: &Config) -> Answer {
    let Some(p) = read_pointer(env).await? else {
        return Err(Fail::new(
            409,
            "no_previous_bundle",
            "no bundle is deployed",
        ));
    };
    let mut rest = p.previous.into_iter();
    let Some(target) = rest.next() else {
        return Err(Fail::new(
            409,
            "no_previous_bundle",
            "there is no earlier deployment to roll back to",
        ));
    };
    // Verified again: the trusted keys may have changed since it was deployed.
    let engine = load(env, cfg, &target).await?;
    let pointer = Pointer {
        current: target.clone(),
        previous: rest.collect(),
    };
    env.kv(NAMESPACE)?
        .put(POINTER, serde_json::to_string(&pointer).unwrap_or_default())?
        .execute()
        .await?;
    install(engine, target.clone());
    Ok(crate::json(200, &target))
}

/// `GET /v1/bundle`.
pub(crate) async fn get(env: &Env, cfg: &Config) -> Answer {
    match current(env, cfg).await {
        Ok((a, _)) => Ok(crate::json(200, &a.entry)),
        Err(f) if f.body.code == "no_bundle" => {
            Err(Fail::new(404, "no_bundle", "no bundle is deployed"))
        }
        Err(f) => Err(f),
    }
}

#[derive(Serialize)]
pub(crate) struct Health {
    status: &'static str,
    bundle: Option<Entry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stale: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// Visitors in this isolate's profile cache, and their estimated bytes.
    profiles_cached: usize,
    profiles_cached_bytes: usize,
}

/// `/healthz`: `ok`, `degraded` (serving a last good bundle because KV failed) or `no_bundle`.
pub(crate) async fn health(env: &Env, cfg: &Config) -> Health {
    let (profiles_cached, profiles_cached_bytes) = ISOLATE.with(|i| {
        i.borrow()
            .profiles
            .as_ref()
            .map_or((0, 0), |l| (l.len(), l.weight()))
    });
    match current(env, cfg).await {
        Ok((a, _)) => {
            let stale = ISOLATE.with(|i| i.borrow().bundles.stale.clone());
            Health {
                status: if stale.is_some() { "degraded" } else { "ok" },
                bundle: Some(a.entry.clone()),
                stale,
                error: None,
                profiles_cached,
                profiles_cached_bytes,
            }
        }
        Err(f) => Health {
            status: if f.body.code == "no_bundle" {
                "no_bundle"
            } else {
                "unavailable"
            },
            bundle: None,
            stale: None,
            error: Some(f.body.message),
            profiles_cached,
            profiles_cached_bytes,
        },
    }
}
