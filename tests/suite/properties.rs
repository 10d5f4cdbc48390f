//! Property tests: the compiled evaluator agrees with the naive reference evaluator on random
//! expressions and random contexts, and never panics.

use proptest::prelude::*;
use std::sync::OnceLock;
use tailor::context::{Profile, ProfileLayout};
use tailor::expr::check::{check_condition, Env, TExpr};
use tailor::expr::program::{Area, Evaluator, Program};
use tailor::expr::reference::{self, RefEnv};
use tailor::expr::syntax::parse;
use tailor::schema::{EventKind, Field, Schema, Type};
use tailor::wire::{DecideRequest, Device, Geo, RequestContext};

fn schema() -> Schema {
    let f = |n: &str, ty| Field { name: n.into(), ty };
    Schema {
        traits: vec![
            f("ltv", Type::Number),
            f("tier", Type::String),
            f("signup_at", Type::Timestamp),
            f("tags", Type::StringList),
        ],
        attributes: vec![f("cart", Type::Number), f("page", Type::String)],
        events: vec![EventKind {
            name: "purchases".into(),
            fields: vec![
                f("category", Type::String),
                f("price", Type::Number),
                f("discounted", Type::Bool),
            ],
        }],
        headers: vec!["accept-language".into()],
        cookies: vec![],
        consent: vec![],
    }
}

const SEGMENTS: [&str; 2] = [
    "profile.ltv > 100 || geo.country == \"KR\"",
    "segment.s0 && profile.purchases.count() >= 2",
];

fn num() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("attributes.cart".to_string()),
        Just("profile.ltv".to_string()),
        Just("geo.latitude".to_string()),
        Just("visitor.visit_count".to_string()),
        Just("time.hour".to_string()),
        (0u32..300).prop_map(|n| n.to_string()),
        Just("profile.purchases.count()".to_string()),
        Just("profile.purchases.sum(price)".to_string()),
        Just("profile.purchases.within(30d).max(price)".to_string()),
        Just("profile.purchases.last().price".to_string()),
        Just("days_since(profile.signup_at)".to_string()),
        Just("distance_km(geo, 37.5, 127.0)".to_string()),
        ev_bool().prop_map(|p| format!("profile.purchases.where({p}).avg(price)")),
        ev_bool().prop_map(|p| format!("profile.purchases.where({p}).count()")),
        ev_bool().prop_map(|p| format!("profile.purchases.where({p}).sum(price)")),
    ];
    leaf.prop_recursive(2, 8, 2, |inner| {
        (
            inner.clone(),
            prop_oneof![Just("+"), Just("-"), Just("*"), Just("/")],
            inner,
        )
            .prop_map(|(a, op, b)| format!("({a} {op} {b})"))
    })
}

fn string() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("geo.country".to_string()),
        Just("profile.tier".to_string()),
        Just("device.type".to_string()),
        Just("attributes.page".to_string()),
        Just("request.path".to_string()),
        Just("profile.purchases.first().category".to_string()),
        prop_oneof![
            Just("KR"),
            Just("JP"),
            Just("gold"),
            Just("mobile"),
            Just("/sale"),
            Just("shoes")
        ]
        .prop_map(|s| format!("\"{s}\"")),
    ]
}

fn ev_bool() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("discounted".to_string()),
        Just("!discounted".to_string()),
        (0u32..200).prop_map(|n| format!("price > {n}")),
        prop_oneof![Just("shoes"), Just("coffee")].prop_map(|c| format!("category == \"{c}\"")),
        Just("at > time.now - 60d".to_string()),
    ]
}

