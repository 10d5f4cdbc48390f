//! A fast reader for [`DecideRequest`] bodies, with serde as the reference.
//!
//! Why: measured with callgrind, serde's derived `Deserialize` spends ~22k instructions on the example
//! 640-byte request (per-string UTF-8 checks, field-name dispatch, visitor plumbing) — more than
//! deciding a placement. This reader takes the forms requests are written in and builds the same
//! value with the profile [`Scanner`](crate::context::scan::Scanner).
//!
//! The invariant: [`read`] returns either exactly what `serde_json::from_slice::<DecideRequest>` returns,
//! or `None`, and then the caller asks serde (which also words every error). It gives up on anything
//! that is not plainly the common case: an unknown or repeated field, a `null` where serde would
//! reject it, a number that is not a plain decimal below 2^53 (serde_json rounds others its own way),
//! `-0` inside attributes, nesting deeper than the scanner allows, and every syntax error. A property
//! test holds the two to each other on random requests.

use super::{Attr, Attributes, Consent, DecideRequest, Device, Geo, RequestContext, Text};
use crate::context::scan::{find_stop, plain_number, KeyPat, Kind, Scanner};
use std::collections::BTreeMap;

type Sc<'a> = Scanner<'a>;

/// Read a request, or `None` to let serde read it.
pub fn read(bytes: &[u8]) -> Option<DecideRequest> {
    let mut sc = Scanner::new(bytes).ok()?;
    // Built in place: a `DecideRequest` is ~600 bytes, and returning each part by value cost a
    // `memcpy` per level (measured with callgrind: ~470 instructions per request).
    let mut r = DecideRequest::default();
    request(&mut sc, &mut r)?;
    sc.end().ok()?;
    Some(r)
}

