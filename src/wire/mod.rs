//! The wire format: request, response and error types shared by every runtime.
//!
//! The CLI, the native server, the Worker and the wasm package all (de)serialize exactly these types, so
//! the same input gives the same JSON everywhere; the conformance corpus in `tests/conformance` holds them
//! to it.

use serde::{Deserialize, Serialize};

mod attrs;
mod read;
mod write;
pub use attrs::{Attr, Attributes};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;
pub(crate) use write::{bundle_text, decision_text};

/// A request string: up to 24 bytes inline (country and currency codes, device and browser names,
/// most visitor ids and placement names), so parsing a request or copying a cached device or GeoIP
/// answer allocates for none of them. Dereferences to `str`; build one with `.into()` or `Text::from`.
pub type Text = compact_str::CompactString;

/// Request header with which an admin decides as of another time (RFC 3339), on every HTTP runtime.
/// Preview decisions have no side effects (no exposure log, no frequency-cap count).
pub const PREVIEW_HEADER: &str = "x-tailor-preview-at";

/// The time an admin asked to decide as of: `Ok(None)` without the [`PREVIEW_HEADER`]; `forbidden`
/// unless `authorization` carries `admin_token`; `invalid_request` unless the value is RFC 3339.
pub fn preview_time(
    value: Option<&str>,
    authorization: Option<&str>,
    admin_token: Option<&str>,
) -> Result<Option<i64>, ErrorResponse> {
    let Some(v) = value else {
        return Ok(None);
    };
    let granted = admin_token
        .is_some_and(|t| crate::auth::check_bearer(authorization, t) == crate::auth::Auth::Granted);
    if !granted {
        return Err(ErrorResponse::new(
            "forbidden",
            "`X-Tailor-Preview-At` needs the admin bearer token",
        ));
    }
    crate::time::parse_timestamp(v).map(Some).ok_or_else(|| {
        ErrorResponse::new(
            "invalid_request",
            "`X-Tailor-Preview-At` must be an RFC 3339 timestamp",
        )
    })
}

/// `POST /v1/decide` body and `tailor decide --request` file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecideRequest {
    /// Stable pseudonymous visitor id; allocation is sticky on it. Without it only experiences marked
    /// `requires_visitor_id = false` can match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visitor_id: Option<Text>,
    /// Placements to decide, answered in this order.
    pub placements: Vec<Text>,
    /// What is known about this request.
    #[serde(default)]
    pub context: RequestContext,
    /// Consent stated by the caller (e.g. from a consent banner); overrides nothing, denies only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent: Option<Consent>,
    /// Add a trace to every decision.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub explain: bool,
}

impl DecideRequest {
    /// Parse a request body: a fast reader for the common forms (`src/wire/read.rs`), serde for
    /// everything else; the result and every error message are serde's either way. Every runtime parses
    /// requests with this, so they answer alike.
    pub fn from_json(bytes: &[u8]) -> Result<DecideRequest, ErrorResponse> {
        if let Some(r) = read::read(bytes) {
            return Ok(r);
        }
        DecideRequest::from_json_serde(bytes)
    }

    /// Parse with serde alone (the reference for [`DecideRequest::from_json`]).
    pub fn from_json_serde(bytes: &[u8]) -> Result<DecideRequest, ErrorResponse> {
        serde_json::from_slice(bytes).map_err(|e| {
            ErrorResponse::new("invalid_request", format!("the request is not valid: {e}"))
        })
    }
}

/// The fast reader alone: `None` where [`DecideRequest::from_json`] would ask serde. For tests and
/// benchmarks that check which path a request takes.
pub fn read_fast(bytes: &[u8]) -> Option<DecideRequest> {
    read::read(bytes)
}

/// Request context.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestContext {
    /// Full page URL; `request.path`, `request.host`, `request.query.*` and `request.utm.*` come from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<Text>,
    /// Referrer URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referrer: Option<Text>,
    /// Request headers (names are matched case-insensitively; only allow-listed ones reach rules).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<Text, Text>,
    /// Cookies (only allow-listed ones reach rules).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub cookies: BTreeMap<Text, Text>,
    /// Client IP (used by adapters for GeoIP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<Text>,
    /// Location, when already resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub geo: Option<Geo>,
    /// Device, when already resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<Device>,
    /// `visitor.returning`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub returning: Option<bool>,
    /// `visitor.visit_count`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visit_count: Option<f64>,
    /// Custom attributes declared in the bundle's `[schema.attributes]`.
    #[serde(default, skip_serializing_if = "Attributes::is_empty")]
    pub attributes: Attributes,
}