fn boolean() -> impl Strategy<Value = String> {
    let cmp = prop_oneof![
        Just("=="),
        Just("!="),
        Just("<"),
        Just("<="),
        Just(">"),
        Just(">=")
    ];
    let leaf = prop_oneof![
        (num(), cmp.clone(), num()).prop_map(|(a, o, b)| format!("{a} {o} {b}")),
        (string(), prop_oneof![Just("=="), Just("!=")], string())
            .prop_map(|(a, o, b)| format!("{a} {o} {b}")),
        (string(), any::<bool>()).prop_map(|(a, neg)| format!(
            "{a} {}in [\"KR\", \"gold\", \"mobile\", \"shoes\"]",
            if neg { "not " } else { "" }
        )),
        string().prop_map(|a| format!("{a}.starts_with(\"/s\")")),
        string().prop_map(|a| format!("{a}.equals_ignore_case(\"kr\")")),
        string().prop_map(|a| format!("{a}.matches(\"^[A-Z]+$\")")),
        prop_oneof![
            Just("profile.tier"),
            Just("geo.country"),
            Just("attributes.cart"),
            Just("profile.purchases.last().at")
        ]
        .prop_map(|p| format!("exists({p})")),
        Just("segment.s0".to_string()),
        Just("segment.s1".to_string()),
        Just("\"vip\" in profile.tags".to_string()),
        (cmp.clone(), prop_oneof![Just("16.4"), Just("17"), Just("v15.1.0")])
            .prop_map(|(o, v)| format!("device.os_version {o} \"{v}\"")),
        (num(), any::<bool>()).prop_map(|(a, neg)| format!(
            "{a} {}in [3.5, 120, 7]",
            if neg { "not " } else { "" }
        )),
        (string(), any::<bool>()).prop_map(|(a, neg)| format!(
            "{a} {}in [\"AU\", \"BR\", \"CA\", \"DE\", \"FR\", \"GB\", \"IN\", \"JP\", \"KR\", \"US\"]",
            if neg { "not " } else { "" }
        )),
        (string(), prop_oneof![Just("contains"), Just("ends_with")])
            .prop_map(|(a, f)| format!("{a}.{f}(\"e\")")),
        Just("in_area(geo, \"box\")".to_string()),
        // Geofences: the far side answered from a bound, the near side exactly.
        (
            cmp.clone(),
            prop_oneof![Just(-1.0f64), 0.0f64..3000.0, Just(40000.0)],
            prop_oneof![Just((37.5, 127.0)), Just((-89.9, 10.0)), Just((0.0, 179.9))],
        )
            .prop_map(|(o, r, (la, lo))| format!("distance_km(geo, {la:?}, {lo:?}) {o} {r:?}")),
        Just("time.now - profile.signup_at > 400d".to_string()),
        ev_bool().prop_map(|p| format!("profile.purchases.any({p})")),
        ev_bool().prop_map(|p| format!("profile.purchases.within(90d).all({p})")),
        (ev_bool(), ev_bool())
            .prop_map(|(p, q)| format!("profile.purchases.where({p}).where({q}).count() > 0")),
        Just("true".to_string()),
        Just("false".to_string()),
    ];
    leaf.prop_recursive(4, 24, 3, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} && {b})")),
            (inner.clone(), inner.clone(), inner.clone())
                .prop_map(|(a, b, c)| format!("({a} || {b} || {c})")),
            inner.prop_map(|a| format!("!({a})")),
        ]
    })
}

fn opt<T: std::fmt::Debug + Clone + 'static>(
    s: impl Strategy<Value = T> + 'static,
) -> BoxedStrategy<Option<T>> {
    prop_oneof![1 => Just(None), 3 => s.prop_map(Some)].boxed()
}

