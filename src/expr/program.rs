//! Compiled conditions: a flat arena of [`Op`]s and the evaluator that runs them.
//!
//! Every audience and segment of a bundle is compiled into one arena; an expression is the index of its root
//! op. Children are indexes, constants live in side tables, paths are precomputed slot numbers. Evaluation
//! is a match on a small enum: no allocation, no dynamic dispatch, no string lookups. Each op is evaluated
//! at most once per visit, event queries visit each event at most once per query, and segment results are
//! memoized per decision, so the cost is bounded by the bundle size times the events kept per kind.

use super::check::{Agg, ArithOp, CmpOp, Const, FieldRef, Query, StrOp, TExpr, TKind};
use crate::context::{EventTable, Profile};
use crate::schema::PathKey;
use crate::value::{Val, Value, Version};

/// One operation. Operand fields are indexes into the program's arena or side tables.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// Boolean constant.
    Bool(bool),
    /// Number constant.
    Num(f64),
    /// String constant (index into `strs`).
    Str(u32),
    /// Timestamp constant.
    Time(i64),
    /// Duration constant.
    Dur(i64),
    /// Version constant.
    Ver(Version),
    /// String-list constant, sorted (index into `str_lists`).
    StrList(u32),
    /// Number-list constant, sorted (index into `num_lists`).
    NumList(u32),
    /// Request-derived slot.
    Slot(u16),
    /// Profile trait.
    Trait(u16),
    /// Profile CDP segments.
    ProfileSegments,
    /// Profile consent flag.
    Consent(u16),
    /// Field of the current event.
    Field(u16),
    /// `at` of the current event.
    At,
    /// Bundle segment (memoized).
    Segment(u16),
    /// `!a`
    Not(u32),
    /// `-a`
    Neg(u32),
    /// All of `args[first..first+len]`.
    And(u32, u32),
    /// Any of `args[first..first+len]`.
    Or(u32, u32),
    /// Comparison.
    Cmp(CmpOp, u32, u32),
    /// Arithmetic.
    Arith(ArithOp, u32, u32),
    /// `a in <sorted constant list>` (binary search); bool = negated.
    InConst(u32, u32, bool),
    /// `a in <list value>` (linear); bool = negated.
    In(u32, u32, bool),
    /// String predicate.
    Str2(StrOp, u32, u32),
    /// Regex match (index into `regexes`).
    Matches(u32, u32),
    /// Presence test.
    Exists(u32),
    /// Days from a timestamp to now.
    DaysSince(u32),
    /// Great-circle distance from a point.
    Distance(u32, f64, f64),
    /// Point in a named polygon.
    InArea(u32, u16),
    /// Event query (index into `queries`).
    Query(u32),
    /// Peephole forms of `x <op> <number constant>` (constant folded to the right, operator flipped if
    /// needed). Same semantics as `Cmp`; they skip evaluating the constant and the type dispatch. Measured:
    /// the per-event filter `price > 250` went from ~6.5 to ~3 ns per event.
    CmpNum(CmpOp, u32, f64),
    /// `x == "s"` (`false` flag) or `x != "s"` (`true` flag) with a string constant.
    StrEq(u32, u32, bool),
    /// `CmpNum` whose operand is an event field, read inline.
    FieldCmpNum(CmpOp, u16, f64),
    /// `StrEq` whose operand is an event field, read inline.
    FieldStrEq(u16, u32, bool),
    /// `CmpNum` whose operand is a request slot, read inline.
    SlotCmpNum(CmpOp, u16, f64),
    /// `CmpNum` whose operand is the [`Op::Distance`] at this index: `distance_km(geo, …) < 2`, the form
    /// geofences take. Far points are answered from a lower bound of the distance without the haversine
    /// (see [`distance_for_cmp`]); the result is the same. Measured with callgrind on `rules/retail`, the
    /// haversine was ~350 instructions of every decide for visitors nowhere near the store.
    DistCmpNum(CmpOp, u32, f64),
    /// `StrEq` whose operand is a request slot, read inline.
    SlotStrEq(u16, u32, bool),
    /// `InConst` of a request slot in a string-list constant (index into `str_lists`); bool = negated.
    SlotInStrs(u16, u32, bool),
    /// `InConst` of a request slot in a number-list constant (index into `num_lists`); bool = negated.
    SlotInNums(u16, u32, bool),
    /// `Str2` of a request slot and a string constant (index into `strs`).
    SlotStr2(StrOp, u16, u32),
    /// `Cmp` of a request slot and a version constant.
    SlotCmpVer(CmpOp, u16, Version),
}

fn flip(op: CmpOp) -> CmpOp {
    match op {
        CmpOp::Lt => CmpOp::Gt,
        CmpOp::Le => CmpOp::Ge,
        CmpOp::Gt => CmpOp::Lt,
        CmpOp::Ge => CmpOp::Le,
        other => other,
    }
}

/// A compiled event query.
#[derive(Clone, Debug, PartialEq)]
pub struct QueryOp {
    /// Event kind.
    pub kind: u16,
    /// Window length (ms) back from now.
    pub within: Option<i64>,
    /// Root of the ANDed filters.
    pub filter: Option<u32>,
    /// Aggregate.
    pub agg: AggOp,
}

/// Compiled aggregate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum AggOp {
    /// Count.
    Count,
    /// Sum of a field.
    Sum(u16),
    /// Mean of a field.
    Avg(u16),
    /// Minimum.
    Min(FieldRef),
    /// Maximum.
    Max(FieldRef),
    /// Any event satisfies the predicate root.
    Any(u32),
    /// All events satisfy it.
    All(u32),
    /// Field of the newest match (`None` = presence only).
    Last(Option<FieldRef>),
    /// Field of the oldest match.
    First(Option<FieldRef>),
}

