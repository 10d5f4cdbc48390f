//! The engine: a compiled bundle, immutable and shareable, that answers decisions.
//!
//! Built once per bundle version ([`Engine::new`]); a decision ([`Engine::decide`]) is total — it never
//! fails because of one visitor's data: a value of the wrong type makes the experiences that read it not
//! match and is reported in `notes` and the trace.

use crate::allocation::{bucket, bucket_after, prefix, variant_bounds, Draw, Murmur3, BUCKETS};
use crate::bundle::CheckedBundle;
use crate::context::{Profile, ProfileLayout, RequestView};
use crate::expr::program::{Area, EvalContext, Evaluator, Program};
use crate::schema::{PathKey, Schema};
use crate::value::Value;
use crate::wire::{
    Buckets, BundleRef, DecideRequest, DecideResponse, Decision, ErrorResponse, ExperienceTrace,
    HoldoutTrace, Outcome, Reason, Rendered, RenderedBundle, Trace,
};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Most placements one request may ask for.
pub const MAX_PLACEMENTS_PER_REQUEST: usize = 64;

struct Variant {
    id: Arc<str>,
    /// Exclusive upper bucket bound.
    bound: u32,
    content: Arc<RawValue>,
    /// The decision that selects it, as JSON ([`crate::wire::Rendered`]).
    json: Box<[u8]>,
}

struct Experience {
    id: Arc<str>,
    priority: i64,
    audience: Option<u32>,
    start: Option<i64>,
    end: Option<i64>,
    /// Admitted traffic in buckets (10000 = everyone).
    traffic: u32,
    /// (group index, member index, member count)
    exclusion: Option<(u16, u32, u32)>,
    /// (exposure index, cap)
    cap: Option<(u16, u32)>,
    requires_visitor_id: bool,
    personalized: bool,
    /// [`crate::allocation::prefix`] of the traffic and variant draws over this experience.
    traffic_draw: Murmur3,
    variant_draw: Murmur3,
    /// Every path the audience reads (through segments too), for input-problem checks.
    reads: Vec<PathKey>,
    variants: Vec<Variant>,
}

/// Per-request facts every experience check needs.
struct Gate<'a> {
    /// Personalization consent is denied.
    denied: bool,
    /// Request-data problems by path.
    problems: &'a [(PathKey, String)],
    /// Times the adapter served an experience (by id), outside the snapshot.
    counts: &'a dyn Fn(&str) -> u32,
}

struct Placement {
    id: Arc<str>,
    default: Arc<RawValue>,
    /// The default and the holdout decisions as JSON ([`crate::wire::Rendered`]).
    default_json: Box<[u8]>,
    holdout_json: Box<[u8]>,
    experiences: Vec<Experience>,
    holdouts: Vec<u16>,
    /// Context slots its audiences read (through segments too): a decision computes only the slots
    /// of the placements it was asked for.
    slots: Vec<u16>,
    /// Decodes only what its audiences read: [`Engine::decide_json`] asked for this placement alone
    /// decodes the snapshot with it.
    layout: ProfileLayout,
}

struct Holdout {
    id: Box<str>,
    /// [`crate::allocation::prefix`] of the holdout draw.
    draw: Murmur3,
    /// Held-out buckets (below this).
    buckets: u32,
}

/// A compiled bundle.
pub struct Engine {
    bundle: BundleRef,
    /// The start of every answer's text ([`RenderedBundle`]).
    bundle_json: Box<[u8]>,
    salt: Box<str>,
    require_consent: bool,
    schema: Schema,
    program: Program,
    placements: Vec<Placement>,
    index: crate::hash::FixedMap<Box<str>, u16>,
    holdouts: Vec<Holdout>,
    /// Exclusion groups by index: the name and the [`crate::allocation::prefix`] of its draw.
    groups: Vec<(Box<str>, Murmur3)>,
    layout: ProfileLayout,
    /// (placement, experience) of every experience with a `frequency_cap`, known at load: adapters
    /// ask on every decision, and bundles cap a handful of experiences, so a scan of this short list
    /// is cheaper than finding the placement by name and its experience in it (~200 instructions).
    capped: Box<[(Box<str>, Box<str>)]>,
}

fn raw(v: &serde_json::Value) -> Arc<RawValue> {
    let text = serde_json::to_string(v).unwrap_or_else(|_| "null".into());
    RawValue::from_string(text)
        .map(Arc::from)
        .unwrap_or_else(|_| null_raw())
}