fn request() -> impl Strategy<Value = DecideRequest> {
    (
        opt(prop_oneof![Just("KR"), Just("JP"), Just("US")].prop_map(str::to_string)),
        // Mostly around the constants the expressions use; also anywhere, beyond the poles, and not
        // numbers at all, which the distance bound must leave to the exact path.
        opt(prop_oneof![
            6 => (30.0f64..45.0, 120.0f64..135.0),
            1 => (-90.0f64..=90.0, -180.0f64..=180.0),
            1 => (-200.0f64..200.0, -400.0f64..400.0),
            1 => (proptest::num::f64::ANY, proptest::num::f64::ANY),
        ]),
        opt(prop_oneof![Just("mobile"), Just("desktop")].prop_map(str::to_string)),
        opt(prop_oneof![Just("15.1"), Just("16.4"), Just("17")].prop_map(str::to_string)),
        opt(prop_oneof![
            Just(serde_json::json!(120)),
            Just(serde_json::json!(3.5)),
            Just(serde_json::json!("lots"))
        ]),
        opt(prop_oneof![Just("/sale/x"), Just("/home")].prop_map(str::to_string)),
        opt(0u32..20),
    )
        .prop_map(
            |(country, point, kind, osv, cart, path, visits)| DecideRequest {
                visitor_id: Some("v".into()),
                placements: vec![],
                context: RequestContext {
                    url: path.map(|p| format!("https://shop.example{p}").into()),
                    geo: Some(Geo {
                        country: country.map(Into::into),
                        latitude: point.map(|p| p.0),
                        longitude: point.map(|p| p.1),
                        time_zone: Some("Asia/Seoul".into()),
                        ..Geo::default()
                    }),
                    device: Some(Device {
                        kind: kind.map(Into::into),
                        os_version: osv.map(Into::into),
                        ..Device::default()
                    }),
                    visit_count: visits.map(f64::from),
                    attributes: cart
                        .map(|c| {
                            tailor::wire::Attributes::from_iter([
                                ("cart", tailor::wire::Attr::from(c)),
                                ("page", tailor::wire::Attr::from("home")),
                            ])
                        })
                        .unwrap_or_default(),
                    ..RequestContext::default()
                },
                ..DecideRequest::default()
            },
        )
}

fn profile() -> impl Strategy<Value = Option<serde_json::Value>> {
    // Window edges (30, 60, 90 days) are over-represented: off-by-one bugs live there.
    let event = (prop_oneof![2 => 0i64..200, 1 => prop_oneof![Just(30i64), Just(60), Just(90)]], prop_oneof![Just("shoes"), Just("coffee"), Just("hats")], 0u32..250, any::<bool>())
        .prop_map(|(days, c, p, d)| serde_json::json!({"at": NOW_MS - days * 86_400_000, "category": c, "price": p, "discounted": d}));
    opt((opt(0u32..2000), opt(prop_oneof![Just("gold"), Just("KR")]), opt(0i64..1000), any::<bool>(), prop::collection::vec(event, 0..6)).prop_map(
        |(ltv, tier, signup_days, vip, events)| {
            serde_json::json!({
                "traits": {"ltv": ltv, "tier": tier, "signup_at": signup_days.map(|d| NOW_MS - d * 86_400_000), "tags": if vip { vec!["vip"] } else { vec![] }},
                "events": {"purchases": events}
            })
        },
    ))
}

const NOW_MS: i64 = 1_796_000_000_000;

struct Fixture {
    schema: Schema,
    segments: Vec<TExpr>,
    areas: Vec<Area>,
    layout: ProfileLayout,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let schema = schema();
        let names: Vec<String> = vec!["s0".into(), "s1".into()];
        let mut regexes = Vec::new();
        let areas = vec!["box".to_string()];
        let segments = SEGMENTS
            .iter()
            .map(|s| {
                let mut env = Env {
                    schema: &schema,
                    segments: &names,
                    areas: &areas,
                    regexes: &mut regexes,
                };
                check_condition(&parse(s).unwrap(), &mut env).unwrap()
            })
            .collect();
        let layout = ProfileLayout::new(&schema, &[]);
        Fixture {
            schema,
            segments,
            areas: vec![Area::new(vec![
                (33.0, 124.0),
                (33.0, 130.0),
                (39.0, 130.0),
                (39.0, 124.0),
            ])],
            layout,
        }
    })
}

