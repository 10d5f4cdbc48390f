//! Static checking: resolves every name against the schema, infers and checks types, folds literals that
//! need parsing (versions, timestamps, regexes) so nothing is parsed per decision.

use super::ast::{BinOp, Expr, ExprKind, Ident, UnOp};
use crate::schema::{PathKey, Schema, Type};
use crate::value::Version;

/// Largest compiled regex program accepted (bytes); bigger patterns are rejected at load.
pub const REGEX_SIZE_LIMIT: usize = 256 * 1024;

/// Comparison operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

/// Arithmetic operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArithOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
}

/// String predicates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StrOp {
    /// `s.contains(t)`
    Contains,
    /// `s.starts_with(t)`
    StartsWith,
    /// `s.ends_with(t)`
    EndsWith,
    /// `s.equals_ignore_case(t)` (Unicode simple case folding)
    EqualsIgnoreCase,
}

/// Which event field a query reads; `None` is the implicit `at` timestamp.
pub type FieldRef = Option<u16>;

/// What an event query computes over the matching events.
#[derive(Clone, Debug, PartialEq)]
pub enum Agg {
    /// Number of matching events.
    Count,
    /// Sum of a numeric field (missing values skipped).
    Sum(u16),
    /// Mean of a numeric field; missing when no event has the field.
    Avg(u16),
    /// Smallest value of a number or timestamp field.
    Min(FieldRef),
    /// Largest value of a number or timestamp field.
    Max(FieldRef),
    /// Does any matching event satisfy the predicate?
    Any(Box<TExpr>),
    /// Do all matching events satisfy it (true when none match)?
    All(Box<TExpr>),
    /// A field of the most recent matching event.
    Last(Option<FieldRef>),
    /// A field of the oldest matching event.
    First(Option<FieldRef>),
}

/// Compile-time constants.
#[derive(Clone, Debug, PartialEq)]
pub enum Const {
    /// Boolean
    Bool(bool),
    /// Number
    Num(f64),
    /// String
    Str(String),
    /// Timestamp in Unix milliseconds
    Time(i64),
    /// Duration in milliseconds
    Dur(i64),
    /// Version
    Ver(Version),
    /// Sorted, deduplicated strings
    StrList(Vec<String>),
    /// Sorted numbers
    NumList(Vec<f64>),
}

/// A checked, typed expression node. Offsets are bytes into the expression text.
#[derive(Clone, Debug, PartialEq)]
pub struct TExpr {
    /// What it computes.
    pub kind: TKind,
    /// Its static type.
    pub ty: Type,
    /// Byte offset of the first character.
    pub start: u32,
    /// Byte offset one past the end.
    pub end: u32,
}

/// Typed expression kinds.
#[derive(Clone, Debug, PartialEq)]
pub enum TKind {
    /// A literal or folded constant.
    Const(Const),
    /// A context or profile value.
    Path(PathKey),
    /// A field of the current event inside `where`/`any`/`all` (`None` = `at`).
    Field(FieldRef),
    /// `segment.<name>` (index into the bundle's segments).
    Segment(u16),
    /// `!x`
    Not(Box<TExpr>),
    /// `-x`
    Neg(Box<TExpr>),
    /// `a && b`
    And(Box<TExpr>, Box<TExpr>),
    /// `a || b`
    Or(Box<TExpr>, Box<TExpr>),
    /// `a <op> b`
    Cmp(CmpOp, Box<TExpr>, Box<TExpr>),
    /// Arithmetic on numbers, timestamps and durations.
    Arith(ArithOp, Box<TExpr>, Box<TExpr>),
    /// `a in b` / `a not in b`
    In {
        /// The value looked for.
        needle: Box<TExpr>,
        /// A list constant or a list-valued path.
        haystack: Box<TExpr>,
        /// `not in`
        negate: bool,
    },
    /// String predicate.
    Str(StrOp, Box<TExpr>, Box<TExpr>),
    /// `s.matches("re")`: index into the bundle's regex table.
    Matches(Box<TExpr>, u32),
    /// `exists(x)`
    Exists(Box<TExpr>),
    /// `days_since(t)`: fractional days from `t` to now.
    DaysSince(Box<TExpr>),
    /// `distance_km(geo, lat, lon)`: great-circle distance.
    Distance(Box<TExpr>, f64, f64),
    /// `in_area(geo, "name")`: index into the bundle's areas.
    InArea(Box<TExpr>, u16),
    /// An event-array query.
    Query(Box<Query>),
}