/// A decision without a trace, as the field-by-field writer writes it.
fn text(
    placement: &Arc<str>,
    chosen: Option<(&Arc<str>, &Arc<str>)>,
    content: &Arc<RawValue>,
    reason: Reason,
) -> Box<[u8]> {
    crate::wire::decision_text(&Decision {
        placement: Cow::Borrowed(placement),
        experience: chosen.map(|(e, _)| Cow::Borrowed(e)),
        variant: chosen.map(|(_, v)| Cow::Borrowed(v)),
        content: Cow::Borrowed(content),
        reason,
        trace: None,
        rendered: Rendered::default(),
    })
    .into()
}

/// Write each of `p`'s constant decisions once ([`crate::wire::Rendered`]).
fn render(p: &mut Placement) {
    p.default_json = text(&p.id, None, &p.default, Reason::Default);
    p.holdout_json = text(&p.id, None, &p.default, Reason::Holdout);
    for e in &mut p.experiences {
        for v in &mut e.variants {
            v.json = text(&p.id, Some((&e.id, &v.id)), &v.content, Reason::Matched);
        }
    }
}

/// `d` with its text made at load, when it has no trace (a trace is per request).
fn rendered<'e>(mut d: Decision<'e>, json: &'e [u8]) -> Decision<'e> {
    if d.trace.is_none() {
        d.rendered = Rendered::of(&d, json);
    }
    d
}

/// `p`'s default content as the decision, for `Reason::Default` or `Reason::Holdout`.
fn default_content<'e>(p: &'e Placement, reason: Reason, trace: Option<Trace>) -> Decision<'e> {
    let json = if reason == Reason::Holdout {
        &p.holdout_json
    } else {
        &p.default_json
    };
    rendered(
        Decision {
            placement: Cow::Borrowed(&p.id),
            experience: None,
            variant: None,
            content: Cow::Borrowed(&p.default),
            reason,
            trace,
            rendered: Rendered::default(),
        },
        json,
    )
}

fn decode_with(layout: &ProfileLayout, json: &[u8]) -> Result<Profile, ErrorResponse> {
    layout.decode(json).map_err(|e| {
        ErrorResponse::new(
            "invalid_profile",
            format!("the profile snapshot is not valid: {e}"),
        )
    })
}

fn null_raw() -> Arc<RawValue> {
    // `null` is always valid JSON; the fallback keeps this total without unwrap.
    RawValue::from_string("null".into())
        .map(Arc::from)
        .unwrap_or_else(|_| Arc::from(Box::<RawValue>::default()))
}

