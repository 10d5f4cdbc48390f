//! The naive reference evaluator: walks the typed tree, recomputes every path from the raw request on
//! each read, re-evaluates segments without memoizing, scans whole event tables. Slow on purpose and
//! simple enough to trust; property tests check the compiled evaluator against it.
//!
//! Leaf semantics (comparison, arithmetic, string predicates, distance) are the shared functions of
//! [`super::program`], which are the specification of those operators and are unit-tested on their own.

use super::check::{Agg, CmpOp, Const, FieldRef, TExpr, TKind};
use super::program::{arith, compare, days_between, haversine_km, string_op, Area};
use crate::context::{EventTable, Profile, RequestView};
use crate::schema::{PathKey, Schema};
use crate::value::{Val, Value};
use crate::wire::DecideRequest;

/// Everything the reference evaluator reads.
pub struct RefEnv<'a> {
    /// The raw request.
    pub req: &'a DecideRequest,
    /// Schema of the bundle.
    pub schema: &'a Schema,
    /// Profile, `None` when absent or consent denied.
    pub profile: Option<&'a Profile>,
    /// Unix ms.
    pub now: i64,
    /// Typed segment conditions, by index.
    pub segments: &'a [TExpr],
    /// Regex table.
    pub regexes: &'a [regex::Regex],
    /// Area table.
    pub areas: &'a [Area],
    /// Consent flag names by index.
    pub consent_names: &'a [String],
}

/// An owned result.
#[derive(Clone, Debug, PartialEq)]
pub enum RVal {
    /// Missing.
    Missing,
    /// A context value.
    V(Value),
    /// A duration.
    Dur(i64),
}

impl RVal {
    fn val(&self) -> Val<'_> {
        match self {
            RVal::Missing => Val::Missing,
            RVal::V(v) => v.as_val(),
            RVal::Dur(d) => Val::Dur(*d),
        }
    }

    fn from_val(v: Val<'_>) -> RVal {
        match v {
            Val::Missing => RVal::Missing,
            Val::Bool(b) => RVal::V(Value::Bool(b)),
            Val::Num(n) => RVal::V(Value::Num(n)),
            Val::Str(s) => RVal::V(Value::Str(s.into())),
            Val::Time(t) => RVal::V(Value::Time(t)),
            Val::Dur(d) => RVal::Dur(d),
            Val::Ver(v) => RVal::V(Value::Ver(v)),
            Val::StrList(l) => RVal::V(Value::StrList(l.into())),
            Val::NumList(l) => RVal::V(Value::NumList(l.into())),
            Val::Geo(a, b) => RVal::V(Value::Geo(a, b)),
        }
    }

    /// True only for boolean true.
    pub fn truthy(&self) -> bool {
        matches!(self, RVal::V(Value::Bool(true)))
    }
}

fn b(x: bool) -> RVal {
    RVal::V(Value::Bool(x))
}