/// Location fields (`geo.*`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Geo {
    /// ISO 3166-1 alpha-2, e.g. `KR`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<Text>,
    /// First subdivision ISO code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<Text>,
    /// City name in English.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<Text>,
    /// Postal code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postal: Option<Text>,
    /// Latitude.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latitude: Option<f64>,
    /// Longitude.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub longitude: Option<f64>,
    /// IANA time zone; `time.*` is evaluated in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<Text>,
    /// Continent code, e.g. `AS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continent: Option<Text>,
    /// Accuracy radius in km.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy_km: Option<f64>,
    /// The address is an anonymizer: VPN, public or residential proxy, Tor exit, hosting provider (when the
    /// GeoIP database has these flags).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anonymous: Option<bool>,
}

/// Device fields (`device.*`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Device {
    /// `mobile`, `tablet`, `desktop`, `tv`, `console`, `wearable` or `bot`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<Text>,
    /// OS family, e.g. `iOS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<Text>,
    /// OS version, e.g. `17.4`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_version: Option<Text>,
    /// Browser family, e.g. `Mobile Safari`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub browser: Option<Text>,
    /// Browser version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub browser_version: Option<Text>,
    /// Brand, e.g. `Apple`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brand: Option<Text>,
    /// Model, e.g. `iPhone`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<Text>,
    /// Known crawler or bot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_bot: Option<bool>,
    /// Android app package hosting the web view (from `X-Requested-With`), e.g. `com.example.shop`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<Text>,
}

/// Consent flags.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Consent {
    /// Personalization consent; `false` disables every profile-based experience.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub personalization: Option<bool>,
}

/// `POST /v1/events` body: events are checked and stamped by [`crate::snapshot::parse_event`].
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventBatch {
    /// `{"visitor_id", "type", "at"?, …fields}` each.
    pub events: Vec<serde_json::Value>,
}

/// The value of header `name` (case-insensitive) in a header map.
///
/// Names are nearly always written as `name` is (HTTP/2 and the HTTP adapters lower-case them), so each
/// is compared exactly before case-insensitively: measured with callgrind, the User-Agent lookup of
/// every decide went from ~265 instructions (`eq_ignore_ascii_case` byte by byte) to ~115.
pub fn header<'a>(h: &'a BTreeMap<Text, Text>, name: &str) -> Option<&'a str> {
    h.iter()
        .find(|(k, _)| {
            k.len() == name.len()
                && (crate::context::scan::eq_bytes(k.as_bytes(), name.as_bytes())
                    || k.eq_ignore_ascii_case(name))
        })
        .map(|(_, v)| v.as_str())
}

/// Headers an HTTP adapter copies from the HTTP request into `context.headers` when the body does not
/// set them: what device detection and allow-listed rules read. Never `Authorization` or `Cookie`.
/// `trust_geo` adds the `X-Geo-*` / `CF-*` location headers of a CDN the operator trusts.
pub fn forwarded_header(name: &str, trust_geo: bool) -> bool {
    matches!(name, "user-agent" | "accept-language" | "x-requested-with")
        || name.starts_with("sec-ch-ua")
        || (trust_geo && (name.starts_with("x-geo-") || name.starts_with("cf-")))
}

/// Identifies the bundle that answered. Shared strings: every response carries one, and cloning it
/// costs three reference counts rather than three allocations.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleRef {
    /// Bundle id.
    pub id: Arc<str>,
    /// Bundle version.
    pub version: Arc<str>,
    /// `sha256:<hex>` content hash.
    pub hash: Arc<str>,
}

/// The answer to a [`DecideRequest`].
///
/// An engine's answer borrows the bundle's ids and content from the engine (`Cow::Borrowed`) instead of
/// cloning their `Arc`s: every decision on every core would otherwise increment and decrement the same
/// ~15 reference counts, cache lines all cores write (measured under the server's load benchmark:
/// borrowing took 0.35 µs of server CPU off a four-placement decide on two cores). A deserialized
/// response owns its values; [`DecideResponse::into_owned`] detaches an engine's.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DecideResponse<'a> {
    /// Which bundle decided.
    pub bundle: Cow<'a, BundleRef>,
    /// One per requested placement, in request order.
    pub decisions: Vec<Decision<'a>>,
    /// Problems with this request's data that made some experiences not match (e.g. an attribute of the
    /// wrong type). The decision still succeeded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// The text of `bundle` when the engine made it once at load (not part of the wire format;
    /// [`RenderedBundle::default`] when building a response by hand).
    #[serde(skip)]
    pub rendered: RenderedBundle<'a>,
}

