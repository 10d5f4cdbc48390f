//! Reading a bundle directory's TOML files into [`BundleDef`], keeping a span for every value.
//!
//! Structure is checked here (known keys, value types, ranges, required keys, duplicates, time zones);
//! expressions are only carried along, with the span of their text, for the checker. Every problem is
//! recorded and reading goes on, so one run reports everything.

use super::def::{
    AreaDef, BundleDef, ExperienceDef, HoldoutDef, PlacementDef, SegmentDef, VariantDef,
};
use crate::diagnostic::{did_you_mean, Diagnostic, Diagnostics, SourceFile, Span};
use crate::schema::{EventKind, Field, Schema, Type};
use std::collections::HashMap;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// Where each definition came from: location path (e.g. `placements.home_hero.experiences[0].audience`)
/// → span. For strings the span covers the text between the quotes, so expression offsets add to it.
#[derive(Clone, Debug, Default)]
pub struct Locs {
    map: HashMap<String, Span>,
}

impl Locs {
    /// Span of a location, if it came from source.
    pub fn get(&self, loc: &str) -> Option<Span> {
        self.map.get(loc).copied()
    }
    /// True when nothing came from source (an artifact load).
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
    fn set(&mut self, loc: String, span: Span) {
        self.map.insert(loc, span);
    }
}

type V<'a> = Spanned<DeValue<'a>>;

struct Reader<'f> {
    file: u32,
    text: &'f str,
    diags: &'f mut Diagnostics,
    locs: &'f mut Locs,
}

const TOP_KEYS: [&str; 8] = [
    "bundle",
    "schema",
    "segments",
    "areas",
    "holdouts",
    "placements",
    "triggers",
    "recommendations",
];

