//! GeoIP: the `geo.*` fields from a client IP, with a MaxMind DB (GeoIP2/GeoLite2 City or Country,
//! Enterprise, Anonymous-IP, and DB-IP's compatible layouts) read from bytes.
//!
//! The core never opens files or maps memory (it runs on wasm32 and in Workers): adapters read the database
//! and hand over the bytes. Only the fields tailor exposes are decoded — English names, not every language
//! — borrowing strings from the database until the answer is built.
//!
//! A corrupt database gives an error when it is opened or when a lookup reaches the corrupt part; never a
//! panic (tested on MaxMind's `bad-data` set).
//!
//! [`geo_from_headers`] is the trusted-header mode for runtimes that already know the location (a CDN the
//! operator trusts sets `X-Geo-*` or Cloudflare's visitor-location headers). It is off unless an adapter
//! opts in: untrusted clients could otherwise claim any location.

use crate::wire::{Geo, Text};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// A GeoIP problem: a database that cannot be read, or an address that is not one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GeoError {
    /// Lowercase message.
    pub message: String,
}

impl std::fmt::Display for GeoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for GeoError {}

fn err(context: &str, e: impl std::fmt::Display) -> GeoError {
    GeoError {
        message: format!("{context}: {e}"),
    }
}

/// An open MaxMind DB.
pub struct GeoDb {
    reader: maxminddb::Reader<Vec<u8>>,
}

#[derive(Deserialize, Default)]
struct Names<'a> {
    #[serde(borrow, default)]
    en: Option<&'a str>,
}

#[derive(Deserialize, Default)]
struct Named<'a> {
    #[serde(borrow, default)]
    names: Option<Names<'a>>,
}

#[derive(Deserialize, Default)]
struct IsoCode<'a> {
    #[serde(borrow, default)]
    iso_code: Option<&'a str>,
}

#[derive(Deserialize, Default)]
struct Code<'a> {
    #[serde(borrow, default)]
    code: Option<&'a str>,
}

#[derive(Deserialize, Default)]
struct Location<'a> {
    #[serde(default)]
    latitude: Option<f64>,
    #[serde(default)]
    longitude: Option<f64>,
    #[serde(default)]
    accuracy_radius: Option<u16>,
    #[serde(borrow, default)]
    time_zone: Option<&'a str>,
}

/// Anonymity flags: under `traits` in City/Enterprise databases, at the top level in Anonymous-IP ones.
#[derive(Deserialize, Default, Clone, Copy)]
struct Flags {
    #[serde(default)]
    is_anonymous: Option<bool>,
    #[serde(default)]
    is_anonymous_proxy: Option<bool>,
    #[serde(default)]
    is_anonymous_vpn: Option<bool>,
    #[serde(default)]
    is_hosting_provider: Option<bool>,
    #[serde(default)]
    is_public_proxy: Option<bool>,
    #[serde(default)]
    is_residential_proxy: Option<bool>,
    #[serde(default)]
    is_tor_exit_node: Option<bool>,
}

impl Flags {
    fn any_known(&self) -> bool {
        self.is_anonymous.is_some()
            || self.is_anonymous_proxy.is_some()
            || self.is_anonymous_vpn.is_some()
            || self.is_hosting_provider.is_some()
            || self.is_public_proxy.is_some()
            || self.is_residential_proxy.is_some()
            || self.is_tor_exit_node.is_some()
    }

    fn anonymous(&self) -> bool {
        [
            self.is_anonymous,
            self.is_anonymous_proxy,
            self.is_anonymous_vpn,
            self.is_hosting_provider,
            self.is_public_proxy,
            self.is_residential_proxy,
            self.is_tor_exit_node,
        ]
        .contains(&Some(true))
    }
}

#[derive(Deserialize, Default)]
struct Record<'a> {
    #[serde(borrow, default)]
    city: Option<Named<'a>>,
    #[serde(borrow, default)]
    continent: Option<Code<'a>>,
    #[serde(borrow, default)]
    country: Option<IsoCode<'a>>,
    #[serde(borrow, default)]
    location: Option<Location<'a>>,
    #[serde(borrow, default)]
    postal: Option<Code<'a>>,
    #[serde(borrow, default)]
    subdivisions: Option<Vec<IsoCode<'a>>>,
    #[serde(default)]
    traits: Option<Flags>,
    // Anonymous-IP databases keep the flags at the top level. Spelled out rather than `#[serde(flatten)]`:
    // flatten buffers the whole record into serde's recursive `Content`, and a corrupt database with deep
    // nesting then overflowed the stack (found by tests/suite/geoip.rs on MaxMind's bad-data set).
    #[serde(default)]
    is_anonymous: Option<bool>,
    #[serde(default)]
    is_anonymous_proxy: Option<bool>,
    #[serde(default)]
    is_anonymous_vpn: Option<bool>,
    #[serde(default)]
    is_hosting_provider: Option<bool>,
    #[serde(default)]
    is_public_proxy: Option<bool>,
    #[serde(default)]
    is_residential_proxy: Option<bool>,
    #[serde(default)]
    is_tor_exit_node: Option<bool>,
}

impl Record<'_> {
    fn top_flags(&self) -> Flags {
        Flags {
            is_anonymous: self.is_anonymous,
            is_anonymous_proxy: self.is_anonymous_proxy,
            is_anonymous_vpn: self.is_anonymous_vpn,
            is_hosting_provider: self.is_hosting_provider,
            is_public_proxy: self.is_public_proxy,
            is_residential_proxy: self.is_residential_proxy,
            is_tor_exit_node: self.is_tor_exit_node,
        }
    }
}

