//! Runtime values: what the context holds ([`Value`], owned) and what evaluation passes around
//! ([`Val`], borrowed, `Copy`, so evaluating a condition allocates nothing).

/// A dotted version compared part by part: `1.10 > 1.9`, `v14 == 14.0.0`. Up to four numeric parts; a
/// missing part is 0. Parsing is lenient: a leading `v`, and anything after the numeric prefix of a part
/// (`3-beta`, `4b`), are ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Version(pub [u32; 4]);

impl Version {
    /// Parse leniently; `None` when there is no leading number at all.
    pub fn parse(s: &str) -> Option<Version> {
        let s = s.trim();
        let s = s.strip_prefix(['v', 'V']).unwrap_or(s);
        let mut parts = [0u32; 4];
        let mut any = false;
        for (slot, piece) in parts.iter_mut().zip(s.split(['.', '_'])) {
            let digits: &str = piece
                .get(
                    ..piece
                        .find(|c: char| !c.is_ascii_digit())
                        .unwrap_or(piece.len()),
                )
                .unwrap_or("");
            if digits.is_empty() {
                break;
            }
            *slot = digits.parse().unwrap_or(u32::MAX);
            any = true;
            if digits.len() != piece.len() {
                break;
            }
        }
        any.then_some(Version(parts))
    }
}

/// An owned context value.
#[derive(Clone, Debug, PartialEq, Default)]
pub enum Value {
    /// Not present (or not readable). Every comparison with it is false.
    #[default]
    Missing,
    /// Boolean
    Bool(bool),
    /// Number
    Num(f64),
    /// String (shared: repeated event values such as categories are decoded once per profile)
    Str(std::sync::Arc<str>),
    /// Unix milliseconds
    Time(i64),
    /// Version
    Ver(Version),
    /// List of strings
    StrList(Box<[std::sync::Arc<str>]>),
    /// List of numbers
    NumList(Box<[f64]>),
    /// Latitude, longitude
    Geo(f64, f64),
}

impl Value {
    /// Heap bytes this value owns (shared strings counted in full: an upper bound), for cache weighing.
    pub fn heap_bytes(&self) -> usize {
        const ARC_HEADER: usize = 16;
        match self {
            Value::Str(s) => ARC_HEADER + s.len(),
            Value::StrList(l) => l
                .iter()
                .map(|s| std::mem::size_of::<std::sync::Arc<str>>() + ARC_HEADER + s.len())
                .sum(),
            Value::NumList(l) => l.len() * 8,
            _ => 0,
        }
    }

    /// Borrow as an evaluation value.
    #[inline]
    pub fn as_val(&self) -> Val<'_> {
        match self {
            Value::Missing => Val::Missing,
            Value::Bool(b) => Val::Bool(*b),
            Value::Num(n) => Val::Num(*n),
            Value::Str(s) => Val::Str(s),
            Value::Time(t) => Val::Time(*t),
            Value::Ver(v) => Val::Ver(*v),
            Value::StrList(l) => Val::StrList(l),
            Value::NumList(l) => Val::NumList(l),
            Value::Geo(a, b) => Val::Geo(*a, *b),
        }
    }

    /// True unless missing.
    pub fn is_present(&self) -> bool {
        !matches!(self, Value::Missing)
    }
}

/// A borrowed value during evaluation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Val<'a> {
    /// Not present.
    Missing,
    /// Boolean
    Bool(bool),
    /// Number
    Num(f64),
    /// String
    Str(&'a str),
    /// Unix milliseconds
    Time(i64),
    /// Milliseconds
    Dur(i64),
    /// Version
    Ver(Version),
    /// Strings
    StrList(&'a [std::sync::Arc<str>]),
    /// Numbers
    NumList(&'a [f64]),
    /// Latitude, longitude
    Geo(f64, f64),
}

impl Val<'_> {
    /// An owned copy (`Missing` for a duration, which no context holds).
    pub fn to_value(self) -> Value {
        match self {
            Val::Missing | Val::Dur(_) => Value::Missing,
            Val::Bool(b) => Value::Bool(b),
            Val::Num(n) => Value::Num(n),
            Val::Str(s) => Value::Str(s.into()),
            Val::Time(t) => Value::Time(t),
            Val::Ver(v) => Value::Ver(v),
            Val::StrList(l) => Value::StrList(l.into()),
            Val::NumList(l) => Value::NumList(l.into()),
            Val::Geo(a, b) => Value::Geo(a, b),
        }
    }

    /// True only for `Bool(true)`.
    #[inline]
    pub fn truthy(self) -> bool {
        matches!(self, Val::Bool(true))
    }
}