/// A polygon of (latitude, longitude) vertices with its bounding box.
#[derive(Clone, Debug, PartialEq)]
pub struct Area {
    /// Vertices, implicitly closed.
    pub points: Vec<(f64, f64)>,
    /// (min lat, min lon, max lat, max lon)
    pub bbox: (f64, f64, f64, f64),
}

impl Area {
    /// Build from vertices.
    pub fn new(points: Vec<(f64, f64)>) -> Area {
        let mut bbox = (
            f64::INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NEG_INFINITY,
        );
        for &(la, lo) in &points {
            bbox = (
                bbox.0.min(la),
                bbox.1.min(lo),
                bbox.2.max(la),
                bbox.3.max(lo),
            );
        }
        Area { points, bbox }
    }

    /// Even-odd ray casting; points on the bounding box edge count as inside the box check only.
    pub fn contains(&self, lat: f64, lon: f64) -> bool {
        let (a, b, c, d) = self.bbox;
        if lat < a || lon < b || lat > c || lon > d {
            return false;
        }
        let mut inside = false;
        let n = self.points.len();
        for i in 0..n {
            let (Some(&(yi, xi)), Some(&(yj, xj))) =
                (self.points.get(i), self.points.get((i + n - 1) % n))
            else {
                continue;
            };
            if (yi > lat) != (yj > lat) && lon < (xj - xi) * (lat - yi) / (yj - yi) + xi {
                inside = !inside;
            }
        }
        inside
    }
}

/// Source position of an op, for explanations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpSpan {
    /// Index into `texts`.
    pub text: u32,
    /// Byte start within that text.
    pub start: u32,
    /// Byte end.
    pub end: u32,
}

/// All compiled conditions of a bundle.
#[derive(Clone, Debug, Default)]
pub struct Program {
    /// The op arena.
    pub ops: Vec<Op>,
    /// Source span of each op.
    pub spans: Vec<OpSpan>,
    /// Child lists of `And`/`Or`.
    pub args: Vec<u32>,
    /// String constants.
    pub strs: Vec<Box<str>>,
    /// Sorted string-list constants.
    pub str_lists: Vec<Box<[std::sync::Arc<str>]>>,
    /// Sorted number-list constants.
    pub num_lists: Vec<Box<[f64]>>,
    /// Event queries.
    pub queries: Vec<QueryOp>,
    /// Compiled regexes.
    pub regexes: Vec<regex::Regex>,
    /// Named areas.
    pub areas: Vec<Area>,
    /// Root op of each bundle segment.
    pub segment_roots: Vec<u32>,
    /// Name of each bundle segment.
    pub segment_names: Vec<Box<str>>,
    /// Request-derived paths, by slot.
    pub slot_keys: Vec<PathKey>,
    /// Expression source texts.
    pub texts: Vec<Box<str>>,
    /// Consent flag names by index.
    pub consent_names: Vec<Box<str>>,
    /// Static cost estimate of each segment compiled so far (see [`Program::cost`]).
    pub segment_costs: Vec<u32>,
}

impl Program {
    /// Compile a checked expression whose source is `text`; returns its root.
    pub fn add(&mut self, t: &TExpr, text: &str) -> u32 {
        let text_id = u32::try_from(self.texts.len()).unwrap_or(u32::MAX);
        self.texts.push(text.into());
        self.compile(t, text_id)
    }

    /// Static cost estimate used to order `&&`/`||` operands cheapest first. Evaluation is pure, so the order
    /// cannot change a result, only how much work short-circuiting saves: on the generated 1,000-experience
    /// bundle, audiences like `<event query> && geo.country == "KR"` mostly fail on the cheap operand.
    /// Units are roughly "one op"; an event query scales with the events it scans, estimated at 30.
    pub fn cost(&self, t: &TExpr) -> u32 {
        const ROWS: u32 = 30;
        let c = |x: &TExpr| self.cost(x);
        match &t.kind {
            TKind::Const(_) | TKind::Path(_) | TKind::Field(_) => 1,
            // A segment is memoized: later references are cheap, but the first one pays its cost.
            TKind::Segment(s) => self
                .segment_costs
                .get(*s as usize)
                .copied()
                .unwrap_or(50)
                .min(200),
            TKind::Not(a) | TKind::Neg(a) | TKind::Exists(a) | TKind::DaysSince(a) => 1 + c(a),
            TKind::And(a, b)
            | TKind::Or(a, b)
            | TKind::Cmp(_, a, b)
            | TKind::Arith(_, a, b)
            | TKind::Str(_, a, b) => 1 + c(a) + c(b),
            TKind::In {
                needle, haystack, ..
            } => 2 + c(needle) + c(haystack),
            TKind::Matches(a, _) => 10 + c(a),
            TKind::Distance(a, _, _) => 5 + c(a),
            TKind::InArea(a, _) => 10 + c(a),
            TKind::Query(q) => {
                let per_row: u32 = q.filters.iter().map(c).sum::<u32>()
                    + match &q.agg {
                        Agg::Any(p) | Agg::All(p) => c(p),
                        _ => 1,
                    };
                10u32.saturating_add(ROWS.saturating_mul(per_row))
            }
        }
    }

    fn push(&mut self, op: Op, t: &TExpr, text: u32) -> u32 {
        let id = u32::try_from(self.ops.len()).unwrap_or(u32::MAX);
        self.ops.push(op);
        self.spans.push(OpSpan {
            text,
            start: t.start,
            end: t.end,
        });
        id
    }

