//! Semantic checks of a bundle definition: expressions parsed and type-checked, references resolved,
//! segment cycles found, allocation settings validated, limits enforced. Produces a [`CheckedBundle`] only
//! when there is no error; every error is reported either way.

use super::def::{content_hash, BundleDef};
use super::source::Locs;
use crate::diagnostic::{did_you_mean, Diagnostic, Diagnostics, Span};
use crate::expr::check::{check_condition, CheckError, Env, TExpr};
use crate::expr::syntax::{self, SyntaxError};

/// Most placements in a bundle.
pub const MAX_PLACEMENTS: usize = 1_000;
/// Most experiences in a bundle.
pub const MAX_EXPERIENCES: usize = 20_000;
/// Most segments in a bundle.
pub const MAX_SEGMENTS: usize = 10_000;
/// Most variants in an experience.
pub const MAX_VARIANTS: usize = 100;
/// Longest chain of segments referencing segments.
pub const MAX_SEGMENT_DEPTH: usize = 32;

/// A bundle whose every definition is valid.
#[derive(Debug)]
pub struct CheckedBundle {
    /// The definitions.
    pub def: BundleDef,
    /// `sha256:<hex>` content hash.
    pub hash: String,
    /// Typed segment conditions, by segment index.
    pub segments: Vec<TExpr>,
    /// Typed audiences, by placement then experience (`None` = everyone).
    pub audiences: Vec<Vec<Option<TExpr>>>,
    /// Regexes referenced by index from the typed trees.
    pub regexes: Vec<regex::Regex>,
    /// Non-fatal findings.
    pub warnings: Vec<Diagnostic>,
}

struct Ctx<'a> {
    locs: &'a Locs,
    diags: &'a mut Diagnostics,
}

impl Ctx<'_> {
    fn at(&mut self, d: Diagnostic, loc: &str) {
        let span = self.locs.get(loc);
        let d = if span.is_some() {
            d.at(span)
        } else {
            d.location(loc)
        };
        self.diags.push(d);
    }

    #[allow(clippy::too_many_arguments)]
    fn expr_error(
        &mut self,
        loc: &str,
        text: &str,
        code: &str,
        msg: String,
        start: usize,
        end: usize,
        help: Option<String>,
    ) {
        let d = Diagnostic::error(code, msg).maybe_help(help);
        match self.locs.get(loc) {
            Some(base) => {
                // Offsets map 1:1 into the file for literal strings; for basic strings with escapes the
                // column may be off by the escapes before it, never out of the string.
                let s = base.sub(start, end.max(start + 1));
                let s = Span {
                    end: s.end.min(base.end.max(s.start + 1)),
                    ..s
                };
                self.diags.push(d.at(Some(s)));
            }
            None => {
                let frag = text.get(start..end).unwrap_or("");
                self.diags
                    .push(d.location(format!("{loc}, at `{frag}` (byte {start})")));
            }
        }
    }
}

fn parse_check(ctx: &mut Ctx<'_>, loc: &str, text: &str, env: &mut Env<'_>) -> Option<TExpr> {
    let ast = match syntax::parse(text) {
        Ok(a) => a,
        Err(SyntaxError {
            message,
            start,
            end,
            help,
        }) => {
            ctx.expr_error(loc, text, "syntax", message, start, end, help);
            return None;
        }
    };
    match check_condition(&ast, env) {
        Ok(t) => Some(t),
        Err(errors) => {
            for CheckError {
                code,
                message,
                start,
                end,
                help,
            } in errors
            {
                ctx.expr_error(loc, text, code, message, start, end, help);
            }
            None
        }
    }
}

