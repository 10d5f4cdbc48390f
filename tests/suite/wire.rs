//! The request reader (`DecideRequest::from_json`) against serde (`from_json_serde`): the same
//! request, or the same error, on random request texts — well-formed ones in the shapes clients send,
//! and ones with unknown or repeated fields, nulls, numbers serde_json rounds its own way, escapes,
//! and syntax errors.

use proptest::prelude::*;
use std::borrow::Cow;
use tailor::wire::DecideRequest;

/// A struct's fields: each name with the strategy for a well-typed value.
type Fields = &'static [(&'static str, fn() -> BoxedStrategy<String>)];

fn str_text() -> BoxedStrategy<String> {
    prop_oneof![
        14 => prop_oneof![Just("KR"), Just("Seoul"), Just("home_hero"), Just("https://shop.example/?utm_source=news&a=%20b"), Just(""), Just("v-1")].prop_map(|s| format!("{s:?}")),
        1 => prop_oneof![Just(r#""caf\u00e9""#), Just(r#""a\"b\\c\n""#), Just(r#""\ud83d\ude00""#), Just(r#""\ud800""#), Just("\"tab\there\""), Just(r#""\x""#)].prop_map(str::to_string),
    ]
    .boxed()
}

fn num_text() -> BoxedStrategy<String> {
    prop_oneof![
        14 => prop_oneof![(0i64..100_000).prop_map(|n| n.to_string()), (-90.0f64..90.0).prop_map(|f| f.to_string()), (0u32..10_000).prop_map(|c| format!("{}.{:02}", c / 100, c % 100))],
        1 => prop_oneof![Just("1e3"), Just("-0"), Just("-0.0"), Just("12345678901234567890"), Just("0.30000000000000004"), Just("1.7976931348623157e308"), Just("01"), Just("1."), Just("-"), Just("9007199254740993"), Just("123456789012345678901234")].prop_map(str::to_string),
    ]
    .boxed()
}

fn any_text(depth: u32) -> BoxedStrategy<String> {
    let leaf = prop_oneof![
        Just("null".to_string()),
        Just("true".to_string()),
        Just("false".to_string()),
        str_text(),
        num_text()
    ];
    if depth == 0 {
        return leaf.boxed();
    }
    prop_oneof![
        3 => leaf,
        1 => prop::collection::vec(any_text(depth - 1), 0..4).prop_map(|v| format!("[{}]", v.join(","))),
        1 => prop::collection::vec((prop_oneof![Just("a"), Just("b"), Just("cart")], any_text(depth - 1)), 0..4)
            .prop_map(|kv| format!("{{{}}}", kv.iter().map(|(k, v)| format!("{k:?}:{v}")).collect::<Vec<_>>().join(","))),
    ]
    .boxed()
}

/// An object text from (key, value) pairs; keys may repeat, `sp` adds whitespace.
fn object(kv: &[(String, String)], sp: bool) -> String {
    let (colon, comma) = if sp { (": ", ",\n  ") } else { (":", ",") };
    let body: Vec<String> = kv.iter().map(|(k, v)| format!("{k:?}{colon}{v}")).collect();
    format!("{{{}}}", body.join(comma))
}

/// A struct's fields: each of its names present with p = 3/4, mostly with a well-typed value, in a
/// random order; now and then an unknown key or a repeated one.
fn fields(names: Fields, sp: bool) -> BoxedStrategy<String> {
    let each: Vec<BoxedStrategy<Option<(String, String)>>> = names
        .iter()
        .map(|&(name, good)| {
            prop_oneof![
                1 => Just(None),
                3 => prop_oneof![30 => good(), 1 => any_text(1)].prop_map(move |v| Some((name.to_string(), v))),
            ]
            .boxed()
        })
        .collect();
    (each, any::<u64>(), 0u8..40)
        .prop_map(move |(kv, seed, odd)| {
            let mut kv: Vec<(String, String)> = kv.into_iter().flatten().collect();
            match odd {
                0 => kv.push(("bogus".into(), "1".into())),
                1 if !kv.is_empty() => kv.push(kv[0].clone()),
                _ => {}
            }
            // A deterministic shuffle from the seed.
            let mut x = seed | 1;
            for i in (1..kv.len()).rev() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                kv.swap(i, (x % (i as u64 + 1)) as usize);
            }
            object(&kv, sp)
        })
        .boxed()
}

fn opt(s: fn() -> BoxedStrategy<String>) -> BoxedStrategy<String> {
    prop_oneof![8 => s(), 1 => Just("null".to_string())].boxed()
}
fn ostr() -> BoxedStrategy<String> {
    opt(str_text)
}
fn onum() -> BoxedStrategy<String> {
    opt(num_text)
}
fn obool() -> BoxedStrategy<String> {
    prop_oneof![8 => any::<bool>().prop_map(|b| b.to_string()), 1 => Just("null".to_string())]
        .boxed()
}
fn strs() -> BoxedStrategy<String> {
    prop::collection::vec(str_text(), 0..4)
        .prop_map(|v| format!("[{}]", v.join(",")))
        .boxed()
}
fn str_map() -> BoxedStrategy<String> {
    prop::collection::vec(
        (
            prop_oneof![Just("user-agent"), Just("accept-language"), Just("a")],
            str_text(),
        ),
        0..3,
    )
    .prop_map(|kv| {
        object(
            &kv.into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect::<Vec<_>>(),
            false,
        )
    })
    .boxed()
}
fn attrs() -> BoxedStrategy<String> {
    prop::collection::vec(
        (
            prop_oneof![Just("cart_value"), Just("page_type"), Just("tags")],
            any_text(2),
        ),
        0..4,
    )
    .prop_map(|kv| {
        object(
            &kv.into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect::<Vec<_>>(),
            false,
        )
    })
    .boxed()
}
const GEO: Fields = &[
    ("country", ostr),
    ("region", ostr),
    ("city", ostr),
    ("postal", ostr),
    ("latitude", onum),
    ("longitude", onum),
    ("time_zone", ostr),
    ("continent", ostr),
    ("accuracy_km", onum),
    ("anonymous", obool),
];
const DEVICE: Fields = &[
    ("type", ostr),
    ("os", ostr),
    ("os_version", ostr),
    ("browser", ostr),
    ("browser_version", ostr),
    ("brand", ostr),
    ("model", ostr),
    ("is_bot", obool),
    ("app", ostr),
];
fn geo() -> BoxedStrategy<String> {
    prop_oneof![8 => fields(GEO, false), 1 => Just("null".to_string())].boxed()
}
fn device() -> BoxedStrategy<String> {
    prop_oneof![8 => fields(DEVICE, false), 1 => Just("null".to_string())].boxed()
}
const CONTEXT: Fields = &[
    ("url", ostr),
    ("referrer", ostr),
    ("headers", str_map),
    ("cookies", str_map),
    ("ip", ostr),
    ("geo", geo),
    ("device", device),
    ("returning", obool),
    ("visit_count", onum),
    ("attributes", attrs),
];
fn context() -> BoxedStrategy<String> {
    fields(CONTEXT, false)
}
fn consent() -> BoxedStrategy<String> {
    prop_oneof![
        4 => obool().prop_map(|b| format!("{{\"personalization\":{b}}}")),
        1 => obool().prop_map(|b| format!("{{\"personalization\":{b},\"ads\":true}}")),
        1 => Just("null".to_string()),
    ]
    .boxed()
}
fn explain() -> BoxedStrategy<String> {
    any::<bool>().prop_map(|b| b.to_string()).boxed()
}
const REQUEST: Fields = &[
    ("visitor_id", ostr),
    ("placements", strs),
    ("context", context),
    ("consent", consent),
    ("explain", explain),
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn reader_matches_serde(body in fields(REQUEST, false), pretty in any::<bool>(), cut in any::<u16>()) {
        let text = if pretty { body.replace(',', ", ").replace(':', " : ") } else { body };
        prop_assert_eq!(DecideRequest::from_json(text.as_bytes()), DecideRequest::from_json_serde(text.as_bytes()), "{}", text);
        // A truncated body is a syntax error for both.
        let cut = usize::from(cut) % (text.len() + 1);
        let part = text.as_bytes().get(..cut).unwrap_or_default();
        prop_assert_eq!(DecideRequest::from_json(part), DecideRequest::from_json_serde(part));
    }
}

/// The common shapes really take the fast reader: it accepts the example request, and what it returns
/// is serde's answer (so a reader that always gave up would fail the first assertion).
#[test]
fn example_request_takes_the_fast_reader() {
    let bytes =
        std::fs::read(super::root().join("rules/retail/examples/seoul-mobile.request.json"))
            .unwrap();
    let fast = tailor::wire::read_fast(&bytes).expect("the example request is in the common form");
    assert_eq!(Ok(fast), DecideRequest::from_json_serde(&bytes));
}

/// Strings with everything JSON must escape, non-ASCII text and the bytes around the escape set.
fn any_string() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z_0-9.:-]{0,30}",
        2 => prop::collection::vec(
            prop_oneof![
                Just('"'), Just('\\'), Just('\u{0}'), Just('\u{8}'), Just('\t'), Just('\n'), Just('\u{b}'),
                Just('\u{c}'), Just('\r'), Just('\u{1f}'), Just(' '), Just('!'), Just('#'), Just('\u{7f}'),
                Just('é'), Just('—'), Just('😀'), Just('a'), Just('/'),
            ],
            0..24,
        )
        .prop_map(|c| c.into_iter().collect()),
        1 => any::<String>(),
    ]
}