/// `{"bundle":{...},"decisions":[`, made by the engine at load, used by [`DecideResponse::to_json`] only
/// while the response still borrows the very [`BundleRef`] it was made for (see [`Rendered`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct RenderedBundle<'a>(Option<(&'a [u8], usize)>);

impl<'a> RenderedBundle<'a> {
    pub(crate) fn of(bundle: &BundleRef, json: &'a [u8]) -> RenderedBundle<'a> {
        RenderedBundle(Some((json, std::ptr::from_ref(bundle).addr())))
    }

    pub(crate) fn json_for(&self, bundle: &BundleRef) -> Option<&'a [u8]> {
        let (json, at) = self.0?;
        (std::ptr::from_ref(bundle).addr() == at).then_some(json)
    }
}

impl DecideResponse<'_> {
    /// The same response, owning its values (outliving the engine that decided).
    pub fn into_owned(self) -> DecideResponse<'static> {
        DecideResponse {
            bundle: Cow::Owned(self.bundle.into_owned()),
            decisions: self
                .decisions
                .into_iter()
                .map(Decision::into_owned)
                .collect(),
            notes: self.notes,
            rendered: RenderedBundle::default(),
        }
    }

    /// Record a problem an adapter met outside the engine (e.g. the profile store failed, so the visitor
    /// was decided without a profile): in `notes`, and in every decision's trace summary when the
    /// request asked to explain, so a reader of one decision's trace sees it too.
    pub fn add_note(&mut self, note: String) {
        for d in &mut self.decisions {
            if let Some(t) = &mut d.trace {
                t.summary.push_str(" Note: ");
                t.summary.push_str(&note);
                t.summary.push('.');
            }
        }
        self.notes.push(note);
    }
}

/// Why a placement got its content.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// An experience matched; `experience` and `variant` say which.
    Matched,
    /// No experience matched: default content.
    Default,
    /// The visitor is in a holdout for this placement: default content.
    Holdout,
    /// The bundle has no such placement: `content` is null.
    UnknownPlacement,
}

/// The decision for one placement. Ids and content are borrowed from the compiled bundle (no allocation
/// and no reference count per decision; see [`DecideResponse`]).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Decision<'a> {
    /// Placement id.
    pub placement: Cow<'a, Arc<str>>,
    /// Winning experience, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experience: Option<Cow<'a, Arc<str>>>,
    /// Winning variant, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<Cow<'a, Arc<str>>>,
    /// The content to render (the variant's, or the placement default).
    pub content: Cow<'a, Arc<RawValue>>,
    /// Why.
    pub reason: Reason,
    /// Present when the request asked to `explain`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<Trace>,
    /// This decision's JSON text when the engine made it once at load (not part of the wire format;
    /// [`Rendered::default`] when building a decision by hand).
    #[serde(skip)]
    pub rendered: Rendered<'a>,
}

/// A decision's JSON text, written by the engine when it compiled the bundle: a decision without a trace
/// is a constant of the bundle (placement, experience, variant, content, reason), so
/// [`DecideResponse::to_json`] copies its text in one piece instead of scanning each id for characters
/// to escape (~1.2k instructions per four-placement decide, callgrind). It records which values it was
/// made for (the addresses of their shared text, and the reason) and is used only while the decision
/// still holds exactly those: a decision changed after the engine made it is written field by field.
#[derive(Clone, Copy, Debug, Default)]
pub struct Rendered<'a>(Option<RenderedFor<'a>>);

#[derive(Clone, Copy, Debug)]
struct RenderedFor<'a> {
    json: &'a [u8],
    placement: usize,
    experience: usize,
    variant: usize,
    content: usize,
    reason: Reason,
}

/// Where a shared value's data lives (what [`Rendered`] compares).
fn addr<T: ?Sized>(a: &Arc<T>) -> usize {
    Arc::as_ptr(a).cast::<u8>().addr()
}

fn opt_addr(s: Option<&Cow<'_, Arc<str>>>) -> usize {
    s.map_or(0, |s| addr(s))
}

impl<'a> Rendered<'a> {
    /// `json` is `d`'s text, as the field-by-field writer writes it.
    pub(crate) fn of(d: &Decision<'_>, json: &'a [u8]) -> Rendered<'a> {
        Rendered(Some(RenderedFor {
            json,
            placement: addr(&d.placement),
            experience: opt_addr(d.experience.as_ref()),
            variant: opt_addr(d.variant.as_ref()),
            content: addr(&d.content),
            reason: d.reason,
        }))
    }

    /// The text, if `d` still holds what it was made for.
    pub(crate) fn json_for(&self, d: &Decision<'_>) -> Option<&'a [u8]> {
        let r = self.0.as_ref()?;
        let same = d.trace.is_none()
            && d.reason == r.reason
            && addr(&d.placement) == r.placement
            && opt_addr(d.experience.as_ref()) == r.experience
            && opt_addr(d.variant.as_ref()) == r.variant
            && addr(&d.content) == r.content;
        same.then_some(r.json)
    }
}