/// `profile.<events>.within(d).where(p)…<agg>()`
#[derive(Clone, Debug, PartialEq)]
pub struct Query {
    /// Event kind index.
    pub kind: u16,
    /// Only events with `at >= now - within`.
    pub within: Option<i64>,
    /// All must hold for an event to match.
    pub filters: Vec<TExpr>,
    /// What to compute.
    pub agg: Agg,
}

impl TExpr {
    /// Does evaluating it read the profile (directly or through segments, given their flags)?
    pub fn reads_profile(&self, segment_reads: &dyn Fn(u16) -> bool) -> bool {
        let mut found = false;
        self.walk(&mut |e| match &e.kind {
            TKind::Path(k) if k.reads_profile() => found = true,
            TKind::Query(_) => found = true,
            TKind::Segment(s) if segment_reads(*s) => found = true,
            _ => {}
        });
        found
    }

    /// Segments referenced directly.
    pub fn segments(&self) -> Vec<u16> {
        let mut out = Vec::new();
        self.walk(&mut |e| {
            if let TKind::Segment(s) = e.kind {
                out.push(s);
            }
        });
        out
    }

    /// Visit every node, parents first.
    pub fn walk(&self, f: &mut dyn FnMut(&TExpr)) {
        f(self);
        match &self.kind {
            TKind::Const(_) | TKind::Path(_) | TKind::Field(_) | TKind::Segment(_) => {}
            TKind::Not(a)
            | TKind::Neg(a)
            | TKind::Exists(a)
            | TKind::DaysSince(a)
            | TKind::Matches(a, _) => a.walk(f),
            TKind::Distance(a, _, _) | TKind::InArea(a, _) => a.walk(f),
            TKind::And(a, b)
            | TKind::Or(a, b)
            | TKind::Cmp(_, a, b)
            | TKind::Arith(_, a, b)
            | TKind::Str(_, a, b) => {
                a.walk(f);
                b.walk(f);
            }
            TKind::In {
                needle, haystack, ..
            } => {
                needle.walk(f);
                haystack.walk(f);
            }
            TKind::Query(q) => {
                for x in &q.filters {
                    x.walk(f);
                }
                if let Agg::Any(p) | Agg::All(p) = &q.agg {
                    p.walk(f);
                }
            }
        }
    }
}

/// A type error or unknown name, with a byte range into the expression.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckError {
    /// Stable code.
    pub code: &'static str,
    /// Lowercase message.
    pub message: String,
    /// Start byte.
    pub start: usize,
    /// End byte.
    pub end: usize,
    /// Hint.
    pub help: Option<String>,
}

/// What a checker needs besides the expression: names it may reference and tables it fills.
pub struct Env<'a> {
    /// The bundle schema.
    pub schema: &'a Schema,
    /// Segment names, by index.
    pub segments: &'a [String],
    /// Area names, by index.
    pub areas: &'a [String],
    /// Regexes compiled so far; `matches` appends.
    pub regexes: &'a mut Vec<regex::Regex>,
}

/// Check `expr`; it must be a boolean condition. Returns every error found in it.
pub fn check_condition(expr: &Expr, env: &mut Env<'_>) -> Result<TExpr, Vec<CheckError>> {
    let mut c = Checker {
        env,
        errors: Vec::new(),
        scope: Vec::new(),
    };
    let t = c.expr(expr);
    if let Some(t) = &t {
        if t.ty != Type::Bool {
            c.error(
                "type-mismatch",
                format!("a condition must be a bool, this is a {}", t.ty.name()),
                expr.start,
                expr.end,
                Some("compare it with something, e.g. `… == \"value\"`".into()),
            );
        }
    }
    match (t, c.errors.is_empty()) {
        (Some(t), true) => Ok(t),
        _ => Err(c.errors),
    }
}

struct Checker<'e, 'a> {
    env: &'e mut Env<'a>,
    errors: Vec<CheckError>,
    /// Event kinds of enclosing `where`/`any`/`all` predicates, innermost last.
    scope: Vec<u16>,
}

fn texpr(kind: TKind, ty: Type, e: &Expr) -> TExpr {
    TExpr {
        kind,
        ty,
        start: u32::try_from(e.start).unwrap_or(0),
        end: u32::try_from(e.end).unwrap_or(0),
    }
}

impl Checker<'_, '_> {
    fn error(
        &mut self,
        code: &'static str,
        message: String,
        start: usize,
        end: usize,
        help: Option<String>,
    ) {
        self.errors.push(CheckError {
            code,
            message,
            start,
            end,
            help,
        });
    }

    fn mismatch<T>(&mut self, e: &Expr, message: String, help: Option<String>) -> Option<T> {
        self.error("type-mismatch", message, e.start, e.end, help);
        None
    }

