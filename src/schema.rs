//! The typed vocabulary rules may read: built-in context paths plus the bundle's declared schema.
//!
//! Every path an expression names is resolved here at load time to a [`PathKey`] and a [`Type`]. The
//! compiler turns each distinct key into a precomputed slot, so a decision never looks a name up in a map.

use serde::{Deserialize, Serialize};

/// Static type of an expression.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Type {
    /// `true` / `false`
    Bool,
    /// 64-bit float
    Number,
    /// UTF-8 text
    String,
    /// A point in time (RFC 3339 in JSON), millisecond precision
    Timestamp,
    /// A length of time, e.g. `30d`
    Duration,
    /// A dotted version, compared numerically part by part (`1.10 > 1.9`)
    Version,
    /// A list of strings (`"vip" in profile.segments`)
    StringList,
    /// A list of numbers
    NumberList,
    /// A latitude/longitude pair (`geo`), for `distance_km` and `in_area`
    Geo,
    /// An event array of the declared event kind with this index
    Events(u16),
    /// One event of the declared event kind with this index
    Event(u16),
}

impl Type {
    /// The name used in the schema and in messages.
    pub fn name(self) -> &'static str {
        match self {
            Type::Bool => "bool",
            Type::Number => "number",
            Type::String => "string",
            Type::Timestamp => "timestamp",
            Type::Duration => "duration",
            Type::Version => "version",
            Type::StringList => "list<string>",
            Type::NumberList => "list<number>",
            Type::Geo => "geo",
            Type::Events(_) => "list of events",
            Type::Event(_) => "single event",
        }
    }

    /// Parse a declared attribute type.
    pub fn parse_declared(s: &str) -> Option<Type> {
        Some(match s {
            "bool" => Type::Bool,
            "number" => Type::Number,
            "string" => Type::String,
            "timestamp" => Type::Timestamp,
            "version" => Type::Version,
            "list<string>" => Type::StringList,
            "list<number>" => Type::NumberList,
            _ => return None,
        })
    }

    /// Names accepted by [`Type::parse_declared`].
    pub const DECLARABLE: [&'static str; 7] = [
        "bool",
        "number",
        "string",
        "timestamp",
        "version",
        "list<string>",
        "list<number>",
    ];
}

/// A declared name with its type.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Field {
    /// Name as used after the namespace, e.g. `tier` in `profile.tier`.
    pub name: String,
    /// Declared type.
    #[serde(rename = "type")]
    pub ty: Type,
}

/// An event array kept in the profile (`profile.purchases`). Every event has an implicit `at` timestamp.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventKind {
    /// Name, e.g. `purchases`.
    pub name: String,
    /// Declared fields besides `at`.
    pub fields: Vec<Field>,
}

/// The bundle's schema: what the rules may read beyond the built-in paths.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Schema {
    /// Profile traits: `profile.<name>`.
    #[serde(default)]
    pub traits: Vec<Field>,
    /// Caller-supplied custom attributes: `attributes.<name>`.
    #[serde(default)]
    pub attributes: Vec<Field>,
    /// Event arrays: `profile.<name>`.
    #[serde(default)]
    pub events: Vec<EventKind>,
    /// Request headers rules may read (lowercase): `request.headers.<name>`.
    #[serde(default)]
    pub headers: Vec<String>,
    /// Cookies rules may read: `request.cookies.<name>`.
    #[serde(default)]
    pub cookies: Vec<String>,
    /// Consent flags besides `personalization`: `profile.consent.<name>`.
    #[serde(default)]
    pub consent: Vec<String>,
}

/// Where a value comes from. Request-derived keys become context slots; profile keys index the decoded
/// profile directly.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PathKey {
    /// A built-in request/geo/device/time/visitor value.
    Builtin(Builtin),
    /// `request.query.<name>`
    Query(String),
    /// `request.headers.<name>`
    Header(String),
    /// `request.cookies.<name>`
    Cookie(String),
    /// `attributes.<name>` (index into the schema's attributes)
    Attribute(u16),
    /// `profile.<trait>` (index into the schema's traits)
    Trait(u16),
    /// `profile.segments`
    ProfileSegments,
    /// `profile.consent.<flag>`
    Consent(String),
    /// `profile.<events>` (index into the schema's event kinds)
    Events(u16),
}