fn any_decision() -> impl Strategy<Value = tailor::wire::Decision<'static>> {
    use std::sync::Arc;
    use tailor::wire::{Decision, Reason, Trace};
    let content = prop_oneof![
        Just("null"),
        Just(r#"{"title":"Winter sale — 30 %","cta":"/sale","rows":2}"#),
        Just(r#"[1,2.5,"x\"y"]"#),
        Just("true"),
    ];
    let reason = prop_oneof![
        Just(Reason::Matched),
        Just(Reason::Default),
        Just(Reason::Holdout),
        Just(Reason::UnknownPlacement)
    ];
    (
        any_string(),
        proptest::option::of(any_string()),
        proptest::option::of(any_string()),
        content,
        reason,
        proptest::option::of(any_string()),
    )
        .prop_map(|(p, e, v, c, reason, summary)| Decision {
            placement: Cow::Owned(Arc::from(p)),
            experience: e.map(|e| Cow::Owned(Arc::from(e))),
            variant: v.map(|v| Cow::Owned(Arc::from(v))),
            content: Cow::Owned(Arc::from(
                serde_json::value::RawValue::from_string(c.to_string()).unwrap(),
            )),
            reason,
            trace: summary.map(|summary| Trace {
                summary,
                ..Trace::default()
            }),
            rendered: tailor::wire::Rendered::default(),
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    /// The response writer (`DecideResponse::to_json`) is serde_json's text, byte for byte.
    #[test]
    fn response_writer_matches_serde(
        id in any_string(), version in any_string(), hash in any_string(),
        decisions in prop::collection::vec(any_decision(), 0..5),
        notes in prop::collection::vec(any_string(), 0..3),
    ) {
        use std::sync::Arc;
        let resp = tailor::wire::DecideResponse {
            bundle: Cow::Owned(tailor::wire::BundleRef { id: Arc::from(id), version: Arc::from(version), hash: Arc::from(hash) }),
            decisions,
            notes,
            rendered: tailor::wire::RenderedBundle::default(),
        };
        let fast = resp.to_json().unwrap();
        prop_assert_eq!(String::from_utf8(fast).unwrap(), serde_json::to_string(&resp).unwrap());
    }
}