impl Engine {
    /// Compile a checked bundle.
    pub fn new(c: CheckedBundle) -> Engine {
        let def = &c.def;
        let mut program = Program {
            regexes: c.regexes,
            areas: def
                .areas
                .iter()
                .map(|a| Area::new(a.polygon.iter().map(|p| (p[0], p[1])).collect()))
                .collect(),
            segment_names: def.segments.iter().map(|s| s.id.as_str().into()).collect(),
            consent_names: std::iter::once("personalization")
                .chain(def.schema.consent.iter().map(String::as_str))
                .map(Into::into)
                .collect(),
            ..Program::default()
        };
        for (s, t) in def.segments.iter().zip(&c.segments) {
            let cost = program.cost(t);
            let root = program.add(t, &s.when);
            program.segment_roots.push(root);
            program.segment_costs.push(cost);
        }
        // Segment reads and profile use, transitively (the graph is acyclic: checked at load).
        let mut seg_reads: Vec<Option<Vec<PathKey>>> = vec![None; c.segments.len()];
        fn reads_of(
            t: &crate::expr::check::TExpr,
            segs: &[crate::expr::check::TExpr],
            memo: &mut Vec<Option<Vec<PathKey>>>,
            depth: usize,
        ) -> Vec<PathKey> {
            let mut out = Vec::new();
            t.walk(&mut |x| match &x.kind {
                crate::expr::check::TKind::Path(k) => out.push(k.clone()),
                crate::expr::check::TKind::Query(q) => out.push(PathKey::Events(q.kind)),
                _ => {}
            });
            for s in t.segments() {
                let i = s as usize;
                if depth > crate::bundle::check::MAX_SEGMENT_DEPTH + 1 {
                    break;
                }
                let r = match memo.get(i).cloned().flatten() {
                    Some(r) => r,
                    None => {
                        let r = segs
                            .get(i)
                            .map(|st| reads_of(st, segs, memo, depth + 1))
                            .unwrap_or_default();
                        if let Some(m) = memo.get_mut(i) {
                            *m = Some(r.clone());
                        }
                        r
                    }
                };
                out.extend(r);
            }
            out.sort();
            out.dedup();
            out
        }
        // Decode only what some audience can read: its own paths and those of the segments it reaches
        // (a segment no audience references costs nothing at decode time).
        let usage_of = |audiences: &mut dyn Iterator<Item = &crate::expr::check::TExpr>| {
            let mut usage = crate::context::Usage::none(&def.schema);
            let mut reached = vec![false; c.segments.len()];
            let mut stack: Vec<u16> = Vec::new();
            for t in audiences {
                usage.add(t);
                stack.extend(t.segments());
            }
            while let Some(s) = stack.pop() {
                let Some(seen) = reached.get_mut(s as usize) else {
                    continue;
                };
                if *seen {
                    continue;
                }
                *seen = true;
                if let Some(t) = c.segments.get(s as usize) {
                    usage.add(t);
                    stack.extend(t.segments());
                }
            }
            usage
        };
        let usage = usage_of(&mut c.audiences.iter().flatten().flatten());
        let mut capped = Vec::new();
        let mut capped_pairs: Vec<(Box<str>, Box<str>)> = Vec::new();
        let mut groups: Vec<Box<str>> = Vec::new();
        let mut group_members: Vec<u32> = Vec::new();
        let mut placements = Vec::with_capacity(def.placements.len());
        for (pi, p) in def.placements.iter().enumerate() {
            let mut exps = Vec::with_capacity(p.experiences.len());
            for (ei, e) in p.experiences.iter().enumerate() {
                let typed = c
                    .audiences
                    .get(pi)
                    .and_then(|r| r.get(ei))
                    .and_then(Option::as_ref);
                let audience = match (typed, &e.audience) {
                    (Some(t), Some(text)) => Some(program.add(t, text)),
                    _ => None,
                };
                let reads = typed
                    .map(|t| reads_of(t, &c.segments, &mut seg_reads, 0))
                    .unwrap_or_default();
                let personalized = reads.iter().any(PathKey::reads_profile);
                let weights: Vec<u32> = e.variants.iter().map(|v| v.weight).collect();
                let bounds = variant_bounds(&weights);
                let variants = e
                    .variants
                    .iter()
                    .zip(bounds)
                    .map(|(v, bound)| Variant {
                        id: v.id.as_str().into(),
                        bound,
                        content: raw(&v.content),
                        json: Box::default(),
                    })
                    .collect();
                let exclusion = e.exclusion_group.as_ref().map(|g| {
                    let gi = match groups.iter().position(|x| **x == **g) {
                        Some(i) => i,
                        None => {
                            groups.push(g.as_str().into());
                            group_members.push(0);
                            groups.len() - 1
                        }
                    };
                    let member = group_members.get(gi).copied().unwrap_or(0);
                    if let Some(m) = group_members.get_mut(gi) {
                        *m += 1;
                    }
                    (crate::schema::index16(gi), member, 0)
                });
                let cap = e.frequency_cap.map(|n| {
                    capped.push(e.id.clone());
                    capped_pairs.push((p.id.as_str().into(), e.id.as_str().into()));
                    (crate::schema::index16(capped.len() - 1), n)
                });
                exps.push(Experience {
                    id: e.id.as_str().into(),
                    priority: e.priority,
                    audience,
                    start: e.start.as_deref().and_then(crate::time::parse_timestamp),
                    end: e.end.as_deref().and_then(crate::time::parse_timestamp),
                    traffic: (e.traffic * 100.0).round().clamp(0.0, f64::from(BUCKETS)) as u32,
                    exclusion,
                    cap,
                    requires_visitor_id: e.requires_visitor_id,
                    personalized,
                    traffic_draw: prefix(&def.salt, Draw::Traffic, &e.id),
                    variant_draw: prefix(&def.salt, Draw::Variant, &e.id),
                    reads,
                    variants,
                });
            }
            // Priority first (higher wins), file order among equals: a stable sort keeps file order.
            exps.sort_by_key(|e| std::cmp::Reverse(e.priority));
            let holdouts = def
                .holdouts
                .iter()
                .enumerate()
                .filter(|(_, h)| h.placements.is_empty() || h.placements.contains(&p.id))
                .map(|(i, _)| crate::schema::index16(i))
                .collect();
            let mut slots: Vec<u16> = exps
                .iter()
                .flat_map(|e| &e.reads)
                .filter_map(|k| program.slot_keys.iter().position(|s| s == k))
                .map(crate::schema::index16)
                .collect();
            slots.sort_unstable();
            slots.dedup();
            placements.push(Placement {
                id: p.id.as_str().into(),
                default: raw(&p.default),
                default_json: Box::default(),
                holdout_json: Box::default(),
                experiences: exps,
                holdouts,
                slots,
                layout: ProfileLayout::default(),
            });
        }
        for (pi, p) in placements.iter_mut().enumerate() {
            let usage = usage_of(&mut c.audiences.get(pi).into_iter().flatten().flatten());
            p.layout = ProfileLayout::with_usage(&def.schema, &capped, &usage);
            render(p);
        }
        // Now that group sizes are known, fill in the member counts.
        for p in &mut placements {
            for e in &mut p.experiences {
                if let Some((g, m, _)) = e.exclusion {
                    e.exclusion = Some((g, m, group_members.get(g as usize).copied().unwrap_or(1)));
                }
            }
        }
        let index = placements
            .iter()
            .enumerate()
            .map(|(i, p)| (Box::from(&*p.id), crate::schema::index16(i)))
            .collect();
        let holdouts = def
            .holdouts
            .iter()
            .map(|h| Holdout {
                id: h.id.as_str().into(),
                draw: prefix(&def.salt, Draw::Holdout, &h.id),
                buckets: (h.percent * 100.0).round().clamp(0.0, f64::from(BUCKETS)) as u32,
            })
            .collect();
        let bundle = BundleRef {
            id: def.id.as_str().into(),
            version: def.version.as_str().into(),
            hash: c.hash.as_str().into(),
        };
        Engine {
            bundle_json: crate::wire::bundle_text(&bundle).into(),
            bundle,
            salt: def.salt.as_str().into(),
            require_consent: def.require_consent,
            layout: ProfileLayout::with_usage(&def.schema, &capped, &usage),
            capped: capped_pairs.into(),
            schema: def.schema.clone(),
            program,
            placements,
            index,
            holdouts,
            groups: groups
                .into_iter()
                .map(|g| {
                    let draw = prefix(&def.salt, Draw::Exclusion, &g);
                    (g, draw)
                })
                .collect(),
        }
    }