/// Check `def`. Diagnostics go to `diags`; `None` when any error was found.
pub fn check(def: BundleDef, locs: &Locs, diags: &mut Diagnostics) -> Option<CheckedBundle> {
    let mut ctx = Ctx { locs, diags };
    // From source, a missing id or version was already reported with its position by the reader.
    if def.id.is_empty() && locs.is_empty() {
        ctx.at(
            Diagnostic::error("missing-key", "the bundle has no id"),
            "bundle.id",
        );
    }
    if def.version.is_empty() && locs.is_empty() {
        ctx.at(
            Diagnostic::error("missing-key", "the bundle has no version"),
            "bundle.version",
        );
    }
    if def.placements.len() > MAX_PLACEMENTS {
        ctx.at(
            Diagnostic::error(
                "limit",
                format!(
                    "{} placements; the limit is {MAX_PLACEMENTS}",
                    def.placements.len()
                ),
            ),
            "placements",
        );
    }
    let total: usize = def.placements.iter().map(|p| p.experiences.len()).sum();
    if total > MAX_EXPERIENCES {
        ctx.at(
            Diagnostic::error(
                "limit",
                format!("{total} experiences; the limit is {MAX_EXPERIENCES}"),
            ),
            "placements",
        );
    }
    if def.segments.len() > MAX_SEGMENTS {
        ctx.at(
            Diagnostic::error(
                "limit",
                format!(
                    "{} segments; the limit is {MAX_SEGMENTS}",
                    def.segments.len()
                ),
            ),
            "segments",
        );
    }

    let segment_names: Vec<String> = def.segments.iter().map(|s| s.id.clone()).collect();
    let area_names: Vec<String> = def.areas.iter().map(|a| a.id.clone()).collect();
    let mut regexes = Vec::new();
    let mut env = Env {
        schema: &def.schema,
        segments: &segment_names,
        areas: &area_names,
        regexes: &mut regexes,
    };

    let mut segments = Vec::with_capacity(def.segments.len());
    let mut seg_ok = true;
    for s in &def.segments {
        let loc = format!("segments.{}.when", s.id);
        match parse_check(&mut ctx, &loc, &s.when, &mut env) {
            Some(t) => segments.push(t),
            None => {
                seg_ok = false;
                segments.push(TExpr {
                    kind: crate::expr::check::TKind::Const(crate::expr::check::Const::Bool(false)),
                    ty: crate::schema::Type::Bool,
                    start: 0,
                    end: 0,
                });
            }
        }
    }
    if seg_ok {
        check_segment_graph(&mut ctx, &def, &segments);
    }

    let mut audiences = Vec::with_capacity(def.placements.len());
    let mut exp_ids: Vec<&str> = Vec::new();
    for p in &def.placements {
        let mut row = Vec::with_capacity(p.experiences.len());
        for (i, e) in p.experiences.iter().enumerate() {
            let loc = format!("placements.{}.experiences[{i}]", p.id);
            if !e.id.is_empty() {
                if exp_ids.contains(&e.id.as_str()) {
                    ctx.at(Diagnostic::error("duplicate", format!("experience id `{}` is used twice", e.id)).help("experience ids are unique in a bundle: they key allocation and reports"), &format!("{loc}.id"));
                }
                exp_ids.push(&e.id);
            }
            row.push(
                e.audience
                    .as_ref()
                    .and_then(|a| parse_check(&mut ctx, &format!("{loc}.audience"), a, &mut env)),
            );
            // From source, a missing `content`/`variants` was already reported with its position.
            if e.variants.is_empty() && locs.is_empty() {
                ctx.at(
                    Diagnostic::error(
                        "missing-key",
                        format!("experience `{}` has no variants", e.id),
                    ),
                    &loc,
                );
            }
            if e.variants.len() > MAX_VARIANTS {
                ctx.at(
                    Diagnostic::error(
                        "limit",
                        format!(
                            "experience `{}` has {} variants; the limit is {MAX_VARIANTS}",
                            e.id,
                            e.variants.len()
                        ),
                    ),
                    &loc,
                );
            }
            if !e.variants.is_empty() && e.variants.iter().all(|v| v.weight == 0) {
                ctx.at(
                    Diagnostic::error(
                        "invalid-value",
                        format!("every variant of `{}` has weight 0", e.id),
                    )
                    .help("give at least one variant a positive weight"),
                    &format!("{loc}.variants[0]"),
                );
            }
            if !e.requires_visitor_id
                && (e.variants.len() > 1 || e.traffic < 100.0 || e.exclusion_group.is_some())
            {
                ctx.at(
                    Diagnostic::error("invalid-value", format!("experience `{}` serves visitors without an id but needs a random draw", e.id))
                        .help("`requires_visitor_id = false` needs one variant, `traffic = 100` and no `exclusion_group`: without an id there is nothing to hash"),
                    &format!("{loc}.id"),
                );
            }
            if let (Some(s), Some(en), true) = (&e.start, &e.end, locs.is_empty()) {
                if crate::time::parse_timestamp(s)
                    .zip(crate::time::parse_timestamp(en))
                    .is_some_and(|(a, b)| a >= b)
                {
                    ctx.at(
                        Diagnostic::error("invalid-value", "the schedule ends before it starts"),
                        &format!("{loc}.schedule.end"),
                    );
                }
            }
            for (k, v) in [("start", &e.start), ("end", &e.end)] {
                if let Some(v) = v {
                    if crate::time::parse_timestamp(v).is_none() {
                        ctx.at(
                            Diagnostic::error(
                                "invalid-value",
                                format!("`{v}` is not an RFC 3339 timestamp"),
                            ),
                            &format!("{loc}.schedule.{k}"),
                        );
                    }
                }
            }
        }
        audiences.push(row);
    }
    let placement_ids: Vec<&str> = def.placements.iter().map(|p| p.id.as_str()).collect();
    for h in &def.holdouts {
        for (i, p) in h.placements.iter().enumerate() {
            if !placement_ids.contains(&p.as_str()) {
                ctx.at(
                    Diagnostic::error(
                        "unknown-placement",
                        format!("holdout `{}` names unknown placement `{p}`", h.id),
                    )
                    .maybe_help(did_you_mean(p, placement_ids.iter().copied())),
                    &format!("holdouts.{}.placements[{i}]", h.id),
                );
            }
        }
    }
    for a in &def.areas {
        if a.polygon.len() < 3 {
            ctx.at(
                Diagnostic::error(
                    "invalid-value",
                    format!("area `{}` needs at least 3 points", a.id),
                ),
                &format!("areas.{}.polygon", a.id),
            );
        }
    }
    let mut warnings = Vec::new();
    let mut groups: Vec<(&str, usize, String)> = Vec::new();
    for p in &def.placements {
        for (i, e) in p.experiences.iter().enumerate() {
            if let Some(g) = &e.exclusion_group {
                match groups.iter_mut().find(|(n, _, _)| n == g) {
                    Some(x) => x.1 += 1,
                    None => groups.push((
                        g,
                        1,
                        format!("placements.{}.experiences[{i}].exclusion_group", p.id),
                    )),
                }
            }
        }
    }
    for (g, n, loc) in groups {
        if n == 1 {
            let d = Diagnostic::warning(
                "lonely-group",
                format!("exclusion group `{g}` has a single experience"),
            )
            .help("a group only matters with two or more experiences; check the name for a typo");
            let d = d.at(locs.get(&loc));
            warnings.push(d.clone());
            ctx.diags.push(d);
        }
    }
    if ctx.diags.has_errors() {
        return None;
    }
    let hash = content_hash(&def);
    Some(CheckedBundle {
        def,
        hash,
        segments,
        audiences,
        regexes,
        warnings,
    })
}