impl Decision<'_> {
    /// The placement id as text.
    pub fn placement(&self) -> &str {
        &self.placement
    }

    /// The winning experience's id as text.
    pub fn experience(&self) -> Option<&str> {
        self.experience.as_deref().map(|e| &**e)
    }

    /// The winning variant's id as text.
    pub fn variant(&self) -> Option<&str> {
        self.variant.as_deref().map(|v| &**v)
    }

    /// The same decision, owning its values.
    pub fn into_owned(self) -> Decision<'static> {
        let own = |c: Cow<'_, Arc<str>>| Cow::Owned(c.into_owned());
        Decision {
            placement: own(self.placement),
            experience: self.experience.map(own),
            variant: self.variant.map(own),
            content: Cow::Owned(self.content.into_owned()),
            reason: self.reason,
            trace: self.trace,
            rendered: Rendered::default(),
        }
    }
}

/// How a decision was reached.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Trace {
    /// Holdouts covering this placement and the visitor's draw in each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub holdouts: Vec<HoldoutTrace>,
    /// Every experience considered, in evaluation order, up to the winner.
    pub experiences: Vec<ExperienceTrace>,
    /// One sentence on the outcome.
    pub summary: String,
}

/// A holdout draw.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HoldoutTrace {
    /// Holdout id.
    pub holdout: String,
    /// The visitor's bucket (0..9999), absent without a visitor id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<u32>,
    /// Whether the visitor is held out.
    pub held_out: bool,
}

/// What happened to one experience.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It won.
    Selected,
    /// `now` is outside its schedule.
    NotScheduled,
    /// The audience was false.
    AudienceFalse,
    /// The request's data had a problem this experience depends on.
    InputError,
    /// It uses the profile and personalization consent is denied.
    ConsentRequired,
    /// It needs a visitor id and the request has none.
    VisitorIdRequired,
    /// The visitor's traffic bucket is outside the experience's traffic share.
    TrafficExcluded,
    /// Another experience of its mutual-exclusion group owns this visitor.
    ExclusionGroup,
    /// The visitor has seen it `frequency_cap` times already.
    FrequencyCapped,
}

/// One experience in a trace.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExperienceTrace {
    /// Experience id.
    pub experience: String,
    /// What happened.
    pub outcome: Outcome,
    /// Details: the first false sub-expression with its source text, the input problem, the cap…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Buckets drawn for this experience.
    #[serde(default, skip_serializing_if = "Buckets::is_empty")]
    pub buckets: Buckets,
}

/// Buckets drawn (each 0..9999).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Buckets {
    /// Traffic draw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic: Option<u32>,
    /// Mutual-exclusion draw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclusion: Option<u32>,
    /// Variant draw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<u32>,
}

impl Buckets {
    /// True when nothing was drawn.
    pub fn is_empty(&self) -> bool {
        self.traffic.is_none() && self.exclusion.is_none() && self.variant.is_none()
    }
}

/// Every error answer: HTTP adapters map `code` to a status, the CLI prints it, wasm throws it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorResponse {
    /// Stable code: `invalid_request`, `invalid_profile`, `invalid_bundle`, …
    pub code: String,
    /// One lowercase sentence.
    pub message: String,
    /// Every diagnostic, for `invalid_bundle`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<crate::diagnostic::Diagnostic>,
}

impl ErrorResponse {
    /// A new error without diagnostics.
    pub fn new(code: &str, message: impl Into<String>) -> ErrorResponse {
        ErrorResponse {
            code: code.to_string(),
            message: message.into(),
            errors: Vec::new(),
        }
    }
}

impl ErrorResponse {
    /// The HTTP status every HTTP adapter (native server, Worker) answers this error with, so the same
    /// failure has the same status everywhere. Unknown codes are server errors.
    pub fn http_status(&self) -> u16 {
        match self.code.as_str() {
            "invalid_request" | "invalid_profile" | "invalid_event" | "unknown_placement" => 400,
            "unauthorized" => 401,
            "forbidden" | "unsigned_bundle" | "bad_signature" | "tampered_bundle" => 403,
            "not_found" => 404,
            "method_not_allowed" => 405,
            "no_previous_bundle" | "conflict" => 409,
            "too_large" => 413,
            "invalid_bundle" => 422,
            "no_bundle" | "unavailable" => 503,
            _ => 500,
        }
    }
}

impl std::fmt::Display for ErrorResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ErrorResponse {}
