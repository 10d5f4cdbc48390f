//! One Durable Object per visitor: the strongly consistent home of the visitor's profile.
//!
//! Every write (snapshot upsert, events, frequency-cap counts, erasure) runs inside
//! `blockConcurrencyWhile`, so read-modify-write sequences for one visitor never interleave, including
//! the copy to KV that follows the storage commit: KV therefore receives one visitor's envelopes in
//! commit order. Storage keys: `snapshot` (the JSON text the core decodes, exactly what
//! `tailor::snapshot` produced) and `counts` (serves of frequency-capped experiences, kept apart from the
//! snapshot as on the native server, so a snapshot upsert from a CDP does not reset them).
//!
//! Internal protocol (the Worker is the only caller; the visitor id travels in `x-tailor-visitor`):
//! `GET /snapshot`, `PUT /snapshot` (a normalized snapshot), `DELETE /snapshot`, `POST /events`
//! (`[{stream, record}]`, already checked by the Worker), `POST /count` (`["experience", …]`). Writes
//! answer with the KV envelope they stored.

// `#[durable_object]` generates undocumented wasm-bindgen glue.
#![allow(missing_docs)]

use crate::profiles::{envelope, kv_key, PROFILES};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tailor::wire::ErrorResponse;
use worker::{durable_object, DurableObject, Env, Method, Request, Response, State, Storage};

/// An event on its way to the object: the stream and the stored record.
#[derive(Serialize, Deserialize)]
pub(crate) struct WireEvent {
    pub(crate) stream: String,
    pub(crate) record: serde_json::Map<String, serde_json::Value>,
}

enum Op {
    Put(String),
    Delete,
    Events(Vec<WireEvent>),
    Count(Vec<String>),
}

/// The Durable Object class (binding `TAILOR_VISITORS`).
#[durable_object]
pub struct VisitorObject {
    state: State,
    env: Env,
}

fn answer(status: u16, body: Vec<u8>) -> worker::Result<Response> {
    Ok(crate::json_bytes(status, body))
}

fn error(e: &ErrorResponse) -> (u16, Vec<u8>) {
    (e.http_status(), serde_json::to_vec(e).unwrap_or_default())
}

impl DurableObject for VisitorObject {
    fn new(state: State, env: Env) -> Self {
        VisitorObject { state, env }
    }

    async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
        let Some(id) = req.headers().get("x-tailor-visitor")? else {
            return answer(
                400,
                serde_json::to_vec(&ErrorResponse::new(
                    "invalid_request",
                    "missing x-tailor-visitor",
                ))
                .unwrap_or_default(),
            );
        };
        let storage = self.state.storage();
        let op = match (req.method(), req.path().as_str()) {
            (Method::Get, "/snapshot") => {
                return match storage.get::<String>("snapshot").await? {
                    Some(s) => answer(200, s.into_bytes()),
                    None => {
                        let (st, b) = error(&ErrorResponse::new(
                            "not_found",
                            format!("no profile for visitor `{id}`"),
                        ));
                        answer(st, b)
                    }
                };
            }
            (Method::Put, "/snapshot") => Op::Put(req.text().await?),
            (Method::Delete, "/snapshot") => Op::Delete,
            (Method::Post, "/events") => Op::Events(req.json().await?),
            (Method::Post, "/count") => Op::Count(req.json().await?),
            _ => {
                let (st, b) = error(&ErrorResponse::new("not_found", "no such visitor route"));
                return answer(st, b);
            }
        };
        let env = self.env.clone();
        let (status, body) = self
            .state
            .block_concurrency_while(async move { Ok(write(storage, env, id, op).await) })
            .await?;
        answer(status, body)
    }
}

/// Apply one write and copy the result to KV. Errors are values: an `Err` out of
/// `blockConcurrencyWhile` would reset the object.
async fn write(storage: Storage, env: Env, id: String, op: Op) -> (u16, Vec<u8>) {
    match apply(&storage, &env, &id, op).await {
        Ok(body) => (200, body),
        Err(e) => error(&e),
    }
}

async fn apply(storage: &Storage, env: &Env, id: &str, op: Op) -> Result<Vec<u8>, ErrorResponse> {
    let io = |e: worker::Error| ErrorResponse::new("internal", format!("visitor storage: {e}"));
    let current: Option<String> = storage.get("snapshot").await.map_err(io)?;
    let mut counts: BTreeMap<String, u32> =
        storage.get("counts").await.map_err(io)?.unwrap_or_default();
    let snapshot = match op {
        Op::Delete => {
            let existed = current.is_some() || !counts.is_empty();
            storage.delete_all().await.map_err(io)?;
            env.kv(PROFILES)
                .map_err(io)?
                .delete(&kv_key(id))
                .await
                .map_err(|e| ErrorResponse::new("unavailable", format!("workers KV: {e}")))?;
            return Ok(
                serde_json::to_vec(&serde_json::json!({ "deleted": existed })).unwrap_or_default(),
            );
        }
        Op::Put(s) => {
            storage.put("snapshot", &s).await.map_err(io)?;
            Some(s)
        }
        Op::Events(events) => {
            let limits = crate::Config::from_env(env).limits;
            let evs: Vec<tailor::snapshot::Event> = events
                .into_iter()
                .map(|e| tailor::snapshot::Event {
                    visitor_id: id.to_string(),
                    stream: e.stream,
                    record: e.record,
                })
                .collect();
            let refs: Vec<&tailor::snapshot::Event> = evs.iter().collect();
            let next = tailor::snapshot::apply_events(
                id,
                current.as_deref().map(str::as_bytes),
                &refs,
                limits,
            )?;
            let s = String::from_utf8(next)
                .map_err(|_| ErrorResponse::new("internal", "snapshot is not UTF-8"))?;
            storage.put("snapshot", &s).await.map_err(io)?;
            Some(s)
        }
        Op::Count(experiences) => {
            for e in experiences {
                let n = counts.entry(e).or_insert(0);
                *n = n.saturating_add(1);
            }
            storage.put("counts", &counts).await.map_err(io)?;
            current
        }
    };
    let env_text = envelope(snapshot.as_deref(), &counts);
    env.kv(PROFILES)
        .map_err(io)?
        .put(&kv_key(id), env_text.as_str())
        .map_err(|e| ErrorResponse::new("unavailable", format!("workers KV: {e}")))?
        .execute()
        .await
        .map_err(|e| ErrorResponse::new("unavailable", format!("workers KV: {e}")))?;
    Ok(env_text.into_bytes())
}