impl PathKey {
    /// True when reading it uses the visitor's profile (subject to consent).
    pub fn reads_profile(&self) -> bool {
        matches!(
            self,
            PathKey::Trait(_) | PathKey::ProfileSegments | PathKey::Consent(_) | PathKey::Events(_)
        )
    }
}

macro_rules! builtins {
    ($($variant:ident => $path:literal : $ty:ident),* $(,)?) => {
        /// Built-in paths with a fixed name.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Builtin { $(#[doc = $path] $variant),* }

        /// Every built-in path: name, type, key.
        pub const BUILTINS: &[(&str, Type, Builtin)] = &[$(($path, Type::$ty, Builtin::$variant)),*];
    };
}

builtins! {
    Url => "request.url": String,
    Path => "request.path": String,
    Host => "request.host": String,
    Referrer => "request.referrer": String,
    UtmSource => "request.utm.source": String,
    UtmMedium => "request.utm.medium": String,
    UtmCampaign => "request.utm.campaign": String,
    UtmTerm => "request.utm.term": String,
    UtmContent => "request.utm.content": String,
    GeoPoint => "geo": Geo,
    Country => "geo.country": String,
    Region => "geo.region": String,
    City => "geo.city": String,
    Postal => "geo.postal": String,
    Latitude => "geo.latitude": Number,
    Longitude => "geo.longitude": Number,
    TimeZone => "geo.time_zone": String,
    Continent => "geo.continent": String,
    AccuracyKm => "geo.accuracy_km": Number,
    Anonymous => "geo.anonymous": Bool,
    DeviceType => "device.type": String,
    Os => "device.os": String,
    OsVersion => "device.os_version": Version,
    Browser => "device.browser": String,
    BrowserVersion => "device.browser_version": Version,
    Brand => "device.brand": String,
    Model => "device.model": String,
    IsBot => "device.is_bot": Bool,
    App => "device.app": String,
    Now => "time.now": Timestamp,
    Hour => "time.hour": Number,
    Minute => "time.minute": Number,
    Weekday => "time.weekday": String,
    Date => "time.date": String,
    Month => "time.month": Number,
    Day => "time.day": Number,
    VisitorId => "visitor.id": String,
    Returning => "visitor.returning": Bool,
    NewVisitor => "visitor.new": Bool,
    VisitCount => "visitor.visit_count": Number,
}

/// Why a path did not resolve.
#[derive(Clone, Debug, PartialEq)]
pub struct PathError {
    /// Lowercase message.
    pub message: String,
    /// Suggestion.
    pub help: Option<String>,
}