/// Evaluate `t`; `row` is the current event inside a predicate.
pub fn eval(t: &TExpr, env: &RefEnv<'_>, row: Option<(&EventTable, usize)>) -> RVal {
    match &t.kind {
        TKind::Const(c) => match c {
            Const::Bool(x) => b(*x),
            Const::Num(n) => RVal::V(Value::Num(*n)),
            Const::Str(s) => RVal::V(Value::Str(s.as_str().into())),
            Const::Time(x) => RVal::V(Value::Time(*x)),
            Const::Dur(x) => RVal::Dur(*x),
            Const::Ver(v) => RVal::V(Value::Ver(*v)),
            Const::StrList(l) => RVal::V(Value::StrList(
                l.iter().map(|s| s.as_str().into()).collect(),
            )),
            Const::NumList(l) => RVal::V(Value::NumList(l.clone().into())),
        },
        TKind::Path(key) => {
            let v = match key {
                PathKey::Trait(i) => env
                    .profile
                    .and_then(|p| p.traits.get(*i as usize).cloned())
                    .unwrap_or_default(),
                PathKey::ProfileSegments => {
                    env.profile.map(|p| p.segments.clone()).unwrap_or_default()
                }
                PathKey::Consent(name) => {
                    let i = env.consent_names.iter().position(|c| c == name);
                    env.profile
                        .and_then(|p| i.and_then(|i| p.consent.get(i).copied().flatten()))
                        .map_or(Value::Missing, Value::Bool)
                }
                PathKey::Events(_) => Value::Bool(false),
                other => {
                    RequestView::new(env.req, env.now)
                        .value(other, env.schema)
                        .0
                }
            };
            if v.is_present() {
                RVal::V(v)
            } else {
                RVal::Missing
            }
        }
        TKind::Field(f) => match row {
            None => RVal::Missing,
            Some((tab, r)) => field(tab, r, *f),
        },
        TKind::Segment(s) => match env.segments.get(*s as usize) {
            Some(seg) => b(eval(seg, env, None).truthy()),
            None => b(false),
        },
        TKind::Not(a) => b(!eval(a, env, row).truthy()),
        TKind::Neg(a) => match eval(a, env, row) {
            RVal::V(Value::Num(n)) => RVal::V(Value::Num(-n)),
            _ => RVal::Missing,
        },
        TKind::And(x, y) => b(eval(x, env, row).truthy() && eval(y, env, row).truthy()),
        TKind::Or(x, y) => b(eval(x, env, row).truthy() || eval(y, env, row).truthy()),
        TKind::Cmp(op, x, y) => b(compare(
            *op,
            eval(x, env, row).val(),
            eval(y, env, row).val(),
        )),
        TKind::Arith(op, x, y) => {
            let (l, r) = (eval(x, env, row), eval(y, env, row));
            RVal::from_val(arith(*op, l.val(), r.val()))
        }
        TKind::In {
            needle,
            haystack,
            negate,
        } => {
            let n = eval(needle, env, row);
            let h = eval(haystack, env, row);
            let found = match (n.val(), h.val()) {
                (Val::Str(s), Val::StrList(l)) => l.iter().any(|x| **x == *s),
                (Val::Num(x), Val::NumList(l)) => l.contains(&x),
                _ => return b(false),
            };
            b(found != *negate)
        }
        TKind::Str(op, x, y) => match (eval(x, env, row).val(), eval(y, env, row).val()) {
            (Val::Str(p), Val::Str(q)) => b(string_op(*op, p, q)),
            _ => b(false),
        },
        TKind::Matches(a, re) => match (eval(a, env, row).val(), env.regexes.get(*re as usize)) {
            (Val::Str(s), Some(re)) => b(re.is_match(s)),
            _ => b(false),
        },
        TKind::Exists(a) => b(eval(a, env, row) != RVal::Missing),
        TKind::DaysSince(a) => match eval(a, env, row) {
            RVal::V(Value::Time(t)) => RVal::V(Value::Num(days_between(t, env.now))),
            _ => RVal::Missing,
        },
        TKind::Distance(g, lat, lon) => match eval(g, env, row) {
            RVal::V(Value::Geo(a, c)) => RVal::V(Value::Num(haversine_km(a, c, *lat, *lon))),
            _ => RVal::Missing,
        },
        TKind::InArea(g, area) => match (eval(g, env, row), env.areas.get(*area as usize)) {
            (RVal::V(Value::Geo(a, c)), Some(ar)) => b(ar.contains(a, c)),
            _ => b(false),
        },
        TKind::Query(q) => {
            static EMPTY: EventTable = EventTable::EMPTY;
            let tab = env
                .profile
                .and_then(|p| p.events.get(q.kind as usize))
                .unwrap_or(&EMPTY);
            let rows: Vec<usize> = (0..tab.len())
                .filter(|&r| {
                    let in_window = match q.within {
                        Some(w) => tab
                            .at
                            .get(r)
                            .is_some_and(|&at| at >= env.now.saturating_sub(w)),
                        None => true,
                    };
                    in_window
                        && q.filters
                            .iter()
                            .all(|f| eval(f, env, Some((tab, r))).truthy())
                })
                .collect();
            match &q.agg {
                Agg::Count => RVal::V(Value::Num(rows.len() as f64)),
                Agg::Sum(f) | Agg::Avg(f) => {
                    let xs: Vec<f64> = rows
                        .iter()
                        .filter_map(|&r| match field(tab, r, Some(*f)) {
                            RVal::V(Value::Num(x)) => Some(x),
                            _ => None,
                        })
                        .collect();
                    let sum: f64 = xs.iter().fold(0.0, |a, x| a + x);
                    match q.agg {
                        Agg::Sum(_) => RVal::V(Value::Num(sum)),
                        _ if xs.is_empty() => RVal::Missing,
                        _ => RVal::V(Value::Num(sum / xs.len() as f64)),
                    }
                }
                Agg::Min(f) | Agg::Max(f) => {
                    let min = matches!(q.agg, Agg::Min(_));
                    let mut best = RVal::Missing;
                    for &r in &rows {
                        let v = field(tab, r, *f);
                        if v == RVal::Missing {
                            continue;
                        }
                        if best == RVal::Missing
                            || compare(if min { CmpOp::Lt } else { CmpOp::Gt }, v.val(), best.val())
                        {
                            best = v;
                        }
                    }
                    best
                }
                Agg::Any(p) => b(rows.iter().any(|&r| eval(p, env, Some((tab, r))).truthy())),
                Agg::All(p) => b(rows.iter().all(|&r| eval(p, env, Some((tab, r))).truthy())),
                Agg::Last(f) | Agg::First(f) => {
                    let pick = if matches!(q.agg, Agg::Last(_)) {
                        rows.last()
                    } else {
                        rows.first()
                    };
                    match (pick, f) {
                        (None, _) => RVal::Missing,
                        (Some(_), None) => b(true),
                        (Some(&r), Some(f)) => field(tab, r, *f),
                    }
                }
            }
        }
    }
}

fn field(tab: &EventTable, r: usize, f: FieldRef) -> RVal {
    let v = match f {
        None => tab.at.get(r).copied().map_or(Value::Missing, Value::Time),
        Some(f) => tab.get_value(f, r),
    };
    if v.is_present() {
        RVal::V(v)
    } else {
        RVal::Missing
    }
}