/// The field names of one object, in the order `field` numbers them, as names (for keys read the
/// general way) and as byte patterns (for keys written plainly, nearly all of them).
struct Fields<const N: usize> {
    names: [&'static str; N],
    pats: [KeyPat; N],
}

impl<const N: usize> Fields<N> {
    // `i < N` by the loop bound; evaluated when the `const` tables compile.
    #[allow(clippy::indexing_slicing)]
    const fn new(names: [&'static str; N]) -> Fields<N> {
        let mut pats = [KeyPat::new(""); N];
        let mut i = 0;
        while i < N {
            pats[i] = KeyPat::new(names[i]);
            i += 1;
        }
        Fields { names, pats }
    }
}

/// Calls `field` with the index of each key of an object; `None` from it gives up. Each of up to 64
/// known fields may appear once; an unknown key gives up, as `deny_unknown_fields` makes serde fail.
fn object<'a, const N: usize>(
    sc: &mut Sc<'a>,
    fields: &Fields<N>,
    mut field: impl FnMut(&mut Sc<'a>, u32) -> Option<()>,
) -> Option<()> {
    sc.begin_object().ok()?;
    let mut seen: u64 = 0;
    let (mut first, mut from) = (true, 0);
    while let Some(key) = sc.next_key_in(first, &fields.pats, &mut from).ok()? {
        first = false;
        let bit = match key {
            Ok(i) => i,
            Err(k) => fields.names.iter().position(|n| *n == k)?,
        } as u32;
        let m = 1u64.checked_shl(bit)?;
        if seen & m != 0 {
            return None;
        }
        seen |= m;
        field(sc, bit)?;
    }
    Some(())
}

fn request(sc: &mut Sc<'_>, r: &mut DecideRequest) -> Option<()> {
    const F: Fields<5> = Fields::new(["visitor_id", "placements", "context", "consent", "explain"]);
    let mut placements = false;
    object(sc, &F, |sc, f| {
        match f {
            0 => r.visitor_id = opt_string(sc)?,
            1 => {
                strings(sc, &mut r.placements)?;
                placements = true;
            }
            2 => context(sc, &mut r.context)?,
            3 => r.consent = if null(sc)? { None } else { Some(consent(sc)?) },
            _ => r.explain = boolean(sc)?,
        }
        Some(())
    })?;
    placements.then_some(())
}

fn context(sc: &mut Sc<'_>, c: &mut RequestContext) -> Option<()> {
    const F: Fields<10> = Fields::new([
        "url",
        "referrer",
        "headers",
        "cookies",
        "ip",
        "geo",
        "device",
        "returning",
        "visit_count",
        "attributes",
    ]);
    object(sc, &F, |sc, f| {
        match f {
            0 => c.url = opt_string(sc)?,
            1 => c.referrer = opt_string(sc)?,
            2 => string_map(sc, &mut c.headers)?,
            3 => string_map(sc, &mut c.cookies)?,
            4 => c.ip = opt_string(sc)?,
            5 => {
                if null(sc)? {
                    c.geo = None;
                } else {
                    geo(sc, c.geo.insert(Geo::default()))?;
                }
            }
            6 => {
                if null(sc)? {
                    c.device = None;
                } else {
                    device(sc, c.device.insert(Device::default()))?;
                }
            }
            7 => c.returning = opt_bool(sc)?,
            8 => c.visit_count = opt_number(sc)?,
            _ => c.attributes = attributes(sc)?,
        }
        Some(())
    })
}

fn geo(sc: &mut Sc<'_>, g: &mut Geo) -> Option<()> {
    const F: Fields<10> = Fields::new([
        "country",
        "region",
        "city",
        "postal",
        "latitude",
        "longitude",
        "time_zone",
        "continent",
        "accuracy_km",
        "anonymous",
    ]);
    object(sc, &F, |sc, f| {
        match f {
            0 => g.country = opt_string(sc)?,
            1 => g.region = opt_string(sc)?,
            2 => g.city = opt_string(sc)?,
            3 => g.postal = opt_string(sc)?,
            4 => g.latitude = opt_number(sc)?,
            5 => g.longitude = opt_number(sc)?,
            6 => g.time_zone = opt_string(sc)?,
            7 => g.continent = opt_string(sc)?,
            8 => g.accuracy_km = opt_number(sc)?,
            _ => g.anonymous = opt_bool(sc)?,
        }
        Some(())
    })
}

fn device(sc: &mut Sc<'_>, d: &mut Device) -> Option<()> {
    const F: Fields<9> = Fields::new([
        "type",
        "os",
        "os_version",
        "browser",
        "browser_version",
        "brand",
        "model",
        "is_bot",
        "app",
    ]);
    object(sc, &F, |sc, f| {
        match f {
            0 => d.kind = opt_string(sc)?,
            1 => d.os = opt_string(sc)?,
            2 => d.os_version = opt_string(sc)?,
            3 => d.browser = opt_string(sc)?,
            4 => d.browser_version = opt_string(sc)?,
            5 => d.brand = opt_string(sc)?,
            6 => d.model = opt_string(sc)?,
            7 => d.is_bot = opt_bool(sc)?,
            _ => d.app = opt_string(sc)?,
        }
        Some(())
    })
}

fn consent(sc: &mut Sc<'_>) -> Option<Consent> {
    // A repeated `personalization` is an error for serde. `Consent` ignores unknown keys (no
    // `deny_unknown_fields`) but serde still checks their values' escapes, which [`Scanner::skip`]
    // does not: such keys go to serde.
    let mut c = Consent::default();
    let mut seen = false;
    sc.begin_object().ok()?;
    let mut first = true;
    while let Some(key) = sc.next_key(first).ok()? {
        first = false;
        if key == "personalization" {
            if seen {
                return None;
            }
            seen = true;
            c.personalization = opt_bool(sc)?;
        } else {
            return None;
        }
    }
    Some(c)
}

/// Consume a `null` and say so, or leave any other value in place.
fn null(sc: &mut Sc<'_>) -> Option<bool> {
    if sc.peek().ok()? == Kind::Null {
        sc.null().ok()?;
        return Some(true);
    }
    Some(false)
}

/// A string (not `null`), the way [`opt_string`] reads one: the placements of every request come here.
fn string(sc: &mut Sc<'_>) -> Option<Text> {
    let p = skip_space(sc);
    (sc.input().get(p) == Some(&b'"')).then_some(())?;
    quoted(sc, p)
}

/// The position of the next non-whitespace byte.
fn skip_space(sc: &Sc<'_>) -> usize {
    let b = sc.input();
    let mut p = sc.pos();
    while matches!(b.get(p), Some(b' ' | b'\n' | b'\r' | b'\t')) {
        p += 1;
    }
    p
}

/// The string whose opening quote is at `p`. An escape-free string is copied straight from the input;
/// one with escapes goes the general way.
fn quoted(sc: &mut Sc<'_>, p: usize) -> Option<Text> {
    let b = sc.input();
    let n = find_stop(b.get(p + 1..)?);
    if b.get(p + 1 + n) == Some(&b'"') {
        // Quotes are ASCII, so both ends are char boundaries of the validated input.
        let text = Text::from(sc.src().get(p + 1..p + 1 + n)?);
        sc.set_pos(p + 2 + n);
        return Some(text);
    }
    sc.string().ok().map(|s| Text::from(&*s))
}

/// A string or `null`, looking at the next byte once. An escape-free string is copied straight from
/// the input (measured with callgrind: ~110 instructions per value through `Scanner::string`'s
/// whitespace skip, `Cow` and `Result`, ~60 this way); one with escapes goes the general way.
fn opt_string(sc: &mut Sc<'_>) -> Option<Option<Text>> {
    let p = skip_space(sc);
    match sc.input().get(p) {
        Some(b'"') => quoted(sc, p).map(Some),
        Some(b'n') => sc.null().ok().map(|()| None),
        _ => None,
    }
}

fn boolean(sc: &mut Sc<'_>) -> Option<bool> {
    (sc.peek().ok()? == Kind::Bool).then_some(())?;
    sc.boolean().ok()
}

fn opt_bool(sc: &mut Sc<'_>) -> Option<Option<bool>> {
    match sc.peek().ok()? {
        Kind::Bool => sc.boolean().ok().map(Some),
        Kind::Null => sc.null().ok().map(|()| None),
        _ => None,
    }
}

/// A plain decimal (see [`plain_number`]), where serde's reading is the same correctly rounded value.
fn number(sc: &mut Sc<'_>) -> Option<((f64, Option<i64>), usize)> {
    (sc.peek().ok()? == Kind::Number).then_some(())?;
    let (v, end) = plain_number(sc.input(), sc.pos())?;
    // A number must end where a JSON value can end; anything else is a syntax error for serde.
    match sc.input().get(end) {
        None | Some(b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t') => Some((v, end)),
        _ => None,
    }
}

fn opt_number(sc: &mut Sc<'_>) -> Option<Option<f64>> {
    if sc.peek().ok()? == Kind::Null {
        return sc.null().ok().map(|()| None);
    }
    let ((f, _), end) = number(sc)?;
    sc.set_pos(end);
    Some(Some(f))
}

fn strings(sc: &mut Sc<'_>, out: &mut Vec<Text>) -> Option<()> {
    sc.begin_array().ok()?;
    out.clear();
    let mut first = true;
    while sc.next_element(first).ok()? {
        first = false;
        out.push(string(sc)?);
    }
    Some(())
}

/// A map of strings; a repeated key keeps the last value, as serde's `BTreeMap` does.
fn string_map(sc: &mut Sc<'_>, out: &mut BTreeMap<Text, Text>) -> Option<()> {
    sc.begin_object().ok()?;
    out.clear();
    let mut first = true;
    while let Some(k) = sc.next_key(first).ok()? {
        first = false;
        out.insert(Text::from(&*k), string(sc)?);
    }
    Some(())
}

/// Custom attributes: strings as [`Text`] (inline when short), other scalars as serde_json reads them,
/// arrays and objects as JSON values.
fn attributes(sc: &mut Sc<'_>) -> Option<Attributes> {
    sc.begin_object().ok()?;
    let mut out = Attributes::new();
    let mut first = true;
    while let Some(k) = sc.next_key(first).ok()? {
        first = false;
        let v = match sc.peek().ok()? {
            Kind::String | Kind::Null => opt_string(sc)?.map_or(Attr::Null, Attr::String),
            _ => Attr::from(json(sc)?),
        };
        out.insert(Text::from(&*k), v);
    }
    Some(out)
}

/// Any JSON value as serde_json builds it.
fn json(sc: &mut Sc<'_>) -> Option<serde_json::Value> {
    use serde_json::Value as J;
    Some(match sc.peek().ok()? {
        Kind::Null => {
            sc.null().ok()?;
            J::Null
        }
        Kind::Bool => J::Bool(sc.boolean().ok()?),
        Kind::String => J::String(sc.string().ok()?.into_owned()),
        Kind::Number => {
            let ((f, int), end) = number(sc)?;
            let n = match int {
                // serde_json reads `-0` as the float -0.0; leave that to it.
                Some(0) if f.is_sign_negative() => return None,
                Some(i) if i >= 0 => serde_json::Number::from(i as u64),
                Some(i) => serde_json::Number::from(i),
                None => serde_json::Number::from_f64(f)?,
            };
            sc.set_pos(end);
            J::Number(n)
        }
        Kind::Array => {
            sc.begin_array().ok()?;
            let mut out = Vec::new();
            let mut first = true;
            while sc.next_element(first).ok()? {
                first = false;
                out.push(json(sc)?);
            }
            J::Array(out)
        }
        Kind::Object => {
            sc.begin_object().ok()?;
            let mut out = serde_json::Map::new();
            let mut first = true;
            while let Some(k) = sc.next_key(first).ok()? {
                first = false;
                let v = json(sc)?;
                out.insert(k.into_owned(), v);
            }
            J::Object(out)
        }
    })
}