/// Is `s` an identifier (`[A-Za-z_][A-Za-z0-9_]*`)?
pub fn is_ident(s: &str) -> bool {
    let mut cs = s.chars();
    cs.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && cs.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Is `s` a usable id (`[A-Za-z0-9_.-]+`, at most 128 bytes)?
pub fn is_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// Read every file into one definition. Always returns a definition (possibly partial); errors are in
/// `diags`.
pub fn read_bundle(files: &[SourceFile], diags: &mut Diagnostics) -> (BundleDef, Locs) {
    let mut locs = Locs::default();
    let mut def = BundleDef {
        id: String::new(),
        version: String::new(),
        description: None,
        salt: String::new(),
        require_consent: false,
        schema: Schema::default(),
        segments: Vec::new(),
        areas: Vec::new(),
        holdouts: Vec::new(),
        placements: Vec::new(),
    };
    let mut bundle_seen: Option<Span> = None;
    let mut schema_seen: Option<Span> = None;
    for (fi, f) in files.iter().enumerate() {
        let file = u32::try_from(fi).unwrap_or(u32::MAX);
        let (doc, errors) = DeTable::parse_recoverable(&f.text);
        for e in errors {
            let span = e.span().map(|r| Span::new(file, r.start, r.end));
            let msg = e.message().trim().trim_end_matches('.').to_string();
            diags.push(
                Diagnostic::error("toml-syntax", lowercase_first(&msg))
                    .at(span)
                    .help("see the TOML syntax at toml.io"),
            );
        }
        let mut r = Reader {
            file,
            text: &f.text,
            diags,
            locs: &mut locs,
        };
        for (k, v) in doc.get_ref().iter() {
            let key = k.get_ref().as_ref();
            let kspan = r.span(k.span());
            match key {
                "bundle" => {
                    if let Some(prev) = bundle_seen {
                        r.diags.push(Diagnostic::error("duplicate", "`[bundle]` is defined twice").at(Some(kspan)).help(format!("the first definition is in file #{}; keep one", prev.file + 1)));
                    }
                    bundle_seen = Some(kspan);
                    r.bundle(v, &mut def);
                }
                "schema" => {
                    if schema_seen.is_some() {
                        r.diags.push(Diagnostic::error("duplicate", "`[schema]` is defined twice").at(Some(kspan)).help("keep the whole schema in one file"));
                    }
                    schema_seen = Some(kspan);
                    def.schema = r.schema(v);
                }
                "segments" => r.each_table(v, "segments", |r, id, idspan, t, tspan| {
                    if !is_ident(id) {
                        r.diags.push(Diagnostic::error("invalid-id", format!("segment id `{id}` is not an identifier")).at(Some(idspan)).help("segment ids are referenced as `segment.<id>`: use letters, digits and `_`"));
                    }
                    if def.segments.iter().any(|s| s.id == id) {
                        r.diags.push(Diagnostic::error("duplicate", format!("segment `{id}` is defined twice")).at(Some(idspan)));
                        return;
                    }
                    let loc = format!("segments.{id}");
                    r.keys(t, &loc, &["description", "when"]);
                    let when = r.req_str(t, "when", &loc, tspan).unwrap_or_default();
                    let description = r.opt_str(t, "description", &loc);
                    def.segments.push(SegmentDef { id: id.to_string(), description, when });
                }),
                "areas" => r.each_table(v, "areas", |r, id, idspan, t, tspan| {
                    if def.areas.iter().any(|a| a.id == id) {
                        r.diags.push(Diagnostic::error("duplicate", format!("area `{id}` is defined twice")).at(Some(idspan)));
                        return;
                    }
                    let loc = format!("areas.{id}");
                    r.keys(t, &loc, &["polygon"]);
                    let polygon = r.polygon(t, &loc, tspan);
                    def.areas.push(AreaDef { id: id.to_string(), polygon });
                }),
                "holdouts" => r.each_table(v, "holdouts", |r, id, idspan, t, tspan| {
                    if !is_id(id) {
                        r.diags.push(Diagnostic::error("invalid-id", format!("holdout id `{id}` has characters outside `A-Z a-z 0-9 _ - .`")).at(Some(idspan)));
                    }
                    if def.holdouts.iter().any(|h| h.id == id) {
                        r.diags.push(Diagnostic::error("duplicate", format!("holdout `{id}` is defined twice")).at(Some(idspan)));
                        return;
                    }
                    let loc = format!("holdouts.{id}");
                    r.keys(t, &loc, &["percent", "placements"]);
                    let percent = r.percent(t, "percent", &loc).unwrap_or_else(|| {
                        r.diags.push(Diagnostic::error("missing-key", format!("holdout `{id}` needs `percent`")).at(Some(tspan)).help("e.g. `percent = 10`"));
                        0.0
                    });
                    let placements = r.str_list(t, "placements", &loc);
                    def.holdouts.push(HoldoutDef { id: id.to_string(), percent, placements });
                }),
                "placements" => r.each_table(v, "placements", |r, id, idspan, t, _| {
                    if !is_id(id) {
                        r.diags.push(Diagnostic::error("invalid-id", format!("placement id `{id}` has characters outside `A-Z a-z 0-9 _ - .`")).at(Some(idspan)));
                    }
                    if def.placements.iter().any(|p| p.id == id) {
                        r.diags.push(Diagnostic::error("duplicate", format!("placement `{id}` is defined twice")).at(Some(idspan)).help("define each placement in one file"));
                        return;
                    }
                    let p = r.placement(id, t);
                    def.placements.push(p);
                }),
                "triggers" | "recommendations" => {
                    r.diags.push(Diagnostic::warning("reserved", format!("`[{key}]` is reserved for a later version of tailor and is ignored")).at(Some(kspan)));
                }
                other => {
                    r.diags.push(Diagnostic::error("unknown-key", format!("unknown section `{other}`")).at(Some(kspan)).maybe_help(did_you_mean(other, TOP_KEYS).or_else(|| Some(format!("sections are {}", TOP_KEYS.map(|k| format!("`{k}`")).join(", "))))));
                }
            }
        }
    }
    if bundle_seen.is_none() && !files.is_empty() {
        diags.push(
            Diagnostic::error("missing-key", "no file defines `[bundle]`")
                .help("add `[bundle]` with `id` and `version` to one file, e.g. `bundle.toml`")
                .at(Some(Span::new(0, 0, 0))),
        );
    }
    if def.salt.is_empty() {
        def.salt = def.id.clone();
    }
    (def, locs)
}

fn lowercase_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

fn type_name(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a bool",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

/// A TOML value as JSON (content of variants and defaults).
pub fn to_json(v: &DeValue<'_>) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        DeValue::String(s) => J::String(s.to_string()),
        DeValue::Integer(i) => {
            let s: String = i.as_str().chars().filter(|c| *c != '_').collect();
            let s = s.trim_start_matches('+');
            let s = s
                .strip_prefix("0x")
                .or_else(|| s.strip_prefix("0o"))
                .or_else(|| s.strip_prefix("0b"))
                .unwrap_or(s);
            i64::from_str_radix(s, i.radix())
                .map(J::from)
                .unwrap_or(J::Null)
        }
        DeValue::Float(f) => {
            let s: String = f.as_str().chars().filter(|c| *c != '_').collect();
            s.parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(J::Number)
                .unwrap_or(J::Null)
        }
        DeValue::Boolean(b) => J::Bool(*b),
        DeValue::Datetime(d) => J::String(d.to_string()),
        DeValue::Array(a) => J::Array(a.iter().map(|x| to_json(x.get_ref())).collect()),
        DeValue::Table(t) => J::Object(
            t.iter()
                .map(|(k, x)| (k.get_ref().to_string(), to_json(x.get_ref())))
                .collect(),
        ),
    }
}

impl<'f> Reader<'f> {
    fn span(&self, r: std::ops::Range<usize>) -> Span {
        Span::new(self.file, r.start, r.end)
    }

    /// Span of a string's content (inside the quotes).
    fn content_span(&self, r: std::ops::Range<usize>) -> Span {
        let raw = self.text.get(r.clone()).unwrap_or("");
        let mut skip = if raw.starts_with("\"\"\"") || raw.starts_with("'''") {
            3
        } else if raw.starts_with('"') || raw.starts_with('\'') {
            1
        } else {
            0
        };
        if skip == 3 {
            // TOML trims a newline right after the opening delimiter of a multi-line string.
            let rest = raw.get(3..).unwrap_or("");
            if rest.starts_with("\r\n") {
                skip += 2;
            } else if rest.starts_with('\n') {
                skip += 1;
            }
        }
        Span::new(
            self.file,
            r.start + skip,
            r.end
                .saturating_sub(if skip >= 3 { 3 } else { skip.min(1) }),
        )
    }

    fn err(&mut self, code: &str, msg: impl Into<String>, span: Span, help: Option<String>) {
        self.diags
            .push(Diagnostic::error(code, msg).at(Some(span)).maybe_help(help));
    }

    fn as_table<'v, 'a>(&mut self, v: &'v V<'a>, what: &str) -> Option<&'v DeTable<'a>> {
        match v.get_ref() {
            DeValue::Table(t) => Some(t),
            other => {
                let span = self.span(v.span());
                self.err(
                    "type-mismatch",
                    format!("`{what}` should be a table, found {}", type_name(other)),
                    span,
                    Some(format!("write `[{what}]` followed by its keys")),
                );
                None
            }
        }
    }

    fn find<'v, 'a>(t: &'v DeTable<'a>, key: &str) -> Option<&'v V<'a>> {
        t.iter()
            .find(|(k, _)| k.get_ref().as_ref() == key)
            .map(|(_, v)| v)
    }

    fn keys(&mut self, t: &DeTable<'_>, loc: &str, allowed: &[&str]) {
        for (k, _) in t.iter() {
            let key = k.get_ref().as_ref();
            if !allowed.contains(&key) {
                let span = self.span(k.span());
                let help = did_you_mean(key, allowed.iter().copied()).unwrap_or_else(|| {
                    format!(
                        "keys of `{loc}` are {}",
                        allowed
                            .iter()
                            .map(|a| format!("`{a}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                });
                self.err(
                    "unknown-key",
                    format!("unknown key `{key}` in `{loc}`"),
                    span,
                    Some(help),
                );
            }
        }
    }

    fn each_table(
        &mut self,
        v: &V<'_>,
        what: &str,
        mut f: impl FnMut(&mut Self, &str, Span, &DeTable<'_>, Span),
    ) {
        let Some(t) = self.as_table(v, what) else {
            return;
        };
        for (k, item) in t.iter() {
            let id = k.get_ref().as_ref();
            let idspan = self.span(k.span());
            match item.get_ref() {
                DeValue::Table(inner) => {
                    let tspan = self.span(item.span());
                    f(self, id, idspan, inner, tspan);
                }
                other => {
                    let span = self.span(item.span());
                    self.err(
                        "type-mismatch",
                        format!(
                            "`{what}.{id}` should be a table, found {}",
                            type_name(other)
                        ),
                        span,
                        Some(format!("write `[{what}.{id}]` followed by its keys")),
                    );
                }
            }
        }
    }

    fn opt_str(&mut self, t: &DeTable<'_>, key: &str, loc: &str) -> Option<String> {
        let v = Self::find(t, key)?;
        match v.get_ref() {
            DeValue::String(s) => {
                let span = self.content_span(v.span());
                self.locs.set(format!("{loc}.{key}"), span);
                Some(s.to_string())
            }
            other => {
                let span = self.span(v.span());
                self.err(
                    "type-mismatch",
                    format!("`{key}` should be a string, found {}", type_name(other)),
                    span,
                    None,
                );
                None
            }
        }
    }

    fn req_str(&mut self, t: &DeTable<'_>, key: &str, loc: &str, owner: Span) -> Option<String> {
        let has = Self::find(t, key).is_some();
        let s = self.opt_str(t, key, loc);
        if !has {
            self.err("missing-key", format!("`{loc}` needs `{key}`"), owner, None);
        }
        s
    }

    fn opt_bool(&mut self, t: &DeTable<'_>, key: &str) -> Option<bool> {
        let v = Self::find(t, key)?;
        match v.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            other => {
                let span = self.span(v.span());
                self.err(
                    "type-mismatch",
                    format!(
                        "`{key}` should be true or false, found {}",
                        type_name(other)
                    ),
                    span,
                    None,
                );
                None
            }
        }
    }

    fn opt_num(&mut self, t: &DeTable<'_>, key: &str, loc: &str) -> Option<f64> {
        let v = Self::find(t, key)?;
        let span = self.span(v.span());
        self.locs.set(format!("{loc}.{key}"), span);
        match to_json(v.get_ref()) {
            serde_json::Value::Number(n)
                if matches!(v.get_ref(), DeValue::Integer(_) | DeValue::Float(_)) =>
            {
                n.as_f64()
            }
            _ => {
                self.err(
                    "type-mismatch",
                    format!(
                        "`{key}` should be a number, found {}",
                        type_name(v.get_ref())
                    ),
                    span,
                    None,
                );
                None
            }
        }
    }

    fn opt_int(
        &mut self,
        t: &DeTable<'_>,
        key: &str,
        loc: &str,
        min: i64,
        max: i64,
    ) -> Option<i64> {
        let v = Self::find(t, key)?;
        let span = self.span(v.span());
        self.locs.set(format!("{loc}.{key}"), span);
        let n = match (v.get_ref(), to_json(v.get_ref())) {
            (DeValue::Integer(_), serde_json::Value::Number(n)) => n.as_i64(),
            _ => None,
        };
        match n {
            Some(n) if (min..=max).contains(&n) => Some(n),
            Some(n) => {
                self.err(
                    "out-of-range",
                    format!("`{key}` is {n}; it must be between {min} and {max}"),
                    span,
                    None,
                );
                None
            }
            None => {
                self.err(
                    "type-mismatch",
                    format!(
                        "`{key}` should be an integer, found {}",
                        type_name(v.get_ref())
                    ),
                    span,
                    None,
                );
                None
            }
        }
    }

    fn percent(&mut self, t: &DeTable<'_>, key: &str, loc: &str) -> Option<f64> {
        let p = self.opt_num(t, key, loc)?;
        if !(0.0..=100.0).contains(&p) {
            let span = self.locs.get(&format!("{loc}.{key}")).unwrap_or_default();
            self.err(
                "out-of-range",
                format!("`{key}` is {p}; it must be between 0 and 100"),
                span,
                Some("it is a percentage of visitors".into()),
            );
            return None;
        }
        Some(p)
    }

    fn str_list(&mut self, t: &DeTable<'_>, key: &str, loc: &str) -> Vec<String> {
        let Some(v) = Self::find(t, key) else {
            return Vec::new();
        };
        let span = self.span(v.span());
        self.locs.set(format!("{loc}.{key}"), span);
        let DeValue::Array(a) = v.get_ref() else {
            self.err(
                "type-mismatch",
                format!(
                    "`{key}` should be an array of strings, found {}",
                    type_name(v.get_ref())
                ),
                span,
                Some(format!("e.g. `{key} = [\"a\", \"b\"]`")),
            );
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, item) in a.iter().enumerate() {
            match item.get_ref() {
                DeValue::String(s) => {
                    let sp = self.content_span(item.span());
                    self.locs.set(format!("{loc}.{key}[{i}]"), sp);
                    out.push(s.to_string());
                }
                other => {
                    let sp = self.span(item.span());
                    self.err(
                        "type-mismatch",
                        format!(
                            "items of `{key}` should be strings, found {}",
                            type_name(other)
                        ),
                        sp,
                        None,
                    );
                }
            }
        }
        out
    }

    fn bundle(&mut self, v: &V<'_>, def: &mut BundleDef) {
        let Some(t) = self.as_table(v, "bundle") else {
            return;
        };
        let owner = self.span(v.span());
        self.keys(
            t,
            "bundle",
            &["id", "version", "description", "salt", "require_consent"],
        );
        if let Some(id) = self.req_str(t, "id", "bundle", owner) {
            if !is_id(&id) {
                let span = self.locs.get("bundle.id").unwrap_or(owner);
                self.err(
                    "invalid-id",
                    format!("bundle id `{id}` has characters outside `A-Z a-z 0-9 _ - .`"),
                    span,
                    None,
                );
            }
            def.id = id;
        }
        def.version = self
            .req_str(t, "version", "bundle", owner)
            .unwrap_or_default();
        def.description = self.opt_str(t, "description", "bundle");
        def.salt = self.opt_str(t, "salt", "bundle").unwrap_or_default();
        def.require_consent = self.opt_bool(t, "require_consent").unwrap_or(false);
    }

    fn fields(&mut self, v: &V<'_>, loc: &str) -> Vec<Field> {
        let Some(t) = self.as_table(v, loc) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (k, tv) in t.iter() {
            let name = k.get_ref().as_ref();
            let kspan = self.span(k.span());
            if !is_ident(name) {
                self.err(
                    "invalid-id",
                    format!("`{name}` is not an identifier"),
                    kspan,
                    Some("names are read in expressions: use letters, digits and `_`".into()),
                );
            }
            let vspan = self.span(tv.span());
            match tv.get_ref() {
                DeValue::String(s) => match Type::parse_declared(s) {
                    Some(ty) => out.push(Field {
                        name: name.to_string(),
                        ty,
                    }),
                    None => {
                        let help = did_you_mean(s, Type::DECLARABLE).unwrap_or_else(|| {
                            format!(
                                "types are {}",
                                Type::DECLARABLE.map(|t| format!("`{t}`")).join(", ")
                            )
                        });
                        self.err(
                            "unknown-type",
                            format!("unknown type `{s}`"),
                            self.content_span(tv.span()),
                            Some(help),
                        );
                    }
                },
                other => self.err(
                    "type-mismatch",
                    format!(
                        "the type of `{name}` should be a string like \"number\", found {}",
                        type_name(other)
                    ),
                    vspan,
                    None,
                ),
            }
        }
        out
    }

    fn schema(&mut self, v: &V<'_>) -> Schema {
        let mut s = Schema::default();
        let Some(t) = self.as_table(v, "schema") else {
            return s;
        };
        self.keys(
            t,
            "schema",
            &["traits", "attributes", "events", "request", "consent"],
        );
        if let Some(x) = Self::find(t, "traits") {
            s.traits = self.fields(x, "schema.traits");
        }
        if let Some(x) = Self::find(t, "attributes") {
            s.attributes = self.fields(x, "schema.attributes");
        }
        if let Some(x) = Self::find(t, "events") {
            if let Some(et) = self.as_table(x, "schema.events") {
                for (k, ev) in et.iter() {
                    let name = k.get_ref().as_ref().to_string();
                    let loc = format!("schema.events.{name}");
                    let mut fields = self.fields(ev, &loc);
                    if let Some(pos) = fields.iter().position(|f| f.name == "at") {
                        let span = self.span(k.span());
                        self.err(
                            "reserved",
                            format!("`{loc}.at` is implicit"),
                            span,
                            Some(
                                "every event has an `at` timestamp; remove the declaration".into(),
                            ),
                        );
                        fields.remove(pos);
                    }
                    s.events.push(EventKind { name, fields });
                }
            }
        }
        if let Some(x) = Self::find(t, "request") {
            if let Some(rt) = self.as_table(x, "schema.request") {
                self.keys(rt, "schema.request", &["headers", "cookies"]);
                s.headers = self
                    .str_list(rt, "headers", "schema.request")
                    .into_iter()
                    .map(|h| h.to_ascii_lowercase())
                    .collect();
                s.cookies = self.str_list(rt, "cookies", "schema.request");
            }
        }
        s.consent = self.str_list(t, "consent", "schema");
        // Names shared between traits and event kinds would make `profile.<name>` ambiguous.
        for f in &s.traits {
            if s.events.iter().any(|e| e.name == f.name)
                || f.name == "segments"
                || f.name == "consent"
            {
                let span = self.span(v.span());
                self.err("duplicate", format!("`profile.{}` is declared twice (or is reserved)", f.name), span, Some("trait names, event names, `segments` and `consent` share the `profile.` namespace".into()));
            }
        }
        s
    }

    fn polygon(&mut self, t: &DeTable<'_>, loc: &str, owner: Span) -> Vec<[f64; 2]> {
        let Some(v) = Self::find(t, "polygon") else {
            self.err("missing-key", format!("`{loc}` needs `polygon`"), owner, Some("e.g. `polygon = [[37.50, 127.02], [37.50, 127.06], [37.47, 127.06]]` (latitude, longitude)".into()));
            return Vec::new();
        };
        let span = self.span(v.span());
        self.locs.set(format!("{loc}.polygon"), span);
        let mut out = Vec::new();
        let ok = match v.get_ref() {
            DeValue::Array(a) => a.iter().all(|p| match to_json(p.get_ref()) {
                serde_json::Value::Array(xy) => match (
                    xy.first().and_then(|x| x.as_f64()),
                    xy.get(1).and_then(|x| x.as_f64()),
                    xy.len(),
                ) {
                    (Some(lat), Some(lon), 2)
                        if (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon) =>
                    {
                        out.push([lat, lon]);
                        true
                    }
                    _ => false,
                },
                _ => false,
            }),
            _ => false,
        };
        if !ok {
            self.err(
                "invalid-value",
                "`polygon` should be an array of `[latitude, longitude]` pairs",
                span,
                Some("latitude in -90..90, longitude in -180..180".into()),
            );
        } else if out.len() < 3 {
            self.err(
                "invalid-value",
                format!(
                    "`polygon` has {} points; an area needs at least 3",
                    out.len()
                ),
                span,
                None,
            );
        } else if out.len() > 10_000 {
            self.err("limit", "`polygon` has more than 10000 points", span, None);
        }
        out
    }

    fn placement(&mut self, id: &str, t: &DeTable<'_>) -> PlacementDef {
        let loc = format!("placements.{id}");
        self.keys(t, &loc, &["description", "default", "experiences"]);
        let description = self.opt_str(t, "description", &loc);
        let default = Self::find(t, "default")
            .map(|v| to_json(v.get_ref()))
            .unwrap_or(serde_json::Value::Null);
        let mut experiences = Vec::new();
        if let Some(v) = Self::find(t, "experiences") {
            match v.get_ref() {
                DeValue::Array(a) => {
                    for (i, item) in a.iter().enumerate() {
                        let eloc = format!("{loc}.experiences[{i}]");
                        match item.get_ref() {
                            DeValue::Table(et) => {
                                let espan = self.span(item.span());
                                experiences.push(self.experience(et, &eloc, espan));
                            }
                            other => {
                                let span = self.span(item.span());
                                self.err(
                                    "type-mismatch",
                                    format!(
                                        "experiences should be tables, found {}",
                                        type_name(other)
                                    ),
                                    span,
                                    Some(format!("write `[[placements.{id}.experiences]]`")),
                                );
                            }
                        }
                    }
                }
                other => {
                    let span = self.span(v.span());
                    self.err(
                        "type-mismatch",
                        format!(
                            "`experiences` should be an array of tables, found {}",
                            type_name(other)
                        ),
                        span,
                        Some(format!("write `[[placements.{id}.experiences]]`")),
                    );
                }
            }
        }
        PlacementDef {
            id: id.to_string(),
            description,
            default,
            experiences,
        }
    }

    fn experience(&mut self, t: &DeTable<'_>, loc: &str, owner: Span) -> ExperienceDef {
        self.keys(
            t,
            loc,
            &[
                "id",
                "description",
                "audience",
                "priority",
                "schedule",
                "traffic",
                "exclusion_group",
                "frequency_cap",
                "requires_visitor_id",
                "variants",
                "content",
            ],
        );
        let id = self.req_str(t, "id", loc, owner).unwrap_or_default();
        if !id.is_empty() && !is_id(&id) {
            let span = self.locs.get(&format!("{loc}.id")).unwrap_or(owner);
            self.err(
                "invalid-id",
                format!("experience id `{id}` has characters outside `A-Z a-z 0-9 _ - .`"),
                span,
                None,
            );
        }
        let description = self.opt_str(t, "description", loc);
        let audience = self.opt_str(t, "audience", loc);
        let priority = self
            .opt_int(t, "priority", loc, -1_000_000, 1_000_000)
            .unwrap_or(0);
        let traffic = self.percent(t, "traffic", loc).unwrap_or(100.0);
        let exclusion_group = self.opt_str(t, "exclusion_group", loc);
        let frequency_cap = self
            .opt_int(t, "frequency_cap", loc, 1, 1_000_000)
            .and_then(|n| u32::try_from(n).ok());
        let requires_visitor_id = self.opt_bool(t, "requires_visitor_id").unwrap_or(true);
        let (start, end) = match Self::find(t, "schedule") {
            Some(v) => self.schedule(v, loc),
            None => (None, None),
        };
        let mut variants = Vec::new();
        let content = Self::find(t, "content");
        match (Self::find(t, "variants"), content) {
            (Some(_), Some(c)) => {
                // Keep the content as the single variant so only this conflict is reported.
                variants.push(VariantDef {
                    id: "main".into(),
                    weight: 1,
                    content: to_json(c.get_ref()),
                });
                let span = self.span(c.span());
                self.err(
                    "conflict",
                    "an experience has either `content` or `variants`, not both",
                    span,
                    Some("move this content into a variant".into()),
                );
            }
            (None, Some(c)) => {
                // Shorthand: a single variant named `main`.
                variants.push(VariantDef {
                    id: "main".into(),
                    weight: 1,
                    content: to_json(c.get_ref()),
                });
                self.locs
                    .set(format!("{loc}.variants[0]"), self.span(c.span()));
            }
            (Some(v), None) => match v.get_ref() {
                DeValue::Array(a) => {
                    for (i, item) in a.iter().enumerate() {
                        let vloc = format!("{loc}.variants[{i}]");
                        let vspan = self.span(item.span());
                        self.locs.set(vloc.clone(), vspan);
                        let DeValue::Table(vt) = item.get_ref() else {
                            self.err(
                                "type-mismatch",
                                format!(
                                    "variants should be tables, found {}",
                                    type_name(item.get_ref())
                                ),
                                vspan,
                                None,
                            );
                            continue;
                        };
                        self.keys(vt, &vloc, &["id", "weight", "content"]);
                        let vid = self.req_str(vt, "id", &vloc, vspan).unwrap_or_default();
                        if variants.iter().any(|x: &VariantDef| x.id == vid) {
                            let span = self.locs.get(&format!("{vloc}.id")).unwrap_or(vspan);
                            self.err(
                                "duplicate",
                                format!("variant `{vid}` is defined twice in experience `{id}`"),
                                span,
                                None,
                            );
                        }
                        let weight = self.opt_int(vt, "weight", &vloc, 0, 1_000_000).unwrap_or(1);
                        let content = Self::find(vt, "content")
                            .map(|c| to_json(c.get_ref()))
                            .unwrap_or(serde_json::Value::Null);
                        variants.push(VariantDef {
                            id: vid,
                            weight: u32::try_from(weight).unwrap_or(0),
                            content,
                        });
                    }
                }
                other => {
                    let span = self.span(v.span());
                    self.err(
                        "type-mismatch",
                        format!(
                            "`variants` should be an array of tables, found {}",
                            type_name(other)
                        ),
                        span,
                        None,
                    );
                }
            },
            (None, None) => {
                self.err("missing-key", format!("experience `{id}` has no `content` and no `variants`"), owner, Some("add `content = { … }` or `[[…variants]]` with `id`, `weight` and `content`".into()));
            }
        }
        ExperienceDef {
            id,
            description,
            audience,
            priority,
            start,
            end,
            traffic,
            exclusion_group,
            frequency_cap,
            requires_visitor_id,
            variants,
        }
    }

    fn schedule(&mut self, v: &V<'_>, loc: &str) -> (Option<String>, Option<String>) {
        let sloc = format!("{loc}.schedule");
        let Some(t) = self.as_table(v, "schedule") else {
            return (None, None);
        };
        let owner = self.span(v.span());
        self.keys(t, &sloc, &["start", "end", "time_zone"]);
        let zone = self.opt_str(t, "time_zone", &sloc);
        if let Some(z) = &zone {
            if !crate::time::is_time_zone(z) {
                let span = self.locs.get(&format!("{sloc}.time_zone")).unwrap_or(owner);
                self.err(
                    "unknown-time-zone",
                    format!("unknown time zone `{z}`"),
                    span,
                    Some("use an IANA name such as `Asia/Seoul` or `Europe/Berlin`".into()),
                );
                return (None, None);
            }
        }
        let read = |this: &mut Self, key: &str| -> Option<(i64, String)> {
            let v = Self::find(t, key)?;
            let span = this.span(v.span());
            this.locs.set(format!("{sloc}.{key}"), span);
            let text = match v.get_ref() {
                DeValue::String(s) => s.to_string(),
                DeValue::Datetime(d) => d.to_string(),
                other => {
                    this.err(
                        "type-mismatch",
                        format!("`{key}` should be a date-time, found {}", type_name(other)),
                        span,
                        None,
                    );
                    return None;
                }
            };
            match crate::time::parse_local(&text, zone.as_deref()) {
                Ok(ms) => Some((ms, crate::time::format_timestamp(ms))),
                Err(m) => {
                    this.err("invalid-value", m, span, Some("write `2026-12-01T00:00:00` (local to `time_zone`, default UTC) or RFC 3339 with an offset".into()));
                    None
                }
            }
        };
        let start = read(self, "start");
        let end = read(self, "end");
        if let (Some((a, _)), Some((b, _))) = (&start, &end) {
            if a >= b {
                let span = self.locs.get(&format!("{sloc}.end")).unwrap_or(owner);
                self.err(
                    "invalid-value",
                    "the schedule ends before it starts",
                    span,
                    None,
                );
            }
        }
        (start.map(|s| s.1), end.map(|e| e.1))
    }
}