impl Schema {
    /// Resolve a dotted path (without `segment.`) to its key and type.
    pub fn resolve(&self, path: &str) -> Result<(PathKey, Type), PathError> {
        if let Some((_, ty, b)) = BUILTINS.iter().find(|(name, _, _)| *name == path) {
            return Ok((PathKey::Builtin(*b), *ty));
        }
        let (head, rest) = path.split_once('.').unwrap_or((path, ""));
        let unknown = |candidates: Vec<String>, extra: Option<String>| {
            let help = crate::diagnostic::did_you_mean(path, candidates.iter().map(String::as_str))
                .or(extra);
            Err(PathError {
                message: format!("unknown path `{path}`"),
                help,
            })
        };
        match head {
            "request" => {
                if let Some(name) = rest.strip_prefix("query.") {
                    if !name.is_empty() {
                        return Ok((PathKey::Query(name.to_string()), Type::String));
                    }
                }
                if let Some(name) = rest.strip_prefix("headers.") {
                    // Header names have `-`, identifiers cannot: `x_requested_with` reads `x-requested-with`.
                    let lower = name.to_ascii_lowercase().replace('_', "-");
                    if self.headers.contains(&lower) {
                        return Ok((PathKey::Header(lower), Type::String));
                    }
                    return Err(PathError {
                        message: format!("header `{name}` is not declared"),
                        help: Some(format!("add `\"{lower}\"` to `headers` in `[schema.request]`; only allow-listed headers reach the rules")),
                    });
                }
                if let Some(name) = rest.strip_prefix("cookies.") {
                    if self.cookies.iter().any(|c| c == name) {
                        return Ok((PathKey::Cookie(name.to_string()), Type::String));
                    }
                    return Err(PathError {
                        message: format!("cookie `{name}` is not declared"),
                        help: Some(format!("add `\"{name}\"` to `cookies` in `[schema.request]`; only allow-listed cookies reach the rules")),
                    });
                }
                unknown(self.candidates(), Some("request paths are `request.url`, `request.path`, `request.host`, `request.referrer`, `request.utm.*`, `request.query.<name>`, `request.headers.<name>`, `request.cookies.<name>`".into()))
            }
            "attributes" => {
                if let Some(i) = self.attributes.iter().position(|f| f.name == rest) {
                    return Ok((
                        PathKey::Attribute(index16(i)),
                        self.attributes.get(i).map(|f| f.ty).unwrap_or(Type::Bool),
                    ));
                }
                unknown(
                    self.candidates(),
                    Some("declare custom attributes in `[schema.attributes]`".into()),
                )
            }
            "profile" => {
                if rest == "segments" {
                    return Ok((PathKey::ProfileSegments, Type::StringList));
                }
                if let Some(flag) = rest.strip_prefix("consent.") {
                    if flag == "personalization" || self.consent.iter().any(|c| c == flag) {
                        return Ok((PathKey::Consent(flag.to_string()), Type::Bool));
                    }
                    return Err(PathError {
                        message: format!("consent flag `{flag}` is not declared"),
                        help: crate::diagnostic::did_you_mean(
                            flag,
                            self.consent
                                .iter()
                                .map(String::as_str)
                                .chain(["personalization"]),
                        )
                        .or_else(|| {
                            Some("declare consent flags in `consent` of `[schema]`".into())
                        }),
                    });
                }
                if let Some(i) = self.traits.iter().position(|f| f.name == rest) {
                    return Ok((
                        PathKey::Trait(index16(i)),
                        self.traits.get(i).map(|f| f.ty).unwrap_or(Type::Bool),
                    ));
                }
                if let Some(i) = self.events.iter().position(|e| e.name == rest) {
                    return Ok((PathKey::Events(index16(i)), Type::Events(index16(i))));
                }
                unknown(self.candidates(), Some("declare profile traits in `[schema.traits]` and event arrays in `[schema.events.<name>]`".into()))
            }
            _ => unknown(self.candidates(), None),
        }
    }

    /// Every resolvable path name, for suggestions.
    pub fn candidates(&self) -> Vec<String> {
        let mut v: Vec<String> = BUILTINS.iter().map(|(n, _, _)| (*n).to_string()).collect();
        v.extend(self.traits.iter().map(|f| format!("profile.{}", f.name)));
        v.extend(self.events.iter().map(|e| format!("profile.{}", e.name)));
        v.extend(
            self.attributes
                .iter()
                .map(|f| format!("attributes.{}", f.name)),
        );
        v.extend(
            self.headers
                .iter()
                .map(|h| format!("request.headers.{}", h.replace('-', "_"))),
        );
        v.extend(self.cookies.iter().map(|c| format!("request.cookies.{c}")));
        v.push("profile.segments".into());
        v.push("profile.consent.personalization".into());
        v.extend(self.consent.iter().map(|c| format!("profile.consent.{c}")));
        v
    }

    /// Field names of event kind `kind`, `at` last (for suggestions).
    pub fn event_field_names(&self, kind: u16) -> Vec<String> {
        self.events
            .get(kind as usize)
            .map(|k| {
                k.fields
                    .iter()
                    .map(|f| f.name.clone())
                    .chain(["at".to_string()])
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Type of field `name` of event kind `kind` (`at` is always a timestamp).
    pub fn event_field(&self, kind: u16, name: &str) -> Option<(Option<u16>, Type)> {
        if name == "at" {
            return Some((None, Type::Timestamp));
        }
        let k = self.events.get(kind as usize)?;
        let i = k.fields.iter().position(|f| f.name == name)?;
        Some((Some(index16(i)), k.fields.get(i)?.ty))
    }
}

/// Schema sizes are limited at load far below `u16::MAX`; saturate rather than wrap just in case.
pub(crate) fn index16(i: usize) -> u16 {
    u16::try_from(i).unwrap_or(u16::MAX)
}
