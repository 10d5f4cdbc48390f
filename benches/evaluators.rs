//! tailor's compiled evaluator against `cel-interpreter` (CEL) and `datalogic-rs` (JSON Logic), on the same
//! conditions over the same visitor context, each engine with its condition compiled and its context built
//! beforehand: only evaluation is timed. Figures in BENCHMARKS.md.
//!
//! `cargo bench --bench evaluators`
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use serde_json::json;
use tailor::context::ProfileLayout;
use tailor::expr::check::{check_condition, Env};
use tailor::expr::program::{EvalContext, Evaluator, Program};
use tailor::schema::{EventKind, Field, Schema, Type};
use tailor::wire::DecideRequest;

/// (name, tailor, CEL, JSON Logic) — the same condition in each language. Every one is true on the visitor
/// below except `complex` (false), so short-circuiting does not favour anyone.
const CONDITIONS: &[(&str, &str, &str, &str)] = &[
    (
        "equality",
        r#"geo.country == "KR""#,
        r#"geo.country == "KR""#,
        r#"{"==": [{"var": "geo.country"}, "KR"]}"#,
    ),
    (
        "membership_and",
        r#"geo.country in ["KR", "JP", "TW"] && device.type == "mobile""#,
        r#"geo.country in ["KR", "JP", "TW"] && device.type == "mobile""#,
        r#"{"and": [{"in": [{"var": "geo.country"}, ["KR", "JP", "TW"]]}, {"==": [{"var": "device.type"}, "mobile"]}]}"#,
    ),
    (
        "number_and_trait",
        r#"attributes.cart_value >= 100 && profile.tier == "gold""#,
        r#"attributes.cart_value >= 100.0 && profile.tier == "gold""#,
        r#"{"and": [{">=": [{"var": "attributes.cart_value"}, 100]}, {"==": [{"var": "profile.tier"}, "gold"]}]}"#,
    ),
    (
        "substring",
        r#"request.path.contains("sale")"#,
        r#"request.path.contains("sale")"#,
        r#"{"in": ["sale", {"var": "request.path"}]}"#,
    ),
    (
        "history_any",
        r#"profile.purchases.any(price > 250)"#,
        r#"profile.purchases.exists(p, p.price > 250.0)"#,
        r#"{"some": [{"var": "profile.purchases"}, {">": [{"var": "price"}, 250]}]}"#,
    ),
    (
        "history_filter_count",
        r#"profile.purchases.where(category == "shoes").count() >= 2"#,
        r#"size(profile.purchases.filter(p, p.category == "shoes")) >= 2"#,
        r#"{">=": [{"reduce": [{"filter": [{"var": "profile.purchases"}, {"==": [{"var": "category"}, "shoes"]}]}, {"+": [{"var": "accumulator"}, 1]}, 0]}, 2]}"#,
    ),
    (
        "complex",
        r#"(geo.country == "KR" || geo.country == "JP") && visitor.visit_count > 3 && !(profile.tier == "gold")"#,
        r#"(geo.country == "KR" || geo.country == "JP") && visitor.visit_count > 3.0 && !(profile.tier == "gold")"#,
        r#"{"and": [{"or": [{"==": [{"var": "geo.country"}, "KR"]}, {"==": [{"var": "geo.country"}, "JP"]}]}, {">": [{"var": "visitor.visit_count"}, 3]}, {"!": {"==": [{"var": "profile.tier"}, "gold"]}}]}"#,
    ),
];

fn visitor() -> serde_json::Value {
    let cats = ["shoes", "coffee", "outerwear", "hats", "bags"];
    let purchases: Vec<_> = (0..30)
        .map(|i| json!({"at": 1_790_000_000_000i64 + i * 86_400_000, "category": cats[i as usize % 5], "price": 20.0 + (i * 37 % 250) as f64, "discounted": i % 4 == 0}))
        .collect();
    json!({
        "geo": {"country": "KR", "city": "Seoul"},
        "device": {"type": "mobile"},
        "request": {"path": "/sale/shoes"},
        "visitor": {"visit_count": 5.0},
        "attributes": {"cart_value": 120.0},
        "profile": {"tier": "gold", "purchases": purchases}
    })
}