    fn slot(&mut self, key: &PathKey) -> u16 {
        if let Some(i) = self.slot_keys.iter().position(|k| k == key) {
            return crate::schema::index16(i);
        }
        self.slot_keys.push(key.clone());
        crate::schema::index16(self.slot_keys.len() - 1)
    }

    fn flatten<'t>(t: &'t TExpr, and: bool, out: &mut Vec<&'t TExpr>) {
        match &t.kind {
            TKind::And(a, b) if and => {
                Self::flatten(a, and, out);
                Self::flatten(b, and, out);
            }
            TKind::Or(a, b) if !and => {
                Self::flatten(a, and, out);
                Self::flatten(b, and, out);
            }
            _ => out.push(t),
        }
    }

    fn compile(&mut self, t: &TExpr, text: u32) -> u32 {
        let op = match &t.kind {
            TKind::Const(c) => match c {
                Const::Bool(b) => Op::Bool(*b),
                Const::Num(n) => Op::Num(*n),
                Const::Str(s) => {
                    self.strs.push(s.as_str().into());
                    Op::Str(u32::try_from(self.strs.len() - 1).unwrap_or(0))
                }
                Const::Time(x) => Op::Time(*x),
                Const::Dur(x) => Op::Dur(*x),
                Const::Ver(v) => Op::Ver(*v),
                Const::StrList(l) => {
                    self.str_lists
                        .push(l.iter().map(|s| s.as_str().into()).collect());
                    Op::StrList(u32::try_from(self.str_lists.len() - 1).unwrap_or(0))
                }
                Const::NumList(l) => {
                    self.num_lists.push(l.clone().into());
                    Op::NumList(u32::try_from(self.num_lists.len() - 1).unwrap_or(0))
                }
            },
            TKind::Path(key) => match key {
                PathKey::Trait(i) => Op::Trait(*i),
                PathKey::ProfileSegments => Op::ProfileSegments,
                PathKey::Consent(name) => {
                    let i = self
                        .consent_names
                        .iter()
                        .position(|c| **c == **name)
                        .unwrap_or(usize::MAX);
                    Op::Consent(u16::try_from(i).unwrap_or(u16::MAX))
                }
                // An event list used as a value (only inside a query) has no scalar value.
                PathKey::Events(_) => Op::Bool(false),
                other => Op::Slot(self.slot(other)),
            },
            TKind::Field(None) => Op::At,
            TKind::Field(Some(f)) => Op::Field(*f),
            TKind::Segment(s) => Op::Segment(*s),
            TKind::Not(a) => Op::Not(self.compile(a, text)),
            TKind::Neg(a) => Op::Neg(self.compile(a, text)),
            TKind::And(..) | TKind::Or(..) => {
                let and = matches!(t.kind, TKind::And(..));
                let mut parts = Vec::new();
                Self::flatten(t, and, &mut parts);
                // Cheapest first; a stable sort keeps source order among equals.
                parts.sort_by_cached_key(|p| self.cost(p));
                let kids: Vec<u32> = parts.iter().map(|p| self.compile(p, text)).collect();
                let first = u32::try_from(self.args.len()).unwrap_or(0);
                let len = u32::try_from(kids.len()).unwrap_or(0);
                self.args.extend(kids);
                if and {
                    Op::And(first, len)
                } else {
                    Op::Or(first, len)
                }
            }
            TKind::Cmp(op, a, b) => {
                // Put a constant on the right.
                let (op, a, b) = match (&a.kind, &b.kind) {
                    (TKind::Const(_), k) if !matches!(k, TKind::Const(_)) => (flip(*op), b, a),
                    _ => (*op, a, b),
                };
                match &b.kind {
                    TKind::Const(Const::Num(c)) => {
                        let x = self.compile(a, text);
                        match self.ops.get(x as usize) {
                            Some(Op::Field(f)) => Op::FieldCmpNum(op, *f, *c),
                            Some(Op::Slot(i)) => Op::SlotCmpNum(op, *i, *c),
                            Some(Op::Distance(..)) => Op::DistCmpNum(op, x, *c),
                            _ => Op::CmpNum(op, x, *c),
                        }
                    }
                    TKind::Const(Const::Str(c)) if matches!(op, CmpOp::Eq | CmpOp::Ne) => {
                        let x = self.compile(a, text);
                        self.strs.push(c.as_str().into());
                        let si = u32::try_from(self.strs.len() - 1).unwrap_or(0);
                        let neg = op == CmpOp::Ne;
                        match self.ops.get(x as usize) {
                            Some(Op::Field(f)) => Op::FieldStrEq(*f, si, neg),
                            Some(Op::Slot(i)) => Op::SlotStrEq(*i, si, neg),
                            _ => Op::StrEq(x, si, neg),
                        }
                    }
                    _ => {
                        let (a, b) = (self.compile(a, text), self.compile(b, text));
                        match (self.ops.get(a as usize), self.ops.get(b as usize)) {
                            (Some(Op::Slot(i)), Some(Op::Ver(v))) => Op::SlotCmpVer(op, *i, *v),
                            _ => Op::Cmp(op, a, b),
                        }
                    }
                }
            }
            TKind::Arith(op, a, b) => {
                let (a, b) = (self.compile(a, text), self.compile(b, text));
                Op::Arith(*op, a, b)
            }
            TKind::In {
                needle,
                haystack,
                negate,
            } => {
                let n = self.compile(needle, text);
                let h = self.compile(haystack, text);
                match (self.ops.get(n as usize), self.ops.get(h as usize)) {
                    (Some(Op::Slot(i)), Some(Op::StrList(l))) => Op::SlotInStrs(*i, *l, *negate),
                    (Some(Op::Slot(i)), Some(Op::NumList(l))) => Op::SlotInNums(*i, *l, *negate),
                    (_, Some(Op::StrList(_) | Op::NumList(_))) => Op::InConst(n, h, *negate),
                    _ => Op::In(n, h, *negate),
                }
            }
            TKind::Str(op, a, b) => {
                let (a, b) = (self.compile(a, text), self.compile(b, text));
                match (self.ops.get(a as usize), self.ops.get(b as usize)) {
                    (Some(Op::Slot(i)), Some(Op::Str(si))) => Op::SlotStr2(*op, *i, *si),
                    _ => Op::Str2(*op, a, b),
                }
            }
            TKind::Matches(a, re) => Op::Matches(self.compile(a, text), *re),
            TKind::Exists(a) => Op::Exists(self.compile(a, text)),
            TKind::DaysSince(a) => Op::DaysSince(self.compile(a, text)),
            TKind::Distance(g, lat, lon) => Op::Distance(self.compile(g, text), *lat, *lon),
            TKind::InArea(g, a) => Op::InArea(self.compile(g, text), *a),
            TKind::Query(q) => {
                let qop = self.compile_query(q, text);
                self.queries.push(qop);
                Op::Query(u32::try_from(self.queries.len() - 1).unwrap_or(0))
            }
        };
        self.push(op, t, text)
    }

    fn compile_query(&mut self, q: &Query, text: u32) -> QueryOp {
        let filter = match q.filters.as_slice() {
            [] => None,
            [one] => Some(self.compile(one, text)),
            many => {
                let kids: Vec<u32> = many.iter().map(|f| self.compile(f, text)).collect();
                let first = u32::try_from(self.args.len()).unwrap_or(0);
                let len = u32::try_from(kids.len()).unwrap_or(0);
                self.args.extend(kids);
                let id = u32::try_from(self.ops.len()).unwrap_or(u32::MAX);
                self.ops.push(Op::And(first, len));
                let span = many.first().map(|f| OpSpan {
                    text,
                    start: f.start,
                    end: many.last().map_or(f.end, |l| l.end),
                });
                self.spans.push(span.unwrap_or(OpSpan {
                    text,
                    start: 0,
                    end: 0,
                }));
                Some(id)
            }
        };
        let agg = match &q.agg {
            Agg::Count => AggOp::Count,
            Agg::Sum(f) => AggOp::Sum(*f),
            Agg::Avg(f) => AggOp::Avg(*f),
            Agg::Min(f) => AggOp::Min(*f),
            Agg::Max(f) => AggOp::Max(*f),
            Agg::Any(p) => AggOp::Any(self.compile(p, text)),
            Agg::All(p) => AggOp::All(self.compile(p, text)),
            Agg::Last(f) => AggOp::Last(*f),
            Agg::First(f) => AggOp::First(*f),
        };
        QueryOp {
            kind: q.kind,
            within: q.within,
            filter,
            agg,
        }
    }

    /// Source text of op `id`.
    pub fn source_of(&self, id: u32) -> &str {
        let Some(s) = self.spans.get(id as usize) else {
            return "";
        };
        self.texts
            .get(s.text as usize)
            .and_then(|t| t.get(s.start as usize..s.end as usize))
            .unwrap_or("")
    }
}