fn both(src: &str, req: &DecideRequest, profile: Option<&Profile>) -> (bool, bool) {
    let fx = fixture();
    let names: Vec<String> = vec!["s0".into(), "s1".into()];
    let area_names = vec!["box".to_string()];
    let mut regexes = Vec::new();
    let mut env = Env {
        schema: &fx.schema,
        segments: &names,
        areas: &area_names,
        regexes: &mut regexes,
    };
    let ast = parse(src).unwrap_or_else(|e| panic!("{src}: {e:?}"));
    let t = check_condition(&ast, &mut env).unwrap_or_else(|e| panic!("{src}: {e:?}"));
    let mut prog = Program {
        regexes: regexes.clone(),
        areas: fx.areas.clone(),
        consent_names: vec!["personalization".into()],
        ..Program::default()
    };
    for (s, st) in SEGMENTS.iter().zip(&fx.segments) {
        let r = prog.add(st, s);
        prog.segment_roots.push(r);
    }
    let root = prog.add(&t, src);
    let view = tailor::context::RequestView::new(req, NOW_MS);
    let mut scratch = Vec::new();
    let slots = view.slots(&prog.slot_keys, &[], &fx.schema, &mut scratch).0;
    let ctx = tailor::expr::program::EvalContext {
        slots,
        profile,
        now: NOW_MS,
    };
    let fast = Evaluator::new(&prog, &ctx).test(root);
    let renv = RefEnv {
        req,
        schema: &fx.schema,
        profile,
        now: NOW_MS,
        segments: &fx.segments,
        regexes: &regexes,
        areas: &fx.areas,
        consent_names: &["personalization".to_string()],
    };
    (fast, reference::eval(&t, &renv, None).truthy())
}

proptest! {
    // Many cases: a random tree of ~20 leaves rarely makes one particular leaf decide the result, and a
    // case costs ~10 us, so 20,000 take a fraction of a second (2,000 missed a negation flipped in one op).
    #![proptest_config(ProptestConfig { cases: 20_000, ..ProptestConfig::default() })]

    #[test]
    fn compiled_matches_reference(src in boolean(), req in request(), profile in profile()) {
        let p = profile.map(|p| fixture().layout.decode_value(&p).unwrap());
        let (fast, slow) = both(&src, &req, p.as_ref());
        prop_assert_eq!(fast, slow, "{}", src);
    }

    /// Arbitrary text never panics the parser and checker; it parses or reports an error with a range
    /// inside the text.
    #[test]
    fn parser_is_total(src in "[a-z.()\\[\\]\"'!&|=<> 0-9,_-]{0,80}") {
        match parse(&src) {
            Ok(ast) => {
                let fx = fixture();
                let mut regexes = Vec::new();
                let mut env = Env { schema: &fx.schema, segments: &[], areas: &[], regexes: &mut regexes };
                if let Err(errs) = check_condition(&ast, &mut env) {
                    for e in errs {
                        prop_assert!(e.start <= e.end && e.end <= src.len());
                    }
                }
            }
            Err(e) => prop_assert!(e.start <= e.end && e.end <= src.len(), "{:?}", e),
        }
    }

    /// Arbitrary JSON never panics the profile decoder.
    #[test]
    fn profile_decoder_is_total(bytes in prop::collection::vec(any::<u8>(), 0..200), text in "\\{\"(traits|events|consent)\": ?[\\[\\{\"a-z0-9:,\\]\\} ]{0,60}") {
        let _ = fixture().layout.decode(&bytes);
        let _ = fixture().layout.decode(text.as_bytes());
    }
}

/// Hand-picked expressions that once looked risky.
#[test]
fn known_cases_agree() {
    let req = DecideRequest::default();
    for src in [
        "!(profile.tier == \"gold\")",
        "profile.purchases.all(discounted)",
        "exists(profile.purchases.last().at)",
        "(1 / 0) > 0 || true",
        "attributes.cart in [3.5, 120, 7]",
        "attributes.cart not in [3.5, 120, 7]",
        "(attributes.cart + 1) in [3.5, 120, 7]",
    ] {
        let (a, b) = both(src, &req, None);
        assert_eq!(a, b, "{src}");
    }
}