    /// Load and compile a built artifact.
    pub fn from_artifact(json: &[u8]) -> Result<Engine, ErrorResponse> {
        match crate::bundle::load_artifact(json) {
            Ok(c) => Ok(Engine::new(c)),
            Err(d) => {
                let n = d.error_count();
                Err(ErrorResponse {
                    code: "invalid_bundle".into(),
                    message: format!("the bundle has {n} error{}", if n == 1 { "" } else { "s" }),
                    errors: d.into_vec(),
                })
            }
        }
    }

    /// Which bundle this is.
    pub fn bundle(&self) -> &BundleRef {
        &self.bundle
    }

    /// Placement ids in bundle order.
    pub fn placement_ids(&self) -> impl Iterator<Item = &str> {
        self.placements.iter().map(|p| &*p.id)
    }

    /// The compiled program (for inspection and benchmarks).
    pub fn program(&self) -> &Program {
        &self.program
    }

    /// Whether `experience` of `placement` has a `frequency_cap`: adapters that store profiles count its
    /// exposures into the snapshot's `exposures` so the cap applies.
    pub fn has_frequency_cap(&self, placement: &str, experience: &str) -> bool {
        self.capped
            .iter()
            .any(|(p, e)| **e == *experience && **p == *placement)
    }

    /// Identifies how this engine decodes profiles: a [`Profile`] whose `layout_id` equals it was decoded
    /// identically and can be reused (adapters cache decoded profiles with it).
    pub fn profile_layout_id(&self) -> u64 {
        self.layout.id()
    }

    /// Decode a profile snapshot (JSON bytes) for this bundle's schema.
    pub fn decode_profile(&self, json: &[u8]) -> Result<Profile, ErrorResponse> {
        decode_with(&self.layout, json)
    }

    /// Decode a profile snapshot given as a JSON value.
    pub fn decode_profile_value(&self, v: &serde_json::Value) -> Result<Profile, ErrorResponse> {
        self.layout.decode_value(v).map_err(|e| {
            ErrorResponse::new(
                "invalid_profile",
                format!("the profile snapshot is not valid: {e}"),
            )
        })
    }

