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

use super::{Consent, DecideRequest, Device, Geo, RequestContext, Text};
use crate::context::scan::{plain_number, Kind, Scanner};
use std::collections::BTreeMap;

type Sc<'a> = Scanner<'a>;

/// Read a request, or `None` to let serde read it.
pub fn read(bytes: &[u8]) -> Option<DecideRequest> {
    let mut sc = Scanner::new(bytes).ok()?;
    let req = request(&mut sc)?;
    sc.end().ok()?;
    Some(req)
}

/// Calls `field` with each key of an object; `None` from it gives up. Each of up to 64 known fields
/// may appear once (`index` maps a key to its bit; unknown keys give up unless `index` says skip).
fn object<'a>(
    sc: &mut Sc<'a>,
    index: impl Fn(&str) -> Option<Field>,
    mut field: impl FnMut(&mut Sc<'a>, u32) -> Option<()>,
) -> Option<()> {
    sc.begin_object().ok()?;
    let mut seen: u64 = 0;
    let mut first = true;
    while let Some(key) = sc.next_key(first).ok()? {
        first = false;
        match index(&key)? {
            Field::Known(bit) => {
                let m = 1u64.checked_shl(bit)?;
                if seen & m != 0 {
                    return None;
                }
                seen |= m;
                field(sc, bit)?;
            }
            Field::Ignored => sc.skip().ok()?,
        }
    }
    Some(())
}

#[derive(Clone, Copy)]
enum Field {
    Known(u32),
    /// A key serde skips (only `Consent` ignores unknown keys).
    Ignored,
}

fn known(names: &[&str], key: &str) -> Option<Field> {
    names
        .iter()
        .position(|n| *n == key)
        .map(|i| Field::Known(i as u32))
}

fn request(sc: &mut Sc<'_>) -> Option<DecideRequest> {
    const NAMES: [&str; 5] = ["visitor_id", "placements", "context", "consent", "explain"];
    let mut r = DecideRequest::default();
    let mut placements = false;
    object(
        sc,
        |k| known(&NAMES, k),
        |sc, f| {
            match f {
                0 => r.visitor_id = opt_string(sc)?,
                1 => {
                    r.placements = strings(sc)?;
                    placements = true;
                }
                2 => r.context = context(sc)?,
                3 => r.consent = if null(sc)? { None } else { Some(consent(sc)?) },
                _ => r.explain = boolean(sc)?,
            }
            Some(())
        },
    )?;
    placements.then_some(r)
}

fn context(sc: &mut Sc<'_>) -> Option<RequestContext> {
    const NAMES: [&str; 10] = [
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
    ];
    let mut c = RequestContext::default();
    object(
        sc,
        |k| known(&NAMES, k),
        |sc, f| {
            match f {
                0 => c.url = opt_string(sc)?,
                1 => c.referrer = opt_string(sc)?,
                2 => c.headers = string_map(sc)?,
                3 => c.cookies = string_map(sc)?,
                4 => c.ip = opt_string(sc)?,
                5 => c.geo = if null(sc)? { None } else { Some(geo(sc)?) },
                6 => c.device = if null(sc)? { None } else { Some(device(sc)?) },
                7 => c.returning = opt_bool(sc)?,
                8 => c.visit_count = opt_number(sc)?,
                _ => c.attributes = attributes(sc)?,
            }
            Some(())
        },
    )?;
    Some(c)
}

fn geo(sc: &mut Sc<'_>) -> Option<Geo> {
    const NAMES: [&str; 10] = [
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
    ];
    let mut g = Geo::default();
    object(
        sc,
        |k| known(&NAMES, k),
        |sc, f| {
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
        },
    )?;
    Some(g)
}

fn device(sc: &mut Sc<'_>) -> Option<Device> {
    const NAMES: [&str; 9] = [
        "type",
        "os",
        "os_version",
        "browser",
        "browser_version",
        "brand",
        "model",
        "is_bot",
        "app",
    ];
    let mut d = Device::default();
    object(
        sc,
        |k| known(&NAMES, k),
        |sc, f| {
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
        },
    )?;
    Some(d)
}

fn consent(sc: &mut Sc<'_>) -> Option<Consent> {
    let mut c = Consent::default();
    object(
        sc,
        |k| {
            Some(if k == "personalization" {
                Field::Known(0)
            } else {
                Field::Ignored
            })
        },
        |sc, _| {
            c.personalization = opt_bool(sc)?;
            Some(())
        },
    )?;
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

fn string(sc: &mut Sc<'_>) -> Option<Text> {
    (sc.peek().ok()? == Kind::String).then_some(())?;
    sc.string().ok().map(|s| Text::from(&*s))
}

fn opt_string(sc: &mut Sc<'_>) -> Option<Option<Text>> {
    if null(sc)? {
        return Some(None);
    }
    string(sc).map(Some)
}

fn boolean(sc: &mut Sc<'_>) -> Option<bool> {
    (sc.peek().ok()? == Kind::Bool).then_some(())?;
    sc.boolean().ok()
}

fn opt_bool(sc: &mut Sc<'_>) -> Option<Option<bool>> {
    if null(sc)? {
        return Some(None);
    }
    boolean(sc).map(Some)
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
    if null(sc)? {
        return Some(None);
    }
    let ((f, _), end) = number(sc)?;
    sc.set_pos(end);
    Some(Some(f))
}

fn strings(sc: &mut Sc<'_>) -> Option<Vec<Text>> {
    sc.begin_array().ok()?;
    let mut out = Vec::new();
    let mut first = true;
    while sc.next_element(first).ok()? {
        first = false;
        out.push(string(sc)?);
    }
    Some(out)
}

/// A map of strings; a repeated key keeps the last value, as serde's `BTreeMap` does.
fn string_map(sc: &mut Sc<'_>) -> Option<BTreeMap<Text, Text>> {
    sc.begin_object().ok()?;
    let mut out = BTreeMap::new();
    let mut first = true;
    while let Some(k) = sc.next_key(first).ok()? {
        first = false;
        out.insert(Text::from(&*k), string(sc)?);
    }
    Some(out)
}

fn attributes(sc: &mut Sc<'_>) -> Option<serde_json::Map<String, serde_json::Value>> {
    match json(sc)? {
        serde_json::Value::Object(m) => Some(m),
        _ => None,
    }
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