/// Reject cycles among segments and chains deeper than [`MAX_SEGMENT_DEPTH`].
fn check_segment_graph(ctx: &mut Ctx<'_>, def: &BundleDef, segments: &[TExpr]) {
    let deps: Vec<Vec<u16>> = segments.iter().map(TExpr::segments).collect();
    // 0 = unvisited, 1 = on stack, 2 = done; depth memo for done nodes.
    let mut state = vec![0u8; segments.len()];
    let mut depth = vec![0usize; segments.len()];
    let mut reported = false;
    for start in 0..segments.len() {
        if state.get(start).copied() != Some(0) {
            continue;
        }
        // Iterative DFS: a hostile bundle cannot overflow the stack.
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        let mut path: Vec<usize> = vec![start];
        if let Some(s) = state.get_mut(start) {
            *s = 1;
        }
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            let kids = deps.get(node).map(Vec::as_slice).unwrap_or(&[]);
            if let Some(&k) = kids.get(*next) {
                *next += 1;
                let k = k as usize;
                match state.get(k).copied() {
                    Some(0) => {
                        if let Some(s) = state.get_mut(k) {
                            *s = 1;
                        }
                        stack.push((k, 0));
                        path.push(k);
                    }
                    Some(1) if !reported => {
                        reported = true;
                        let from = path.iter().position(|&p| p == k).unwrap_or(0);
                        let cycle: Vec<String> = path
                            .get(from..)
                            .unwrap_or(&[])
                            .iter()
                            .chain(std::iter::once(&k))
                            .filter_map(|&i| def.segments.get(i))
                            .map(|s| format!("`{}`", s.id))
                            .collect();
                        let name = def
                            .segments
                            .get(k)
                            .map(|s| s.id.clone())
                            .unwrap_or_default();
                        ctx.at(
                            Diagnostic::error(
                                "segment-cycle",
                                format!(
                                    "segments reference each other in a cycle: {}",
                                    cycle.join(" → ")
                                ),
                            )
                            .help("a segment cannot depend on itself; break the cycle"),
                            &format!("segments.{name}.when"),
                        );
                    }
                    _ => {}
                }
            } else {
                let d = 1 + kids
                    .iter()
                    .filter_map(|&k| depth.get(k as usize))
                    .copied()
                    .max()
                    .unwrap_or(0);
                if let Some(x) = depth.get_mut(node) {
                    *x = d;
                }
                if let Some(s) = state.get_mut(node) {
                    *s = 2;
                }
                stack.pop();
                path.pop();
            }
        }
    }
    if !reported {
        for (i, d) in depth.iter().enumerate() {
            if *d > MAX_SEGMENT_DEPTH {
                let name = def
                    .segments
                    .get(i)
                    .map(|s| s.id.clone())
                    .unwrap_or_default();
                ctx.at(Diagnostic::error("limit", format!("segment `{name}` nests {d} segments deep; the limit is {MAX_SEGMENT_DEPTH}")), &format!("segments.{name}.when"));
                break;
            }
        }
    }
}