/// Random JSON-ish profile documents: the fast scanner and the serde decoder agree on success, on every
/// decoded value, and on the problems noted.
fn json_value(depth: u32) -> BoxedStrategy<serde_json::Value> {
    use serde_json::json;
    let leaf = prop_oneof![
        Just(json!(null)),
        any::<bool>().prop_map(|b| json!(b)),
        (-1_000_000i64..1_000_000).prop_map(|n| json!(n)),
        (-1.0e6f64..1.0e6).prop_map(|f| json!(f)),
        prop_oneof![
            Just("gold"),
            Just("2026-11-01T10:00:00Z"),
            Just("1.2.3"),
            Just("é\"\\\n😀"),
            Just("")
        ]
        .prop_map(|s| json!(s)),
    ];
    if depth == 0 {
        return leaf.boxed();
    }
    prop_oneof![
        3 => leaf,
        1 => prop::collection::vec(json_value(depth - 1), 0..4).prop_map(serde_json::Value::Array),
        1 => prop::collection::vec((prop_oneof![Just("at"), Just("price"), Just("category"), Just("x")], json_value(depth - 1)), 0..4)
            .prop_map(|kv| serde_json::Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
    ]
    .boxed()
}

fn profile_doc() -> impl Strategy<Value = serde_json::Value> {
    let traits = prop::collection::vec(
        (
            prop_oneof![
                Just("ltv"),
                Just("tier"),
                Just("signup_at"),
                Just("tags"),
                Just("other")
            ],
            json_value(2),
        ),
        0..5,
    );
    let event = prop::collection::vec(
        (
            prop_oneof![
                Just("at"),
                Just("price"),
                Just("category"),
                Just("discounted"),
                Just("x")
            ],
            json_value(1),
        ),
        0..5,
    );
    (traits, prop::collection::vec(event, 0..5), json_value(1), any::<bool>()).prop_map(|(t, evs, extra, wrap_events)| {
        let obj = |kv: Vec<(&str, serde_json::Value)>| serde_json::Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect());
        let events: Vec<serde_json::Value> = evs.into_iter().map(obj).collect();
        serde_json::json!({
            "traits": obj(t),
            "segments": ["vip", "b"],
            "events": if wrap_events { serde_json::json!({"purchases": events, "views": [1, 2]}) } else { serde_json::json!({"purchases": events}) },
            "consent": {"personalization": true},
            "extra": extra,
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn scanner_matches_serde_decoder(doc in profile_doc(), pretty in any::<bool>()) {
        let text = if pretty { serde_json::to_string_pretty(&doc).unwrap() } else { doc.to_string() };
        let layout = &fixture().layout;
        let fast = layout.decode(text.as_bytes());
        let slow = layout.decode_value(&doc);
        match (fast, slow) {
            (Ok(a), Ok(b)) => prop_assert_eq!(a, b),
            (Err(_), Err(_)) => {}
            (a, b) => prop_assert!(false, "scanner {:?} vs serde {:?} on {}", a.map(|_| "ok"), b.map(|_| "ok"), text),
        }
    }

    /// Malformed JSON is an error for both, never a panic of the scanner.
    #[test]
    fn scanner_rejects_what_serde_rejects(text in "[\\[\\]{}\":,0-9a-z\\\\ .eE+-]{0,40}") {
        let fast = fixture().layout.decode(text.as_bytes()).is_ok();
        let serde_ok = serde_json::from_str::<serde_json::Value>(&text).map(|v| fixture().layout.decode_value(&v).is_ok()).unwrap_or(false);
        prop_assert_eq!(fast, serde_ok, "{}", text);
    }
}

/// Event histories as stores write them: many rows with one key order, values in the usual forms, and
/// now and then a row that deviates (another key order, an escape, an exponent, a null, a value of the
/// wrong type, a missing or unreadable `at`). The compact row reader takes the regular rows and must
/// hand every deviation back to the general reader without changing the result.
fn store_history() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::json;
    let at = prop_oneof![
        8 => (1990i32..2040, 1u32..13, 1u32..32, 0u32..24, 0u32..60, 0u32..60, prop_oneof![Just(""), Just(".5"), Just(".123"), Just(".123456")], prop_oneof![Just("Z"), Just("+09:00"), Just("-05:30"), Just("z")])
            .prop_map(|(y, mo, d, h, mi, s, f, z)| json!(format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{f}{z}"))),
        1 => (0i64..2_000_000_000_000).prop_map(|n| json!(n)),
        1 => prop_oneof![Just(json!(null)), Just(json!("yesterday")), Just(json!("2026-02-30T00:00:00Z")), Just(json!("2026-01-01T00:00:60Z")), Just(json!(true))],
    ];
    let category = prop_oneof![
        8 => prop_oneof![Just("shoes"), Just("coffee"), Just("outerwear"), Just("accessories"), Just("a")].prop_map(|s| json!(s)),
        1 => prop_oneof![Just(json!("caf\u{e9}")), Just(json!("a\"b")), Just(json!("")), Just(json!(7)), Just(json!(null)), Just(json!(["x"]))],
    ];
    let price = prop_oneof![
        8 => (0u32..100_000, 0u32..3).prop_map(|(c, k)| match k { 0 => json!(c), 1 => json!(f64::from(c) / 100.0), _ => json!(-f64::from(c) / 10.0) }),
        1 => prop_oneof![Just(json!(1.5e3)), Just(json!(12345678901234567890u64)), Just(json!("9.99")), Just(json!(null)), Just(json!(0.1 + 0.2))],
    ];
    let discounted = prop_oneof![8 => any::<bool>().prop_map(|b| json!(b)), 1 => prop_oneof![Just(json!(null)), Just(json!("yes")), Just(json!(0))]];
    let extra = prop_oneof![
        Just(json!("sku-1")),
        Just(json!(3)),
        Just(json!(null)),
        Just(json!({"nested": [1, 2]})),
        Just(json!(false))
    ];
    let row =
        (at, category, price, discounted, extra, 0u8..20).prop_map(|(at, c, p, d, x, shuffle)| {
            let mut kv = vec![
                ("at", at),
                ("category", c),
                ("price", p),
                ("discounted", d),
                ("x", x),
            ];
            // Mostly the store's order; sometimes keys move, go missing or repeat.
            match shuffle {
                0 => kv.reverse(),
                1 => {
                    kv.remove(0);
                }
                2 => kv.push(("price", json!(1))),
                3 => {
                    kv.remove(4);
                }
                _ => {}
            }
            let mut m = serde_json::Map::new();
            for (k, v) in kv {
                m.remove(k);
                m.insert(k.to_string(), v);
            }
            serde_json::Value::Object(m)
        });
    prop::collection::vec(row, 0..40)
        .prop_map(|rows| json!({"events": {"purchases": rows}, "traits": {"tier": "gold"}}))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 600, ..ProptestConfig::default() })]

    #[test]
    fn compact_rows_match_serde_decoder(doc in store_history(), pretty in any::<bool>(), used in any::<u16>()) {
        let text = if pretty { serde_json::to_string_pretty(&doc).unwrap() } else { doc.to_string() };
        let layout = &fixture().layout;
        let fast = layout.decode(text.as_bytes()).unwrap();
        let slow = layout.decode_value(&doc).unwrap();
        prop_assert_eq!(fast, slow, "{}", text);
        // A layout for some placement reads only some fields (and kinds, traits): the compact reader
        // skips the rest, and still agrees with the serde decoder.
        let schema = &fixture().schema;
        let mut usage = tailor::context::Usage::all(schema);
        let mut bit = 0;
        let mut next = || { bit += 1; used & (1 << (bit % 16)) != 0 };
        for k in &mut usage.fields { for f in k.iter_mut() { *f = next(); } }
        for k in &mut usage.kinds { *k = next(); }
        for t in &mut usage.traits { *t = next(); }
        usage.segments = next();
        let partial = ProfileLayout::with_usage(schema, &[], &usage);
        let fast = partial.decode(text.as_bytes()).unwrap();
        let slow = partial.decode_value(&doc).unwrap();
        prop_assert_eq!(fast, slow, "{} with {:?}", text, usage);
    }

    /// The timestamp fast path agrees with the full parser (jiff) on valid and impossible dates alike.
    #[test]
    fn fast_timestamps_match_jiff(y in 0i32..10000, mo in 0u32..14, d in 0u32..33, h in 0u32..25, mi in 0u32..61, s in 0u32..61,
                                  frac in prop_oneof![Just(""), Just(".5"), Just(".25"), Just(".999"), Just(".1234567"), Just(".")],
                                  zone in prop_oneof![Just("Z"), Just("z"), Just("+09:00"), Just("-05:30"), Just("+23:59"), Just("+24:00"), Just("-00:60"), Just(""), Just("+0900")],
                                  sep in prop_oneof![Just("T"), Just("t"), Just(" ")]) {
        let text = format!("{y:04}-{mo:02}-{d:02}{sep}{h:02}:{mi:02}:{s:02}{frac}{zone}");
        let fast = tailor::context::fast_timestamp(&text);
        if fast.is_some() {
            prop_assert_eq!(fast, tailor::time::parse_timestamp(&text), "{}", text);
        }
        // The forms stores write take the fast path (it must not give up on them).
        let valid_day = (1..=28).contains(&d) || ((1..=30).contains(&d) && mo != 2);
        if (1..=12).contains(&mo) && valid_day && h < 24 && mi < 60 && s < 60 && matches!(frac, "" | ".5" | ".25" | ".999") && matches!(zone, "Z" | "z" | "+09:00" | "-05:30") {
            prop_assert!(fast.is_some(), "{}", text);
        }
    }
}

/// `distance_for_cmp` answers every comparison with the radius as the haversine would: on a grid of
/// points from pole to pole and around the antimeridian, radii from 0 to half the globe, and inputs
/// that are not coordinates.
#[test]
fn distance_bound_compares_as_the_haversine() {
    use tailor::expr::program::{distance_for_cmp, haversine_km};
    let mut pts: Vec<(f64, f64)> = Vec::new();
    for la in (-18..=18).map(|i| f64::from(i) * 5.0) {
        for lo in (-36..=36).map(|i| f64::from(i) * 5.0 + 0.001) {
            pts.push((la, lo));
        }
    }
    pts.extend([
        (90.0, 0.0),
        (-90.0, 180.0),
        (0.0, 180.0),
        (0.0, -180.0),
        (91.0, 0.0),
        (-135.0, 10.0),
    ]);
    pts.extend([
        (f64::NAN, 0.0),
        (0.0, f64::NAN),
        (0.0, f64::INFINITY),
        (f64::INFINITY, 0.0),
    ]);
    let (mut bounded, mut n) = (0, 0);
    for &(la, lo) in &pts {
        for (cla, clo) in [(37.5, 127.0), (-89.9, 10.0), (0.0, 179.9), (-37.5, -53.0)] {
            let exact = haversine_km(la, lo, cla, clo);
            for r in [-1.0, 0.0, 0.5, 2.0, 100.0, 1111.0, 5000.0, 20015.0, 40000.0] {
                let d = distance_for_cmp(la, lo, cla, clo, r);
                bounded += usize::from(d.to_bits() != exact.to_bits());
                n += 1;
                assert_eq!(
                    (d < r, d <= r, d > r, d >= r, d == r),
                    (exact < r, exact <= r, exact > r, exact >= r, exact == r),
                    "({la}, {lo}) to ({cla}, {clo}) against {r}: bound {d}, haversine {exact}"
                );
            }
        }
    }
    // Most of these pairs are far apart: the bound answers for them.
    assert!(bounded * 2 > n, "the bound answered {bounded} of {n}");
}