    fn expr(&mut self, e: &Expr) -> Option<TExpr> {
        match &e.kind {
            ExprKind::Bool(b) => Some(texpr(TKind::Const(Const::Bool(*b)), Type::Bool, e)),
            ExprKind::Num(n) => Some(texpr(TKind::Const(Const::Num(*n)), Type::Number, e)),
            ExprKind::Str(s) => Some(texpr(TKind::Const(Const::Str(s.clone())), Type::String, e)),
            ExprKind::Duration(ms) => Some(texpr(TKind::Const(Const::Dur(*ms)), Type::Duration, e)),
            ExprKind::List(items) => self.list(e, items),
            ExprKind::Path(parts) => self.path(e, parts),
            ExprKind::Unary(op, inner) => {
                let t = self.expr(inner)?;
                match (op, t.ty) {
                    (UnOp::Not, Type::Bool) => Some(texpr(TKind::Not(Box::new(t)), Type::Bool, e)),
                    (UnOp::Neg, Type::Number) => {
                        Some(texpr(TKind::Neg(Box::new(t)), Type::Number, e))
                    }
                    (UnOp::Not, ty) => {
                        self.mismatch(e, format!("`!` needs a bool, found a {}", ty.name()), None)
                    }
                    (UnOp::Neg, ty) => self.mismatch(
                        e,
                        format!("`-` needs a number, found a {}", ty.name()),
                        None,
                    ),
                }
            }
            ExprKind::Binary(op, l, r) => self.binary(e, *op, l, r),
            ExprKind::Call(name, args) => self.call(e, name, args),
            ExprKind::Method(obj, name, args) => self.method(e, obj, name, args),
            ExprKind::Member(obj, name) => self.member(e, obj, name),
        }
    }

    fn list(&mut self, e: &Expr, items: &[Expr]) -> Option<TExpr> {
        let mut strs = Vec::new();
        let mut nums = Vec::new();
        for it in items {
            match &it.kind {
                ExprKind::Str(s) => strs.push(s.clone()),
                ExprKind::Num(n) => nums.push(*n),
                ExprKind::Unary(UnOp::Neg, inner) => match inner.kind {
                    ExprKind::Num(n) => nums.push(-n),
                    _ => {
                        return self.mismatch(
                            it,
                            "list items must be string or number literals".into(),
                            None,
                        )
                    }
                },
                _ => {
                    return self.mismatch(
                        it,
                        "list items must be string or number literals".into(),
                        None,
                    )
                }
            }
        }
        if !strs.is_empty() && !nums.is_empty() {
            return self.mismatch(e, "a list mixes strings and numbers".into(), None);
        }
        if nums.is_empty() {
            strs.sort();
            strs.dedup();
            Some(texpr(
                TKind::Const(Const::StrList(strs)),
                Type::StringList,
                e,
            ))
        } else {
            nums.sort_by(f64::total_cmp);
            nums.dedup();
            Some(texpr(
                TKind::Const(Const::NumList(nums)),
                Type::NumberList,
                e,
            ))
        }
    }

    fn path(&mut self, e: &Expr, parts: &[Ident]) -> Option<TExpr> {
        let full: Vec<&str> = parts.iter().map(|p| p.name.as_str()).collect();
        let full = full.join(".");
        // Inside an event predicate a bare name is a field of the event.
        if let (Some(&kind), [single]) = (self.scope.last(), parts) {
            if let Some((field, ty)) = self.env.schema.event_field(kind, &single.name) {
                return Some(texpr(TKind::Field(field), ty, e));
            }
            if ![
                "request",
                "geo",
                "device",
                "time",
                "visitor",
                "profile",
                "attributes",
                "segment",
            ]
            .contains(&single.name.as_str())
            {
                let names: Vec<String> = self.env.schema.event_field_names(kind);
                let help =
                    crate::diagnostic::did_you_mean(&single.name, names.iter().map(String::as_str))
                        .or_else(|| {
                            Some(format!(
                                "fields of this event are {}",
                                names
                                    .iter()
                                    .map(|n| format!("`{n}`"))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ))
                        });
                self.error(
                    "unknown-field",
                    format!("unknown event field `{}`", single.name),
                    e.start,
                    e.end,
                    help,
                );
                return None;
            }
        }
        if let Some(first) = parts.first() {
            if first.name == "segment" {
                let Some(name) = parts.get(1) else {
                    self.error(
                        "unknown-path",
                        "`segment` needs a segment name, e.g. `segment.high_value`".into(),
                        e.start,
                        e.end,
                        None,
                    );
                    return None;
                };
                if parts.len() > 2 {
                    self.error(
                        "unknown-path",
                        format!("unknown path `{full}`"),
                        e.start,
                        e.end,
                        Some("a segment is a bool: `segment.<name>`".into()),
                    );
                    return None;
                }
                return match self.env.segments.iter().position(|s| *s == name.name) {
                    Some(i) => Some(texpr(
                        TKind::Segment(crate::schema::index16(i)),
                        Type::Bool,
                        e,
                    )),
                    None => {
                        let help = crate::diagnostic::did_you_mean(
                            &name.name,
                            self.env.segments.iter().map(String::as_str),
                        );
                        self.error(
                            "unknown-segment",
                            format!("unknown segment `{}`", name.name),
                            name.start,
                            name.end,
                            help,
                        );
                        None
                    }
                };
            }
        }
        match self.env.schema.resolve(&full) {
            Ok((key, ty)) => Some(texpr(TKind::Path(key), ty, e)),
            Err(pe) => {
                self.error("unknown-path", pe.message, e.start, e.end, pe.help);
                None
            }
        }
    }