    /// Parse a request and an optional profile from JSON and decide.
    pub fn decide_json(
        &self,
        request: &[u8],
        profile: Option<&[u8]>,
        now_ms: i64,
    ) -> Result<DecideResponse<'_>, ErrorResponse> {
        let req = DecideRequest::from_json(request)?;
        // Decoded for this one request only, so a placement asked for alone decodes just what its
        // audiences read (on the retail bundle's `home_hero`: the purchases' `at` and `price`, not their
        // categories, discounts or the traits).
        let layout = match req.placements.as_slice() {
            [one] => self.placement(one).map_or(&self.layout, |p| &p.layout),
            _ => &self.layout,
        };
        let profile = profile.map(|p| decode_with(layout, p)).transpose()?;
        self.validate(&req)?;
        Ok(self.decide_for(&req, profile.as_ref(), now_ms, &|_| 0, layout.id()))
    }

    /// Request-level limits (checked by [`Engine::decide_json`]; adapters calling [`Engine::decide`]
    /// directly should call it too).
    pub fn validate(&self, req: &DecideRequest) -> Result<(), ErrorResponse> {
        if req.placements.len() > MAX_PLACEMENTS_PER_REQUEST {
            return Err(ErrorResponse::new(
                "invalid_request",
                format!(
                    "{} placements requested; the limit is {MAX_PLACEMENTS_PER_REQUEST}",
                    req.placements.len()
                ),
            ));
        }
        Ok(())
    }

    /// Build the evaluation context: request slots computed for the paths this bundle uses. Slots
    /// borrow from `req`; the few values that have to be computed (decoded query parameters, a
    /// lowercased host, the date, typed attributes) go to `scratch`, which the caller keeps alive.
    pub fn context<'a>(
        &self,
        req: &'a DecideRequest,
        profile: Option<&'a Profile>,
        now_ms: i64,
        scratch: &'a mut Vec<Value>,
    ) -> (EvalContext<'a>, Vec<(PathKey, String)>) {
        let found = self.resolve(req);
        self.context_for(req, &found, profile, now_ms, scratch)
    }

    /// The requested placements, looked up once per decision (`None` for an unknown name).
    fn resolve(&self, req: &DecideRequest) -> Vec<Option<&Placement>> {
        req.placements
            .iter()
            .take(MAX_PLACEMENTS_PER_REQUEST)
            .map(|name| self.placement(name))
            .collect()
    }

    fn placement(&self, name: &str) -> Option<&Placement> {
        self.index
            .get(name)
            .and_then(|&i| self.placements.get(usize::from(i)))
    }

    fn context_for<'a>(
        &self,
        req: &'a DecideRequest,
        found: &[Option<&Placement>],
        profile: Option<&'a Profile>,
        now_ms: i64,
        scratch: &'a mut Vec<Value>,
    ) -> (EvalContext<'a>, Vec<(PathKey, String)>) {
        // Only the slots the requested placements read (the rest stay missing, never read).
        let mut needed = vec![false; self.program.slot_keys.len()];
        for pl in found.iter().flatten() {
            for &s in &pl.slots {
                if let Some(n) = needed.get_mut(s as usize) {
                    *n = true;
                }
            }
        }
        let (slots, mut problems) = RequestView::new(req, now_ms).slots(
            &self.program.slot_keys,
            &needed,
            &self.schema,
            scratch,
        );
        if let Some(p) = profile {
            // Like request inputs, a profile value only other placements read gets no note: the notes
            // then do not depend on whether the snapshot was decoded for these placements alone.
            problems.extend(
                p.problems
                    .iter()
                    .filter(|(k, _)| {
                        found
                            .iter()
                            .flatten()
                            .any(|pl| pl.experiences.iter().any(|e| e.reads.contains(k)))
                    })
                    .cloned(),
            );
        }
        (
            EvalContext {
                slots,
                profile,
                now: now_ms,
            },
            problems,
        )
    }

    fn consent_denied(&self, req: &DecideRequest, profile: Option<&Profile>) -> bool {
        let from_req = req.consent.as_ref().and_then(|c| c.personalization);
        let from_profile = profile.and_then(Profile::personalization);
        if from_req == Some(false) || from_profile == Some(false) {
            return true;
        }
        self.require_consent && from_req != Some(true) && from_profile != Some(true)
    }

    /// Decide every requested placement. Total: never fails, never panics.
    pub fn decide(
        &self,
        req: &DecideRequest,
        profile: Option<&Profile>,
        now_ms: i64,
    ) -> DecideResponse<'_> {
        self.decide_for(req, profile, now_ms, &|_| 0, self.layout.id())
    }

    /// Whether the bundle's rules can read request header `name` (lower-case): only the headers its
    /// schema allow-lists reach them, so an adapter may leave the others out of `context.headers` (the
    /// server keeps the User-Agent it uses for device detection out of it unless the rules read it).
    pub fn reads_header(&self, name: &str) -> bool {
        self.schema.headers.iter().any(|h| h == name)
    }

    /// Whether any experience has a `frequency_cap` (adapters skip exposure counting otherwise).
    pub fn has_frequency_caps(&self) -> bool {
        !self.capped.is_empty()
    }

    /// [`Engine::decide`] with exposure counts an adapter keeps outside the snapshot (experience id, times
    /// served), added to the snapshot's `exposures` for frequency caps. They apply even without a profile.
    /// Generic over the id's type so an adapter passes the list it keeps (`(String, u32)`,
    /// `(CompactString, u32)`, ...) without building a list of borrows per request.
    pub fn decide_with_counts<S: AsRef<str>>(
        &self,
        req: &DecideRequest,
        profile: Option<&Profile>,
        now_ms: i64,
        counts: &[(S, u32)],
    ) -> DecideResponse<'_> {
        let served = |id: &str| -> u32 {
            counts
                .iter()
                .filter(|(e, _)| e.as_ref() == id)
                .fold(0u32, |a, (_, n)| a.saturating_add(*n))
        };
        self.decide_for(req, profile, now_ms, &served, self.layout.id())
    }

    /// Decide with a profile decoded by the layout with id `layout`.
    fn decide_for(
        &self,
        req: &DecideRequest,
        profile: Option<&Profile>,
        now_ms: i64,
        counts: &dyn Fn(&str) -> u32,
        layout: u64,
    ) -> DecideResponse<'_> {
        // A profile decoded for another bundle's schema would be read at the wrong indexes: ignore it.
        let foreign = profile.is_some_and(|p| p.layout_id != layout);
        let profile = if foreign { None } else { profile };
        let denied = self.consent_denied(req, profile);
        let visible = if denied { None } else { profile };
        let found = self.resolve(req);
        let mut scratch = Vec::new();
        let (ctx, problems) = self.context_for(req, &found, visible, now_ms, &mut scratch);
        let mut ev = Evaluator::new(&self.program, &ctx);
        let decisions = req
            .placements
            .iter()
            .zip(&found)
            .map(|(name, &placement)| {
                let gate = Gate {
                    denied,
                    problems: &problems,
                    counts,
                };
                self.decide_placement(name, placement, req, &ctx, &mut ev, &gate)
            })
            .collect();
        let mut notes: Vec<String> = problems.into_iter().map(|(_, n)| n).collect();
        if foreign {
            notes.push("the profile was decoded for another bundle and was ignored".into());
        }
        DecideResponse {
            bundle: Cow::Borrowed(&self.bundle),
            decisions,
            notes,
            rendered: RenderedBundle::of(&self.bundle, &self.bundle_json),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn decide_placement<'e>(
        &'e self,
        name: &str,
        placement: Option<&'e Placement>,
        req: &DecideRequest,
        ctx: &EvalContext<'_>,
        ev: &mut Evaluator<'_>,
        gate: &Gate<'_>,
    ) -> Decision<'e> {
        let explain = req.explain;
        let Some(p) = placement else {
            return Decision {
                placement: Cow::Owned(name.into()),
                experience: None,
                variant: None,
                content: Cow::Owned(null_raw()),
                reason: Reason::UnknownPlacement,
                rendered: Rendered::default(),
                trace: explain.then(|| Trace {
                    summary: format!("the bundle has no placement `{name}`"),
                    ..Trace::default()
                }),
            };
        };
        let visitor = req.visitor_id.as_deref().filter(|v| !v.is_empty());
        let mut trace = explain.then(Trace::default);
        for &h in &p.holdouts {
            let Some(hd) = self.holdouts.get(h as usize) else {
                continue;
            };
            let b = visitor.map(|v| bucket_after(&hd.draw, v));
            let held = b.is_some_and(|b| b < hd.buckets);
            if let Some(t) = trace.as_mut() {
                t.holdouts.push(HoldoutTrace {
                    holdout: String::from(&*hd.id),
                    bucket: b,
                    held_out: held,
                });
            }
            if held {
                if let Some(t) = trace.as_mut() {
                    t.summary = format!(
                        "the visitor is in holdout `{}` (bucket {} < {})",
                        hd.id,
                        b.unwrap_or(0),
                        hd.buckets
                    );
                }
                return default_content(p, Reason::Holdout, trace);
            }
        }
        for e in &p.experiences {
            let mut buckets = Buckets::default();
            let outcome =
                self.try_experience(e, visitor, ctx, ev, gate, &mut buckets, trace.is_some());
            match outcome {
                Ok(vi) => {
                    let Some(v) = e.variants.get(vi) else {
                        continue;
                    };
                    if let Some(t) = trace.as_mut() {
                        t.experiences.push(ExperienceTrace {
                            experience: String::from(&*e.id),
                            outcome: Outcome::Selected,
                            detail: None,
                            buckets,
                        });
                        let why_variant = match buckets.variant {
                            Some(b) => {
                                let lo = vi
                                    .checked_sub(1)
                                    .and_then(|i| e.variants.get(i))
                                    .map_or(0, |x| x.bound);
                                format!(
                                    "; variant `{}` owns buckets {lo}..{} and the visitor drew {b}",
                                    v.id, v.bound
                                )
                            }
                            None => format!("; `{}` is its only variant", v.id),
                        };
                        t.summary = format!(
                            "`{}` is the first eligible experience (priority {}, then file order){why_variant}",
                            e.id, e.priority
                        );
                    }
                    return rendered(
                        Decision {
                            placement: Cow::Borrowed(&p.id),
                            experience: Some(Cow::Borrowed(&e.id)),
                            variant: Some(Cow::Borrowed(&v.id)),
                            content: Cow::Borrowed(&v.content),
                            reason: Reason::Matched,
                            trace,
                            rendered: Rendered::default(),
                        },
                        &v.json,
                    );
                }
                Err((outcome, detail)) => {
                    if let Some(t) = trace.as_mut() {
                        t.experiences.push(ExperienceTrace {
                            experience: String::from(&*e.id),
                            outcome,
                            detail,
                            buckets,
                        });
                    }
                }
            }
        }
        if let Some(t) = trace.as_mut() {
            t.summary = if p.experiences.is_empty() {
                "the placement has no experiences: default content".into()
            } else {
                "no experience matched: default content".into()
            };
        }
        default_content(p, Reason::Default, trace)
    }

    #[allow(clippy::too_many_arguments)]
    fn try_experience(
        &self,
        e: &Experience,
        visitor: Option<&str>,
        ctx: &EvalContext<'_>,
        ev: &mut Evaluator<'_>,
        gate: &Gate<'_>,
        buckets: &mut Buckets,
        explain: bool,
    ) -> Result<usize, (Outcome, Option<String>)> {
        let Gate {
            denied,
            problems,
            counts,
        } = *gate;
        if e.start.is_some_and(|s| ctx.now < s) || e.end.is_some_and(|x| ctx.now >= x) {
            let detail = explain.then(|| {
                let f = |t: Option<i64>| t.map_or("-".to_string(), crate::time::format_timestamp);
                format!(
                    "scheduled {} to {}, now is {}",
                    f(e.start),
                    f(e.end),
                    crate::time::format_timestamp(ctx.now)
                )
            });
            return Err((Outcome::NotScheduled, detail));
        }
        if e.requires_visitor_id && visitor.is_none() {
            return Err((
                Outcome::VisitorIdRequired,
                explain.then(|| "the request has no visitor id".to_string()),
            ));
        }
        if e.personalized && denied {
            return Err((
                Outcome::ConsentRequired,
                explain.then(|| {
                    "the audience reads the profile and personalization consent is denied"
                        .to_string()
                }),
            ));
        }
        if !problems.is_empty() {
            if let Some((_, note)) = problems.iter().find(|(k, _)| e.reads.contains(k)) {
                return Err((Outcome::InputError, Some(note.clone())));
            }
        }
        if let Some((i, cap)) = e.cap {
            let from_profile = ctx
                .profile
                .and_then(|p| p.exposures.get(i as usize).copied());
            let extra: u32 = counts(&e.id);
            let seen = from_profile.unwrap_or(0).saturating_add(extra);
            if (from_profile.is_some() || extra > 0) && seen >= cap {
                return Err((
                    Outcome::FrequencyCapped,
                    explain.then(|| format!("seen {seen} times, cap {cap}")),
                ));
            }
        }
        if let Some(root) = e.audience {
            if !ev.test(root) {
                let detail = explain.then(|| {
                    let (op, seg) = ev.first_false(root);
                    let text = self.program.source_of(op);
                    match seg.and_then(|s| self.program.segment_names.get(s as usize)) {
                        Some(s) => format!("`{text}` was false (in segment `{s}`)"),
                        None => format!("`{text}` was false"),
                    }
                });
                return Err((Outcome::AudienceFalse, detail));
            }
        }
        let Some(visitor) = visitor else {
            // Only single-variant, full-traffic, ungrouped experiences get here (checked at load).
            return Ok(0);
        };
        if let Some((g, member, count)) = e.exclusion {
            let (group, b) = match self.groups.get(g as usize) {
                Some((name, draw)) => (&**name, bucket_after(draw, visitor)),
                None => ("", bucket(&self.salt, Draw::Exclusion, "", visitor)),
            };
            buckets.exclusion = Some(b);
            let owner = (u64::from(b) * u64::from(count.max(1)) / u64::from(BUCKETS)) as u32;
            if owner != member {
                return Err((Outcome::ExclusionGroup, explain.then(|| format!("group `{group}` gives this visitor to member {owner}, this is member {member}"))));
            }
        }
        if e.traffic < BUCKETS {
            let b = bucket_after(&e.traffic_draw, visitor);
            buckets.traffic = Some(b);
            if b >= e.traffic {
                return Err((
                    Outcome::TrafficExcluded,
                    explain.then(|| {
                        format!(
                            "traffic admits buckets below {}, the visitor drew {b}",
                            e.traffic
                        )
                    }),
                ));
            }
        }
        if e.variants.len() <= 1 {
            return Ok(0);
        }
        let b = bucket_after(&e.variant_draw, visitor);
        buckets.variant = Some(b);
        Ok(e.variants
            .iter()
            .position(|v| b < v.bound)
            .unwrap_or(e.variants.len() - 1))
    }

    /// Allocation preview: decide for `visitors` synthetic visitor ids (`visitor-0` …) with the same
    /// request context and profile, and count outcomes per placement, experience and variant.
    pub fn simulate(
        &self,
        base: &DecideRequest,
        profile: Option<&Profile>,
        now_ms: i64,
        visitors: u32,
    ) -> Simulation {
        let mut counts: BTreeMap<(String, String, String), u64> = BTreeMap::new();
        let mut req = base.clone();
        req.explain = false;
        if req.placements.is_empty() {
            req.placements = self.placement_ids().map(crate::wire::Text::from).collect();
        }
        for i in 0..visitors {
            req.visitor_id = Some(crate::wire::Text::from(format!("visitor-{i}")));
            let r = self.decide(&req, profile, now_ms);
            for d in r.decisions {
                let placement = d.placement.to_string();
                let key = match d.reason {
                    Reason::Matched => (
                        placement,
                        d.experience.as_deref().map_or("", |s| &**s).to_string(),
                        d.variant.as_deref().map_or("", |s| &**s).to_string(),
                    ),
                    Reason::Holdout => (placement, "(holdout)".into(), String::new()),
                    Reason::Default => (placement, "(default)".into(), String::new()),
                    Reason::UnknownPlacement => {
                        (placement, "(unknown placement)".into(), String::new())
                    }
                };
                *counts.entry(key).or_default() += 1;
            }
        }
        let rows = counts
            .into_iter()
            .map(|((placement, experience, variant), n)| SimulationRow {
                placement,
                experience,
                variant,
                visitors: n,
                share: if visitors == 0 {
                    0.0
                } else {
                    n as f64 / f64::from(visitors)
                },
            })
            .collect();
        Simulation { visitors, rows }
    }
}

/// Result of [`Engine::simulate`].
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Simulation {
    /// Number of synthetic visitors.
    pub visitors: u32,
    /// One row per placement/experience/variant outcome.
    pub rows: Vec<SimulationRow>,
}

/// One outcome's share.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SimulationRow {
    /// Placement id.
    pub placement: String,
    /// Experience id, or `(default)` / `(holdout)`.
    pub experience: String,
    /// Variant id (empty for default/holdout).
    pub variant: String,
    /// Visitors with this outcome.
    pub visitors: u64,
    /// Share of all visitors, 0–1.
    pub share: f64,
}