impl GeoDb {
    /// Open a database from its bytes (read by the adapter: a file, KV, an asset).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<GeoDb, GeoError> {
        let reader = maxminddb::Reader::from_source(bytes)
            .map_err(|e| err("cannot read the GeoIP database", e))?;
        Ok(GeoDb { reader })
    }

    /// The database type from its metadata, e.g. `GeoIP2-City`.
    pub fn database_type(&self) -> &str {
        &self.reader.metadata().database_type
    }

    /// Look up an address given as text.
    pub fn lookup_str(&self, ip: &str) -> Result<Option<Geo>, GeoError> {
        let addr: IpAddr = ip.trim().parse().map_err(|_| GeoError {
            message: format!("`{ip}` is not an IP address"),
        })?;
        self.lookup(addr)
    }

    /// The location of `ip`, or `None` when the database has no record for it.
    pub fn lookup(&self, ip: IpAddr) -> Result<Option<Geo>, GeoError> {
        let found = self
            .reader
            .lookup(ip)
            .map_err(|e| err("GeoIP lookup failed", e))?;
        let Some(rec) = found
            .decode::<Record<'_>>()
            .map_err(|e| err("GeoIP record is corrupt", e))?
        else {
            return Ok(None);
        };
        let s = |x: Option<&str>| x.map(Text::from);
        let top = rec.top_flags();
        let loc = rec.location.unwrap_or_default();
        let flags = match rec.traits {
            Some(t) if t.any_known() => Some(t),
            _ if top.any_known() => Some(top),
            _ => None,
        };
        Ok(Some(Geo {
            country: s(rec.country.and_then(|c| c.iso_code)),
            region: s(rec
                .subdivisions
                .as_ref()
                .and_then(|v| v.first())
                .and_then(|d| d.iso_code)),
            city: s(rec.city.and_then(|c| c.names).and_then(|n| n.en)),
            postal: s(rec.postal.and_then(|p| p.code)),
            latitude: loc.latitude,
            longitude: loc.longitude,
            time_zone: s(loc.time_zone),
            continent: s(rec.continent.and_then(|c| c.code)),
            accuracy_km: loc.accuracy_radius.map(f64::from),
            anonymous: flags.map(|f| f.anonymous()),
        }))
    }
}

/// Location from headers set by a CDN the operator trusts: `X-Geo-Country`, `X-Geo-Region`, `X-Geo-City`,
/// `X-Geo-Postal`, `X-Geo-Latitude`, `X-Geo-Longitude`, `X-Geo-Time-Zone`, `X-Geo-Continent`, or Cloudflare's
/// visitor-location headers (`CF-IPCountry`, `CF-Region-Code`, `CF-IPCity`, `CF-Postal-Code`,
/// `CF-IPLatitude`, `CF-IPLongitude`, `CF-Timezone`, `CF-IPContinent`). `X-Geo-*` wins where both are set.
/// `None` when no location header is present. Cloudflare's `XX`/`T1` country placeholders are dropped.
pub fn geo_from_headers(headers: &BTreeMap<Text, Text>) -> Option<Geo> {
    let get = |names: &[&str]| -> Option<Text> {
        names.iter().find_map(|n| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| Text::from(v.trim()))
                .filter(|v| !v.is_empty())
        })
    };
    let num = |names: &[&str]| {
        get(names)
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|f| f.is_finite())
    };
    let geo = Geo {
        country: get(&["x-geo-country", "cf-ipcountry"])
            .filter(|c| c != "XX" && c != "T1")
            .map(|c| Text::from(c.to_ascii_uppercase())),
        region: get(&["x-geo-region", "cf-region-code"]),
        city: get(&["x-geo-city", "cf-ipcity"]),
        postal: get(&["x-geo-postal", "cf-postal-code"]),
        latitude: num(&["x-geo-latitude", "cf-iplatitude"]).filter(|l| (-90.0..=90.0).contains(l)),
        longitude: num(&["x-geo-longitude", "cf-iplongitude"])
            .filter(|l| (-180.0..=180.0).contains(l)),
        time_zone: get(&["x-geo-time-zone", "cf-timezone"]),
        continent: get(&["x-geo-continent", "cf-ipcontinent"]),
        accuracy_km: None,
        anonymous: None,
    };
    (geo != Geo::default()).then_some(geo)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_mode() {
        let h: BTreeMap<Text, Text> = [
            ("CF-IPCountry", "kr"),
            ("X-Geo-City", "Seoul"),
            ("cf-iplatitude", "37.5"),
            ("cf-iplongitude", "999"),
        ]
        .iter()
        .map(|(k, v)| (Text::from(*k), Text::from(*v)))
        .collect();
        let g = geo_from_headers(&h);
        assert_eq!(g.as_ref().and_then(|g| g.country.as_deref()), Some("KR"));
        assert_eq!(g.as_ref().and_then(|g| g.city.as_deref()), Some("Seoul"));
        assert_eq!(g.as_ref().and_then(|g| g.latitude), Some(37.5));
        assert_eq!(g.as_ref().and_then(|g| g.longitude), None);
        assert_eq!(geo_from_headers(&BTreeMap::new()), None);
        let xx: BTreeMap<Text, Text> = [("cf-ipcountry".into(), "XX".into())].into_iter().collect();
        assert_eq!(geo_from_headers(&xx), None);
    }
}