    fn binary(&mut self, e: &Expr, op: BinOp, l: &Expr, r: &Expr) -> Option<TExpr> {
        let lt = self.expr(l);
        let rt = self.expr(r);
        let (lt, rt) = (lt?, rt?);
        match op {
            BinOp::And | BinOp::Or => {
                for (t, x) in [(&lt, l), (&rt, r)] {
                    if t.ty != Type::Bool {
                        self.mismatch::<()>(
                            x,
                            format!(
                                "`{}` needs bools on both sides, this is a {}",
                                op.symbol(),
                                t.ty.name()
                            ),
                            None,
                        );
                    }
                }
                if lt.ty != Type::Bool || rt.ty != Type::Bool {
                    return None;
                }
                let kind = if op == BinOp::And {
                    TKind::And(Box::new(lt), Box::new(rt))
                } else {
                    TKind::Or(Box::new(lt), Box::new(rt))
                };
                Some(texpr(kind, Type::Bool, e))
            }
            BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
                let cmp = match op {
                    BinOp::Eq => CmpOp::Eq,
                    BinOp::Ne => CmpOp::Ne,
                    BinOp::Lt => CmpOp::Lt,
                    BinOp::Le => CmpOp::Le,
                    BinOp::Gt => CmpOp::Gt,
                    _ => CmpOp::Ge,
                };
                let (lt, rt) = self.coerce_pair(lt, rt, l, r)?;
                let ordered = !matches!(cmp, CmpOp::Eq | CmpOp::Ne);
                let ok = lt.ty == rt.ty
                    && match lt.ty {
                        Type::Number
                        | Type::String
                        | Type::Timestamp
                        | Type::Duration
                        | Type::Version => true,
                        Type::Bool => !ordered,
                        _ => false,
                    };
                if !ok {
                    let help = if lt.ty == Type::Bool && rt.ty == Type::Bool {
                        Some("bools can only be compared with `==` and `!=`".into())
                    } else if matches!(lt.ty, Type::StringList | Type::NumberList)
                        || matches!(rt.ty, Type::StringList | Type::NumberList)
                    {
                        Some("test membership with `in`, e.g. `\"vip\" in profile.segments`".into())
                    } else if matches!(lt.ty, Type::Events(_)) || matches!(rt.ty, Type::Events(_)) {
                        Some("aggregate the events first, e.g. `.count()` or `.sum(price)`".into())
                    } else {
                        None
                    };
                    return self.mismatch(
                        e,
                        format!(
                            "cannot compare a {} with a {} using `{}`",
                            lt.ty.name(),
                            rt.ty.name(),
                            op.symbol()
                        ),
                        help,
                    );
                }
                Some(texpr(
                    TKind::Cmp(cmp, Box::new(lt), Box::new(rt)),
                    Type::Bool,
                    e,
                ))
            }
            BinOp::In | BinOp::NotIn => {
                let negate = op == BinOp::NotIn;
                let want = match rt.ty {
                    Type::StringList => Type::String,
                    Type::NumberList => Type::Number,
                    other => {
                        return self.mismatch(
                            r,
                            format!(
                                "`{}` needs a list on the right, found a {}",
                                op.symbol(),
                                other.name()
                            ),
                            Some("write a list literal, e.g. `[\"KR\", \"JP\"]`".into()),
                        )
                    }
                };
                if lt.ty != want {
                    return self.mismatch(
                        l,
                        format!("cannot look for a {} in a {}", lt.ty.name(), rt.ty.name()),
                        None,
                    );
                }
                Some(texpr(
                    TKind::In {
                        needle: Box::new(lt),
                        haystack: Box::new(rt),
                        negate,
                    },
                    Type::Bool,
                    e,
                ))
            }
            BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div => {
                let aop = match op {
                    BinOp::Add => ArithOp::Add,
                    BinOp::Sub => ArithOp::Sub,
                    BinOp::Mul => ArithOp::Mul,
                    _ => ArithOp::Div,
                };
                let (lt, rt) = self.coerce_pair(lt, rt, l, r)?;
                use Type::{Duration as D, Number as N, Timestamp as T};
                let ty = match (aop, lt.ty, rt.ty) {
                    (_, N, N) => N,
                    (ArithOp::Sub, T, T) => D,
                    (ArithOp::Add | ArithOp::Sub, T, D) => T,
                    (ArithOp::Add, D, T) => T,
                    (ArithOp::Add | ArithOp::Sub, D, D) => D,
                    (_, a, b) => {
                        return self.mismatch(
                            e,
                            format!(
                                "cannot apply `{}` to a {} and a {}",
                                op.symbol(),
                                a.name(),
                                b.name()
                            ),
                            None,
                        )
                    }
                };
                Some(texpr(TKind::Arith(aop, Box::new(lt), Box::new(rt)), ty, e))
            }
        }
    }

    /// A string literal next to a version or timestamp becomes a constant of that type, parsed once here.
    fn coerce_pair(&mut self, lt: TExpr, rt: TExpr, l: &Expr, r: &Expr) -> Option<(TExpr, TExpr)> {
        let lt2 = self.coerce(lt, rt.ty, l)?;
        let rt2 = self.coerce(rt, lt2.ty, r)?;
        Some((lt2, rt2))
    }

    fn coerce(&mut self, t: TExpr, other: Type, e: &Expr) -> Option<TExpr> {
        let TKind::Const(Const::Str(s)) = &t.kind else {
            return Some(t);
        };
        match other {
            Type::Version => match Version::parse(s) {
                Some(v) => Some(TExpr { kind: TKind::Const(Const::Ver(v)), ty: Type::Version, ..t }),
                None => self.mismatch(e, format!("`{s}` is not a version"), Some("write versions like `14`, `1.2` or `v1.2.3`".into())),
            },
            Type::Timestamp => match crate::time::parse_timestamp(s) {
                Some(ms) => Some(TExpr { kind: TKind::Const(Const::Time(ms)), ty: Type::Timestamp, ..t }),
                None => self.mismatch(e, format!("`{s}` is not a timestamp"), Some("write RFC 3339 (`2026-12-01T09:00:00+09:00`) or a date (`2026-12-01`, midnight UTC)".into())),
            },
            _ => Some(t),
        }
    }

    fn const_str(&mut self, e: &Expr, what: &str) -> Option<String> {
        if let ExprKind::Str(s) = &e.kind {
            Some(s.clone())
        } else {
            self.mismatch(e, format!("{what} must be a string literal"), None)
        }
    }

    fn const_num(&mut self, e: &Expr, what: &str) -> Option<f64> {
        match &e.kind {
            ExprKind::Num(n) => Some(*n),
            ExprKind::Unary(UnOp::Neg, inner) => match inner.kind {
                ExprKind::Num(n) => Some(-n),
                _ => self.mismatch(e, format!("{what} must be a number literal"), None),
            },
            _ => self.mismatch(e, format!("{what} must be a number literal"), None),
        }
    }

    fn arity(&mut self, e: &Expr, name: &Ident, args: &[Expr], n: usize, usage: &str) -> bool {
        if args.len() == n {
            return true;
        }
        self.error(
            "wrong-arguments",
            format!(
                "`{}` takes {n} argument{}, found {}",
                name.name,
                if n == 1 { "" } else { "s" },
                args.len()
            ),
            e.start,
            e.end,
            Some(format!("usage: `{usage}`")),
        );
        false
    }

    fn call(&mut self, e: &Expr, name: &Ident, args: &[Expr]) -> Option<TExpr> {
        match name.name.as_str() {
            "exists" => {
                if !self.arity(e, name, args, 1, "exists(profile.tier)") {
                    return None;
                }
                let a = self.expr(args.first()?)?;
                Some(texpr(TKind::Exists(Box::new(a)), Type::Bool, e))
            }
            "days_since" => {
                if !self.arity(e, name, args, 1, "days_since(profile.signup_at)") {
                    return None;
                }
                let a = self.expr(args.first()?)?;
                if a.ty != Type::Timestamp {
                    return self.mismatch(
                        args.first()?,
                        format!("`days_since` needs a timestamp, found a {}", a.ty.name()),
                        None,
                    );
                }
                Some(texpr(TKind::DaysSince(Box::new(a)), Type::Number, e))
            }
            "distance_km" => {
                if !self.arity(e, name, args, 3, "distance_km(geo, 37.5665, 126.9780)") {
                    return None;
                }
                let g = self.expr(args.first()?)?;
                if g.ty != Type::Geo {
                    return self.mismatch(
                        args.first()?,
                        format!("`distance_km` needs `geo` first, found a {}", g.ty.name()),
                        None,
                    );
                }
                let lat = self.const_num(args.get(1)?, "the latitude")?;
                let lon = self.const_num(args.get(2)?, "the longitude")?;
                if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lon) {
                    return self.mismatch(
                        e,
                        format!("({lat}, {lon}) is not a valid latitude/longitude"),
                        Some("latitude is in -90..90, longitude in -180..180".into()),
                    );
                }
                Some(texpr(
                    TKind::Distance(Box::new(g), lat, lon),
                    Type::Number,
                    e,
                ))
            }
            "in_area" => {
                if !self.arity(e, name, args, 2, "in_area(geo, \"downtown\")") {
                    return None;
                }
                let g = self.expr(args.first()?)?;
                if g.ty != Type::Geo {
                    return self.mismatch(
                        args.first()?,
                        format!("`in_area` needs `geo` first, found a {}", g.ty.name()),
                        None,
                    );
                }
                let area = self.const_str(args.get(1)?, "the area name")?;
                match self.env.areas.iter().position(|a| *a == area) {
                    Some(i) => Some(texpr(
                        TKind::InArea(Box::new(g), crate::schema::index16(i)),
                        Type::Bool,
                        e,
                    )),
                    None => {
                        let a1 = args.get(1)?;
                        let help = crate::diagnostic::did_you_mean(
                            &area,
                            self.env.areas.iter().map(String::as_str),
                        )
                        .or_else(|| Some("define areas in `[areas.<name>]`".into()));
                        self.error(
                            "unknown-area",
                            format!("unknown area `{area}`"),
                            a1.start,
                            a1.end,
                            help,
                        );
                        None
                    }
                }
            }
            "version" => {
                if !self.arity(e, name, args, 1, "version(\"1.2.3\")") {
                    return None;
                }
                let s = self.const_str(args.first()?, "the version")?;
                match Version::parse(&s) {
                    Some(v) => Some(texpr(TKind::Const(Const::Ver(v)), Type::Version, e)),
                    None => self.mismatch(e, format!("`{s}` is not a version"), None),
                }
            }
            "timestamp" | "date" => {
                if !self.arity(e, name, args, 1, "timestamp(\"2026-12-01T00:00:00Z\")") {
                    return None;
                }
                let s = self.const_str(args.first()?, "the timestamp")?;
                match crate::time::parse_timestamp(&s) {
                    Some(ms) => Some(texpr(TKind::Const(Const::Time(ms)), Type::Timestamp, e)),
                    None => self.mismatch(
                        e,
                        format!("`{s}` is not a timestamp"),
                        Some("write RFC 3339 or a date like `2026-12-01`".into()),
                    ),
                }
            }
            other => {
                let help = crate::diagnostic::did_you_mean(
                    other,
                    [
                        "exists",
                        "days_since",
                        "distance_km",
                        "in_area",
                        "version",
                        "timestamp",
                        "date",
                    ],
                );
                self.error("unknown-function", format!("unknown function `{other}`"), name.start, name.end, help.or_else(|| Some("functions are `exists`, `days_since`, `distance_km`, `in_area`, `version`, `timestamp`".into())));
                None
            }
        }
    }

    fn method(&mut self, e: &Expr, obj: &Expr, name: &Ident, args: &[Expr]) -> Option<TExpr> {
        let o = self.expr(obj)?;
        match o.ty {
            Type::String => self.string_method(e, o, name, args),
            Type::StringList | Type::NumberList if name.name == "contains" => {
                if !self.arity(e, name, args, 1, "profile.segments.contains(\"vip\")") {
                    return None;
                }
                let a = self.expr(args.first()?)?;
                let want = if o.ty == Type::StringList {
                    Type::String
                } else {
                    Type::Number
                };
                if a.ty != want {
                    return self.mismatch(
                        args.first()?,
                        format!("cannot look for a {} in a {}", a.ty.name(), o.ty.name()),
                        None,
                    );
                }
                Some(texpr(
                    TKind::In {
                        needle: Box::new(a),
                        haystack: Box::new(o),
                        negate: false,
                    },
                    Type::Bool,
                    e,
                ))
            }
            Type::Events(kind) => self.event_method(e, o, kind, name, args),
            ty => {
                self.error(
                    "unknown-method",
                    format!("a {} has no method `{}`", ty.name(), name.name),
                    name.start,
                    name.end,
                    None,
                );
                None
            }
        }
    }

    fn string_method(&mut self, e: &Expr, o: TExpr, name: &Ident, args: &[Expr]) -> Option<TExpr> {
        let op = match name.name.as_str() {
            "contains" => StrOp::Contains,
            "starts_with" => StrOp::StartsWith,
            "ends_with" => StrOp::EndsWith,
            "equals_ignore_case" => StrOp::EqualsIgnoreCase,
            "matches" => {
                if !self.arity(e, name, args, 1, "request.path.matches(\"^/sale/\")") {
                    return None;
                }
                let a0 = args.first()?;
                let pattern = self.const_str(a0, "the pattern")?;
                let built = regex::RegexBuilder::new(&pattern)
                    .size_limit(REGEX_SIZE_LIMIT)
                    .dfa_size_limit(REGEX_SIZE_LIMIT)
                    .build();
                return match built {
                    Ok(re) => {
                        let idx = u32::try_from(self.env.regexes.len()).unwrap_or(u32::MAX);
                        self.env.regexes.push(re);
                        Some(texpr(TKind::Matches(Box::new(o), idx), Type::Bool, e))
                    }
                    Err(err) => {
                        let msg = match err {
                            regex::Error::CompiledTooBig(_) => format!(
                                "regex is too large (limit {REGEX_SIZE_LIMIT} bytes compiled)"
                            ),
                            other => format!(
                                "invalid regex: {}",
                                other
                                    .to_string()
                                    .lines()
                                    .last()
                                    .unwrap_or("syntax error")
                                    .trim_start_matches("error: ")
                            ),
                        };
                        self.error("invalid-regex", msg, a0.start, a0.end, Some("tailor uses linear-time regexes: no look-around or back-references".into()));
                        None
                    }
                };
            }
            other => {
                let help = crate::diagnostic::did_you_mean(
                    other,
                    [
                        "contains",
                        "starts_with",
                        "ends_with",
                        "equals_ignore_case",
                        "matches",
                    ],
                );
                self.error(
                    "unknown-method",
                    format!("a string has no method `{other}`"),
                    name.start,
                    name.end,
                    help,
                );
                return None;
            }
        };
        if !self.arity(
            e,
            name,
            args,
            1,
            &format!("request.path.{}(\"…\")", name.name),
        ) {
            return None;
        }
        let a = self.expr(args.first()?)?;
        if a.ty != Type::String {
            return self.mismatch(
                args.first()?,
                format!("`{}` needs a string, found a {}", name.name, a.ty.name()),
                None,
            );
        }
        Some(texpr(
            TKind::Str(op, Box::new(o), Box::new(a)),
            Type::Bool,
            e,
        ))
    }

    fn field_arg(
        &mut self,
        kind: u16,
        a: &Expr,
        method: &str,
        numeric_only: bool,
    ) -> Option<FieldRef> {
        let ExprKind::Path(parts) = &a.kind else {
            return self.mismatch(
                a,
                format!("`{method}` takes an event field name, e.g. `{method}(price)`"),
                None,
            );
        };
        let name = match parts.as_slice() {
            [one] => one.name.clone(),
            _ => {
                return self.mismatch(
                    a,
                    format!("`{method}` takes an event field name, e.g. `{method}(price)`"),
                    None,
                )
            }
        };
        let Some((field, ty)) = self.env.schema.event_field(kind, &name) else {
            let names: Vec<String> = self.env.schema.event_field_names(kind);
            let help = crate::diagnostic::did_you_mean(&name, names.iter().map(String::as_str));
            self.error(
                "unknown-field",
                format!("unknown event field `{name}`"),
                a.start,
                a.end,
                help,
            );
            return None;
        };
        let ok = if numeric_only {
            ty == Type::Number
        } else {
            matches!(ty, Type::Number | Type::Timestamp)
        };
        if !ok {
            return self.mismatch(
                a,
                format!(
                    "`{method}` needs a number field{}, `{name}` is a {}",
                    if numeric_only { "" } else { " or `at`" },
                    ty.name()
                ),
                None,
            );
        }
        Some(field)
    }

    fn predicate(&mut self, kind: u16, a: &Expr, method: &str) -> Option<TExpr> {
        self.scope.push(kind);
        let p = self.expr(a);
        self.scope.pop();
        let p = p?;
        if p.ty != Type::Bool {
            return self.mismatch(
                a,
                format!("`{method}` needs a condition, found a {}", p.ty.name()),
                None,
            );
        }
        Some(p)
    }

    fn event_method(
        &mut self,
        e: &Expr,
        o: TExpr,
        kind: u16,
        name: &Ident,
        args: &[Expr],
    ) -> Option<TExpr> {
        // Start from the query built so far (chains like `.within(30d).where(…)` extend it).
        let mut q = match o.kind {
            TKind::Query(q) if matches!(q.agg, Agg::Count) && o.ty == Type::Events(kind) => *q,
            TKind::Path(_) => Query {
                kind,
                within: None,
                filters: Vec::new(),
                agg: Agg::Count,
            },
            _ => Query {
                kind,
                within: None,
                filters: Vec::new(),
                agg: Agg::Count,
            },
        };
        let m = name.name.as_str();
        let usage = match m {
            "within" => "within(90d)",
            "where" => "where(category == \"shoes\")",
            "any" => "any(price > 100)",
            "all" => "all(discounted)",
            "sum" | "avg" => "sum(price)",
            "min" | "max" => "max(at)",
            _ => "count()",
        };
        let (ty, agg) = match m {
            "within" => {
                if !self.arity(e, name, args, 1, usage) {
                    return None;
                }
                let d = self.expr(args.first()?)?;
                let TKind::Const(Const::Dur(ms)) = d.kind else {
                    return self.mismatch(
                        args.first()?,
                        "`within` needs a duration literal, e.g. `90d`".into(),
                        None,
                    );
                };
                q.within = Some(q.within.map_or(ms, |w| w.min(ms)));
                return Some(texpr(TKind::Query(Box::new(q)), Type::Events(kind), e));
            }
            "where" => {
                if !self.arity(e, name, args, 1, usage) {
                    return None;
                }
                let p = self.predicate(kind, args.first()?, "where")?;
                q.filters.push(p);
                return Some(texpr(TKind::Query(Box::new(q)), Type::Events(kind), e));
            }
            "count" => {
                if !self.arity(e, name, args, 0, usage) {
                    return None;
                }
                (Type::Number, Agg::Count)
            }
            "sum" | "avg" => {
                if !self.arity(e, name, args, 1, usage) {
                    return None;
                }
                let f = self.field_arg(kind, args.first()?, m, true)?;
                let f = f.unwrap_or(0);
                (
                    Type::Number,
                    if m == "sum" { Agg::Sum(f) } else { Agg::Avg(f) },
                )
            }
            "min" | "max" => {
                if !self.arity(e, name, args, 1, usage) {
                    return None;
                }
                let f = self.field_arg(kind, args.first()?, m, false)?;
                let ty = if f.is_none() {
                    Type::Timestamp
                } else {
                    Type::Number
                };
                (ty, if m == "min" { Agg::Min(f) } else { Agg::Max(f) })
            }
            "any" | "all" => {
                if !self.arity(e, name, args, 1, usage) {
                    return None;
                }
                let p = self.predicate(kind, args.first()?, m)?;
                (
                    Type::Bool,
                    if m == "any" {
                        Agg::Any(Box::new(p))
                    } else {
                        Agg::All(Box::new(p))
                    },
                )
            }
            "last" | "first" => {
                if !self.arity(e, name, args, 0, "last().at") {
                    return None;
                }
                (
                    Type::Event(kind),
                    if m == "last" {
                        Agg::Last(None)
                    } else {
                        Agg::First(None)
                    },
                )
            }
            other => {
                let help = crate::diagnostic::did_you_mean(
                    other,
                    [
                        "within", "where", "count", "sum", "avg", "min", "max", "any", "all",
                        "last", "first",
                    ],
                );
                self.error("unknown-method", format!("an event list has no method `{other}`"), name.start, name.end, help.or_else(|| Some("event lists have `within`, `where`, `count`, `sum`, `avg`, `min`, `max`, `any`, `all`, `last`, `first`".into())));
                return None;
            }
        };
        q.agg = agg;
        Some(texpr(TKind::Query(Box::new(q)), ty, e))
    }

    fn member(&mut self, e: &Expr, obj: &Expr, name: &Ident) -> Option<TExpr> {
        let o = self.expr(obj)?;
        let Type::Event(kind) = o.ty else {
            self.error(
                "unknown-path",
                format!("a {} has no field `{}`", o.ty.name(), name.name),
                name.start,
                name.end,
                None,
            );
            return None;
        };
        let Some((field, ty)) = self.env.schema.event_field(kind, &name.name) else {
            let names: Vec<String> = self.env.schema.event_field_names(kind);
            let help =
                crate::diagnostic::did_you_mean(&name.name, names.iter().map(String::as_str));
            self.error(
                "unknown-field",
                format!("unknown event field `{}`", name.name),
                name.start,
                name.end,
                help,
            );
            return None;
        };
        let TKind::Query(mut q) = o.kind else {
            return None;
        };
        q.agg = match q.agg {
            Agg::Last(None) => Agg::Last(Some(field)),
            Agg::First(None) => Agg::First(Some(field)),
            other => other,
        };
        Some(texpr(TKind::Query(q), ty, e))
    }
}