/// What an evaluation reads.
#[derive(Clone, Debug)]
pub struct EvalContext<'a> {
    /// Request-derived values by slot (borrowed from the request or the decision's scratch values).
    pub slots: Vec<Val<'a>>,
    /// The profile, or `None` when absent or consent is denied.
    pub profile: Option<&'a Profile>,
    /// Unix ms.
    pub now: i64,
}

static EMPTY_TABLE: EventTable = EventTable::EMPTY;
static MISSING: Value = Value::Missing;

/// Mean Earth radius (IUGG), km.
pub const EARTH_RADIUS_KM: f64 = 6371.0088;

/// Haversine great-circle distance in km.
pub fn haversine_km(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = (lat2 - lat1).to_radians();
    let dl = (lon2 - lon1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_KM * a.sqrt().min(1.0).asin()
}

/// The distance from (`lat1`, `lon1`) to (`lat2`, `lon2`) for a comparison with `c`: exactly
/// [`haversine_km`], or a smaller number that is still greater than `c` when the points are surely
/// farther apart than `c` — so every comparison with `c` answers as it would with the exact distance.
///
/// The bound: a great circle changes latitude by at most its length over the radius, so the distance
/// is at least `R·|Δlatitude|` (radians). Used with a margin of 0.1 % (the haversine's rounding is far
/// below that, even near antipodes where `asin` is steep), and only for latitudes in [-90, 90], where
/// the haversine's longitude term cannot be negative, and finite longitudes; anything else takes the
/// exact path.
pub fn distance_for_cmp(lat1: f64, lon1: f64, lat2: f64, lon2: f64, c: f64) -> f64 {
    let valid = |l: f64| (-90.0..=90.0).contains(&l);
    // A NaN or infinite longitude makes the haversine NaN, which compares false with everything.
    if valid(lat1) && valid(lat2) && lon1.is_finite() && lon2.is_finite() {
        let bound = EARTH_RADIUS_KM * (lat2 - lat1).abs().to_radians() * 0.999;
        if bound > c && bound.is_finite() {
            return bound;
        }
    }
    haversine_km(lat1, lon1, lat2, lon2)
}

/// String equality without libc's `memcmp` (see [`crate::context::scan::eq_bytes`]): the strings rules
/// compare are a few bytes long. Measured with callgrind on the generated bundle's ten placements: memcmp's
/// set-up was 11k of 171k instructions.
#[inline]
fn str_eq(a: &str, b: &str) -> bool {
    crate::context::scan::eq_bytes(a.as_bytes(), b.as_bytes())
}

/// `s` in a sorted string-list constant. Short lists: a linear scan beats binary search (no branchy
/// midpoint chasing).
#[inline]
fn in_strs(s: &str, l: &[std::sync::Arc<str>]) -> bool {
    if l.len() <= 8 {
        l.iter().any(|x| str_eq(x, s))
    } else {
        l.binary_search_by(|x| (**x).cmp(s)).is_ok()
    }
}

/// `x` in a sorted number-list constant.
#[inline]
fn in_nums(x: f64, l: &[f64]) -> bool {
    l.binary_search_by(|y| y.total_cmp(&x)).is_ok()
}

/// How a query reads its filter per row.
#[derive(Clone, Copy)]
enum RowFilter<'p> {
    All,
    Num(CmpOp, u16, f64),
    Str(u16, &'p str, bool),
    Op(u32),
}

/// [`compare`] of two numbers, inline: a NaN compares false under every operator, `!=` included.
#[inline(always)]
fn cmp_num(op: CmpOp, x: f64, c: f64) -> bool {
    match op {
        CmpOp::Lt => x < c,
        CmpOp::Le => x <= c,
        CmpOp::Gt => x > c,
        CmpOp::Ge => x >= c,
        CmpOp::Eq => x == c,
        CmpOp::Ne => x != c && !x.is_nan() && !c.is_nan(),
    }
}

/// Comparison semantics shared by both evaluators: values of different kinds, or a missing value, compare
/// false under every operator (including `!=`).
pub fn compare(op: CmpOp, a: Val<'_>, b: Val<'_>) -> bool {
    use std::cmp::Ordering;
    let ord: Option<Ordering> = match (a, b) {
        (Val::Str(x), Val::Str(y)) if matches!(op, CmpOp::Eq | CmpOp::Ne) => {
            return str_eq(x, y) == (op == CmpOp::Eq);
        }
        (Val::Num(x), Val::Num(y)) => x.partial_cmp(&y),
        (Val::Str(x), Val::Str(y)) => Some(x.cmp(y)),
        (Val::Bool(x), Val::Bool(y)) => {
            return match op {
                CmpOp::Eq => x == y,
                CmpOp::Ne => x != y,
                _ => false,
            }
        }
        (Val::Time(x), Val::Time(y)) | (Val::Dur(x), Val::Dur(y)) => Some(x.cmp(&y)),
        (Val::Ver(x), Val::Ver(y)) => Some(x.cmp(&y)),
        _ => None,
    };
    let Some(o) = ord else { return false };
    match op {
        CmpOp::Eq => o == Ordering::Equal,
        CmpOp::Ne => o != Ordering::Equal,
        CmpOp::Lt => o == Ordering::Less,
        CmpOp::Le => o != Ordering::Greater,
        CmpOp::Gt => o == Ordering::Greater,
        CmpOp::Ge => o != Ordering::Less,
    }
}

/// Arithmetic semantics shared by both evaluators: missing or mismatched operands, division by zero and
/// overflow give a missing value.
pub fn arith<'a>(op: ArithOp, a: Val<'a>, b: Val<'a>) -> Val<'a> {
    let num = |n: f64| {
        if n.is_finite() {
            Val::Num(n)
        } else {
            Val::Missing
        }
    };
    match (op, a, b) {
        (ArithOp::Add, Val::Num(x), Val::Num(y)) => num(x + y),
        (ArithOp::Sub, Val::Num(x), Val::Num(y)) => num(x - y),
        (ArithOp::Mul, Val::Num(x), Val::Num(y)) => num(x * y),
        (ArithOp::Div, Val::Num(x), Val::Num(y)) => {
            if y == 0.0 {
                Val::Missing
            } else {
                num(x / y)
            }
        }
        (ArithOp::Sub, Val::Time(x), Val::Time(y)) => {
            x.checked_sub(y).map_or(Val::Missing, Val::Dur)
        }
        (ArithOp::Add, Val::Time(x), Val::Dur(y)) | (ArithOp::Add, Val::Dur(y), Val::Time(x)) => {
            x.checked_add(y).map_or(Val::Missing, Val::Time)
        }
        (ArithOp::Sub, Val::Time(x), Val::Dur(y)) => {
            x.checked_sub(y).map_or(Val::Missing, Val::Time)
        }
        (ArithOp::Add, Val::Dur(x), Val::Dur(y)) => x.checked_add(y).map_or(Val::Missing, Val::Dur),
        (ArithOp::Sub, Val::Dur(x), Val::Dur(y)) => x.checked_sub(y).map_or(Val::Missing, Val::Dur),
        _ => Val::Missing,
    }
}

/// String predicate semantics shared by both evaluators.
pub fn string_op(op: StrOp, a: &str, b: &str) -> bool {
    match op {
        StrOp::Contains => a.contains(b),
        StrOp::StartsWith => a.starts_with(b),
        StrOp::EndsWith => a.ends_with(b),
        StrOp::EqualsIgnoreCase => a
            .chars()
            .flat_map(char::to_lowercase)
            .eq(b.chars().flat_map(char::to_lowercase)),
    }
}

/// Days between two instants, fractional.
pub fn days_between(from: i64, to: i64) -> f64 {
    (to as f64 - from as f64) / 86_400_000.0
}

/// The fast evaluator. Create one per decision; segment results are memoized in it.
pub struct Evaluator<'a> {
    prog: &'a Program,
    ctx: &'a EvalContext<'a>,
    /// 0 = not yet evaluated, 1 = false, 2 = true.
    seg_memo: Vec<u8>,
    row: Option<(&'a EventTable, usize)>,
}

impl<'a> Evaluator<'a> {
    /// An evaluator over `prog` reading `ctx`.
    pub fn new(prog: &'a Program, ctx: &'a EvalContext<'a>) -> Evaluator<'a> {
        Evaluator {
            prog,
            ctx,
            seg_memo: vec![0; prog.segment_roots.len()],
            row: None,
        }
    }

    /// Whether op `id` is true: always `eval(id).truthy()`, but boolean ops are answered here without
    /// building a [`Val`] (returned through memory) for every operand. Boolean ops are matched only here and
    /// value ops only in [`Evaluator::eval`], each of which hands the other's to it: both matches list
    /// every op, so the compiler keeps them complete. Measured with callgrind on the generated bundle's ten
    /// placements, together with the slot forms and the inline query filters: 165.8k → 113.4k instructions.
    pub fn test(&mut self, id: u32) -> bool {
        let prog = self.prog;
        let Some(op) = prog.ops.get(id as usize) else {
            return false;
        };
        let slot = |i: u16| self.ctx.slots.get(i as usize).copied();
        match op {
            Op::Bool(b) => *b,
            Op::Segment(s) => self.segment(*s),
            Op::Not(a) => !self.test(*a),
            Op::And(first, len) => {
                let Some(kids) = prog.args.get(*first as usize..(*first + *len) as usize) else {
                    return false;
                };
                kids.iter().all(|&k| self.test(k))
            }
            Op::Or(first, len) => {
                let Some(kids) = prog.args.get(*first as usize..(*first + *len) as usize) else {
                    return false;
                };
                kids.iter().any(|&k| self.test(k))
            }
            Op::Cmp(op, a, b) => {
                let (x, y) = (self.eval(*a), self.eval(*b));
                compare(*op, x, y)
            }
            Op::CmpNum(op, a, c) => match self.eval(*a) {
                Val::Num(x) => cmp_num(*op, x, *c),
                _ => false,
            },
            Op::StrEq(a, si, neg) => match (self.eval(*a), prog.strs.get(*si as usize)) {
                (Val::Str(x), Some(c)) => str_eq(x, c) != *neg,
                _ => false,
            },
            Op::FieldCmpNum(op, f, c) => self
                .row
                .and_then(|(t, r)| t.num(*f, r))
                .is_some_and(|x| cmp_num(*op, x, *c)),
            Op::FieldStrEq(f, si, neg) => match (self.row, prog.strs.get(*si as usize)) {
                (Some((t, r)), Some(c)) => t.str_is(*f, r, c).is_some_and(|eq| eq != *neg),
                _ => false,
            },
            Op::SlotCmpNum(op, i, c) => match slot(*i) {
                Some(Val::Num(x)) => cmp_num(*op, x, *c),
                _ => false,
            },
            Op::DistCmpNum(op, d, c) => match prog.ops.get(*d as usize) {
                Some(&Op::Distance(g, lat, lon)) => match self.eval(g) {
                    Val::Geo(a, b) => cmp_num(*op, distance_for_cmp(a, b, lat, lon, *c), *c),
                    _ => false,
                },
                _ => false,
            },
            Op::SlotStrEq(i, si, neg) => match (slot(*i), prog.strs.get(*si as usize)) {
                (Some(Val::Str(x)), Some(c)) => str_eq(x, c) != *neg,
                _ => false,
            },
            Op::SlotCmpVer(op, i, v) => match slot(*i) {
                Some(x @ Val::Ver(_)) => compare(*op, x, Val::Ver(*v)),
                _ => false,
            },
            Op::SlotInStrs(i, l, neg) => match (slot(*i), prog.str_lists.get(*l as usize)) {
                (Some(Val::Str(s)), Some(l)) => in_strs(s, l) != *neg,
                _ => false,
            },
            Op::SlotInNums(i, l, neg) => match (slot(*i), prog.num_lists.get(*l as usize)) {
                (Some(Val::Num(x)), Some(l)) => in_nums(x, l) != *neg,
                _ => false,
            },
            Op::SlotStr2(op, i, si) => match (slot(*i), prog.strs.get(*si as usize)) {
                (Some(Val::Str(x)), Some(y)) => string_op(*op, x, y),
                _ => false,
            },
            Op::InConst(n, h, neg) => match (self.eval(*n), self.eval(*h)) {
                (Val::Str(s), Val::StrList(l)) => in_strs(s, l) != *neg,
                (Val::Num(x), Val::NumList(l)) => in_nums(x, l) != *neg,
                _ => false,
            },
            Op::In(n, h, neg) => {
                let found = match (self.eval(*n), self.eval(*h)) {
                    (Val::Str(s), Val::StrList(l)) => l.iter().any(|x| str_eq(x, s)),
                    (Val::Num(x), Val::NumList(l)) => l.contains(&x),
                    _ => return false,
                };
                found != *neg
            }
            Op::Str2(op, a, b) => match (self.eval(*a), self.eval(*b)) {
                (Val::Str(x), Val::Str(y)) => string_op(*op, x, y),
                _ => false,
            },
            Op::Matches(a, re) => match (self.eval(*a), prog.regexes.get(*re as usize)) {
                (Val::Str(s), Some(re)) => re.is_match(s),
                _ => false,
            },
            Op::Exists(a) => !matches!(self.eval(*a), Val::Missing),
            Op::InArea(g, area) => match (self.eval(*g), prog.areas.get(*area as usize)) {
                (Val::Geo(a, b), Some(ar)) => ar.contains(a, b),
                _ => false,
            },
            // Value ops (a query may answer a boolean, a trait may hold one).
            Op::Num(_)
            | Op::Str(_)
            | Op::Time(_)
            | Op::Dur(_)
            | Op::Ver(_)
            | Op::StrList(_)
            | Op::NumList(_)
            | Op::Slot(_)
            | Op::Trait(_)
            | Op::ProfileSegments
            | Op::Consent(_)
            | Op::Field(_)
            | Op::At
            | Op::Neg(_)
            | Op::Arith(..)
            | Op::DaysSince(_)
            | Op::Distance(..)
            | Op::Query(_) => self.eval(id).truthy(),
        }
    }

    /// Value of segment `s`.
    pub fn segment(&mut self, s: u16) -> bool {
        match self.seg_memo.get(s as usize) {
            Some(1) => return false,
            Some(2) => return true,
            _ => {}
        }
        let Some(&root) = self.prog.segment_roots.get(s as usize) else {
            return false;
        };
        // Segments are evaluated outside any event row, even when referenced inside a `where`.
        let saved = self.row.take();
        let r = self.test(root);
        self.row = saved;
        if let Some(m) = self.seg_memo.get_mut(s as usize) {
            *m = if r { 2 } else { 1 };
        }
        r
    }

    fn table(&self, kind: u16) -> &'a EventTable {
        self.ctx
            .profile
            .and_then(|p| p.events.get(kind as usize))
            .unwrap_or(&EMPTY_TABLE)
    }

    /// Evaluate op `id`.
    pub fn eval(&mut self, id: u32) -> Val<'a> {
        let prog = self.prog;
        let Some(op) = prog.ops.get(id as usize) else {
            return Val::Missing;
        };
        match op {
            Op::Bool(b) => Val::Bool(*b),
            Op::Num(n) => Val::Num(*n),
            Op::Str(i) => prog
                .strs
                .get(*i as usize)
                .map_or(Val::Missing, |s| Val::Str(s)),
            Op::Time(t) => Val::Time(*t),
            Op::Dur(d) => Val::Dur(*d),
            Op::Ver(v) => Val::Ver(*v),
            Op::StrList(i) => prog
                .str_lists
                .get(*i as usize)
                .map_or(Val::Missing, |l| Val::StrList(l)),
            Op::NumList(i) => prog
                .num_lists
                .get(*i as usize)
                .map_or(Val::Missing, |l| Val::NumList(l)),
            Op::Slot(i) => self
                .ctx
                .slots
                .get(*i as usize)
                .copied()
                .unwrap_or(Val::Missing),
            Op::Trait(i) => self
                .ctx
                .profile
                .and_then(|p| p.traits.get(*i as usize))
                .unwrap_or(&MISSING)
                .as_val(),
            Op::ProfileSegments => self
                .ctx
                .profile
                .map_or(Val::Missing, |p| p.segments.as_val()),
            Op::Consent(i) => self
                .ctx
                .profile
                .and_then(|p| p.consent.get(*i as usize).copied().flatten())
                .map_or(Val::Missing, Val::Bool),
            Op::Field(f) => self.row.map_or(Val::Missing, |(t, r)| t.get(*f, r)),
            Op::At => self
                .row
                .and_then(|(t, r)| t.at.get(r).copied())
                .map_or(Val::Missing, Val::Time),
            Op::Neg(a) => match self.eval(*a) {
                Val::Num(n) => Val::Num(-n),
                _ => Val::Missing,
            },
            Op::Arith(op, a, b) => {
                let (x, y) = (self.eval(*a), self.eval(*b));
                arith(*op, x, y)
            }
            // Boolean ops live in `test`, which never hands them back here.
            Op::Segment(_)
            | Op::Not(_)
            | Op::And(..)
            | Op::Or(..)
            | Op::Cmp(..)
            | Op::CmpNum(..)
            | Op::StrEq(..)
            | Op::FieldCmpNum(..)
            | Op::FieldStrEq(..)
            | Op::SlotCmpNum(..)
            | Op::DistCmpNum(..)
            | Op::SlotStrEq(..)
            | Op::SlotInStrs(..)
            | Op::SlotInNums(..)
            | Op::SlotStr2(..)
            | Op::SlotCmpVer(..)
            | Op::InConst(..)
            | Op::In(..)
            | Op::Str2(..)
            | Op::Matches(..)
            | Op::Exists(_)
            | Op::InArea(..) => Val::Bool(self.test(id)),
            Op::DaysSince(a) => match self.eval(*a) {
                Val::Time(t) => Val::Num(days_between(t, self.ctx.now)),
                _ => Val::Missing,
            },
            Op::Distance(g, lat, lon) => match self.eval(*g) {
                Val::Geo(a, b) => Val::Num(haversine_km(a, b, *lat, *lon)),
                _ => Val::Missing,
            },
            Op::Query(q) => match prog.queries.get(*q as usize) {
                Some(q) => self.query(q),
                None => Val::Missing,
            },
        }
    }

    /// Whether row `r` of `table` passes a query's filter.
    #[inline(always)]
    fn row_matches(&mut self, filter: RowFilter<'a>, table: &'a EventTable, r: usize) -> bool {
        match filter {
            RowFilter::All => true,
            RowFilter::Num(op, f, c) => table.num(f, r).is_some_and(|x| cmp_num(op, x, c)),
            RowFilter::Str(f, s, neg) => table.str_is(f, r, s).is_some_and(|eq| eq != neg),
            RowFilter::Op(f) => {
                self.row = Some((table, r));
                self.test(f)
            }
        }
    }

    fn query(&mut self, q: &'a QueryOp) -> Val<'a> {
        let prog = self.prog;
        let table = self.table(q.kind);
        let start = match q.within {
            Some(w) => {
                let from = self.ctx.now.saturating_sub(w);
                table.at.partition_point(|&t| t < from)
            }
            None => 0,
        };
        let saved = self.row;
        let n = table.at.len();
        // The one-comparison filters (`price > 50`, `category == "shoes"`) are read inline per row.
        let filter = match q.filter.map(|f| (f, prog.ops.get(f as usize))) {
            None => RowFilter::All,
            Some((_, Some(&Op::FieldCmpNum(op, f, c)))) => RowFilter::Num(op, f, c),
            Some((id, Some(&Op::FieldStrEq(f, si, neg)))) => match prog.strs.get(si as usize) {
                Some(s) => RowFilter::Str(f, s, neg),
                None => RowFilter::Op(id),
            },
            Some((id, _)) => RowFilter::Op(id),
        };
        let value = |r: usize, f: FieldRef| -> Val<'a> {
            match f {
                None => table.at.get(r).copied().map_or(Val::Missing, Val::Time),
                Some(f) => table.get(f, r),
            }
        };
        let result = match q.agg {
            AggOp::Count if matches!(filter, RowFilter::All) => Val::Num(f64::from(
                u32::try_from(n.saturating_sub(start)).unwrap_or(u32::MAX),
            )),
            AggOp::Count => {
                let mut c = 0u32;
                for r in start..n {
                    if self.row_matches(filter, table, r) {
                        c += 1;
                    }
                }
                Val::Num(f64::from(c))
            }
            AggOp::Sum(f) | AggOp::Avg(f) => {
                let (mut sum, mut c) = (0.0, 0u32);
                for r in start..n {
                    if self.row_matches(filter, table, r) {
                        if let Some(x) = table.num(f, r) {
                            sum += x;
                            c += 1;
                        }
                    }
                }
                match q.agg {
                    AggOp::Sum(_) => Val::Num(sum),
                    _ if c == 0 => Val::Missing,
                    _ => Val::Num(sum / f64::from(c)),
                }
            }
            AggOp::Min(f) | AggOp::Max(f) => {
                let want_min = matches!(q.agg, AggOp::Min(_));
                let mut best = Val::Missing;
                for r in start..n {
                    if !self.row_matches(filter, table, r) {
                        continue;
                    }
                    let v = value(r, f);
                    let better = match (best, v) {
                        (_, Val::Missing) => false,
                        (Val::Missing, _) => true,
                        (b, v) => compare(if want_min { CmpOp::Lt } else { CmpOp::Gt }, v, b),
                    };
                    if better {
                        best = v;
                    }
                }
                best
            }
            AggOp::Any(p) | AggOp::All(p) => {
                let any = matches!(q.agg, AggOp::Any(_));
                let mut result = !any;
                for r in start..n {
                    if !self.row_matches(filter, table, r) {
                        continue;
                    }
                    self.row = Some((table, r));
                    let ok = self.test(p);
                    if any && ok {
                        result = true;
                        break;
                    }
                    if !any && !ok {
                        result = false;
                        break;
                    }
                }
                Val::Bool(result)
            }
            AggOp::Last(f) | AggOp::First(f) => {
                let last = matches!(q.agg, AggOp::Last(_));
                let mut found = None;
                if last {
                    for r in (start..n).rev() {
                        if self.row_matches(filter, table, r) {
                            found = Some(r);
                            break;
                        }
                    }
                } else {
                    for r in start..n {
                        if self.row_matches(filter, table, r) {
                            found = Some(r);
                            break;
                        }
                    }
                }
                match (found, f) {
                    (None, _) => Val::Missing,
                    (Some(_), None) => Val::Bool(true),
                    (Some(r), Some(f)) => value(r, f),
                }
            }
        };
        self.row = saved;
        result
    }

    /// For a condition that evaluated false: the op whose source best explains why — the first false
    /// operand of an `&&`, followed down; the condition itself otherwise. The boolean tells whether it is
    /// inside segment (returned by name).
    pub fn first_false(&mut self, root: u32) -> (u32, Option<u16>) {
        let mut id = root;
        let mut seg = None;
        loop {
            match self.prog.ops.get(id as usize) {
                Some(Op::And(first, len)) => {
                    // Operands are stored cheapest first; explain in source order, as the author wrote them.
                    let mut kids: Vec<u32> = self
                        .prog
                        .args
                        .get(*first as usize..(*first + *len) as usize)
                        .unwrap_or(&[])
                        .to_vec();
                    kids.sort_by_key(|k| self.prog.spans.get(*k as usize).map_or(0, |s| s.start));
                    let Some(&k) = kids.iter().find(|&&k| !self.test(k)) else {
                        return (id, seg);
                    };
                    id = k;
                }
                Some(Op::Segment(s)) => {
                    let Some(&r) = self.prog.segment_roots.get(*s as usize) else {
                        return (id, seg);
                    };
                    seg = Some(*s);
                    id = r;
                }
                _ => return (id, seg),
            }
        }
    }
}