fn bench(c: &mut Criterion) {
    let v = visitor();
    let f = |n: &str, ty| Field { name: n.into(), ty };
    let schema = Schema {
        traits: vec![f("tier", Type::String)],
        attributes: vec![f("cart_value", Type::Number)],
        events: vec![EventKind {
            name: "purchases".into(),
            fields: vec![
                f("category", Type::String),
                f("price", Type::Number),
                f("discounted", Type::Bool),
            ],
        }],
        ..Schema::default()
    };
    // tailor's context: request slots and the decoded profile, built once.
    let req: DecideRequest = serde_json::from_value(json!({
        "visitor_id": "v", "placements": [],
        "context": {"url": "https://shop.example/sale/shoes", "geo": v["geo"], "device": v["device"], "visit_count": 5, "attributes": v["attributes"]}
    }))
    .unwrap();
    let profile_json =
        json!({"traits": {"tier": "gold"}, "events": {"purchases": v["profile"]["purchases"]}});
    let profile = ProfileLayout::new(&schema, &[])
        .decode_value(&profile_json)
        .unwrap();

    // CEL context, built once.
    let mut cel_ctx = cel_interpreter::Context::default();
    for k in [
        "geo",
        "device",
        "request",
        "visitor",
        "attributes",
        "profile",
    ] {
        cel_ctx.add_variable(k, v[k].clone()).unwrap();
    }
    // JSON Logic data, parsed into datalogic's arena once.
    let dl = datalogic_rs::Engine::new();
    let data_arena = bumpalo::Bump::new();
    let v_text = v.to_string();
    let dl_data: &datalogic_rs::DataValue<'_> =
        data_arena.alloc(datalogic_rs::DataValue::from_str(&v_text, &data_arena).unwrap());

    let mut group = c.benchmark_group("evaluators");
    for (name, t_src, cel_src, jl_src) in CONDITIONS {
        // tailor
        let mut regexes = Vec::new();
        let mut env = Env {
            schema: &schema,
            segments: &[],
            areas: &[],
            regexes: &mut regexes,
        };
        let typed =
            check_condition(&tailor::expr::syntax::parse(t_src).unwrap(), &mut env).unwrap();
        let mut prog = Program {
            consent_names: vec!["personalization".into()],
            ..Program::default()
        };
        let root = prog.add(&typed, t_src);
        let view = tailor::context::RequestView::new(&req, 1_800_000_000_000);
        let mut scratch = Vec::new();
        let slots = view.slots(&prog.slot_keys, &[], &schema, &mut scratch).0;
        let ctx = EvalContext {
            slots,
            profile: Some(&profile),
            now: 1_800_000_000_000,
        };
        let t_result = Evaluator::new(&prog, &ctx).test(root);

        // CEL
        let cel = cel_interpreter::Program::compile(cel_src).unwrap();
        let cel_result = cel.execute(&cel_ctx).unwrap();

        // JSON Logic
        let jl = dl.compile(*jl_src).unwrap();
        let arena = bumpalo::Bump::new();
        let jl_result = dl.evaluate(&jl, dl_data, &arena).unwrap().as_bool();

        // The three must agree before their speed means anything.
        assert_eq!(
            cel_result,
            cel_interpreter::Value::Bool(t_result),
            "{name}: CEL disagrees"
        );
        assert_eq!(jl_result, Some(t_result), "{name}: JSON Logic disagrees");

        group.bench_function(format!("{name}/tailor"), |b| {
            b.iter(|| black_box(Evaluator::new(&prog, black_box(&ctx)).test(root)))
        });
        group.bench_function(format!("{name}/cel-interpreter"), |b| {
            b.iter(|| black_box(cel.execute(black_box(&cel_ctx)).unwrap()))
        });
        let mut arena = bumpalo::Bump::new();
        group.bench_function(format!("{name}/datalogic-rs"), |b| {
            b.iter(|| {
                let r = dl
                    .evaluate(&jl, black_box(dl_data), &arena)
                    .unwrap()
                    .as_bool();
                black_box(r);
                arena.reset();
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
