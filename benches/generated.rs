//! The generated benchmark bundle, shared by `benches/decide.rs` and `examples/e2e_count.rs`.
// Fixed tables indexed modulo their length.
#![allow(clippy::indexing_slicing)]

/// A large synthetic bundle (the generator is the committed definition of the benchmark bundle): `segments` segments and `experiences` experiences spread over `placements`
/// placements, with audiences mixing context and purchase-history conditions. Deterministic.
pub fn generated_bundle(segments: usize, experiences: usize, placements: usize) -> String {
    let countries = ["KR", "JP", "US", "DE", "FR", "GB", "BR", "AU", "IN", "CA"];
    let cats = ["shoes", "coffee", "outerwear", "hats", "bags"];
    let mut s = String::from(
        "[bundle]\nid = \"generated\"\nversion = \"1\"\n\n[schema.traits]\ntier = \"string\"\nltv = \"number\"\n\n\
         [schema.attributes]\ncart = \"number\"\n\n[schema.events.purchases]\ncategory = \"string\"\nprice = \"number\"\ndiscounted = \"bool\"\n\n",
    );
    for i in 0..segments {
        let c = countries[i % countries.len()];
        let cat = cats[i % cats.len()];
        let cond = match i % 4 {
            0 => format!("geo.country == \"{c}\" && device.type == \"mobile\""),
            1 => format!(
                "profile.purchases.within({}d).where(category == \"{cat}\").count() >= {}",
                30 + i % 300,
                1 + i % 3
            ),
            2 => format!(
                "profile.ltv > {} || attributes.cart >= {}",
                100 * (i % 20),
                10 * (i % 7)
            ),
            _ => format!(
                "segment.s{} && time.hour >= {}",
                i.saturating_sub(3),
                i % 24
            ),
        };
        s.push_str(&format!("[segments.s{i}]\nwhen = '{cond}'\n\n"));
    }
    for p in 0..placements {
        s.push_str(&format!(
            "[placements.p{p}]\ndefault = {{ id = \"default-{p}\" }}\n\n"
        ));
        for e in (0..experiences).filter(|e| e % placements == p) {
            let c = countries[(e / 7) % countries.len()];
            let aud = match e % 3 {
                0 => format!("segment.s{} && geo.country in [\"{c}\", \"XX\"]", e % segments),
                1 => format!("segment.s{} || (device.os_version >= \"17.{}\" && request.path.starts_with(\"/p{}\"))", e % segments, e % 5, e % 13),
                _ => format!("profile.purchases.where(price > {}).sum(price) > {} && geo.country == \"{c}\"", e % 90, 100 + e % 400),
            };
            s.push_str(&format!(
                "[[placements.p{p}.experiences]]\nid = \"e{e}\"\npriority = {}\naudience = '{aud}'\ntraffic = {}\n\
                 [[placements.p{p}.experiences.variants]]\nid = \"a\"\nweight = 1\ncontent = {{ e = {e}, v = \"a\" }}\n\
                 [[placements.p{p}.experiences.variants]]\nid = \"b\"\nweight = 1\ncontent = {{ e = {e}, v = \"b\" }}\n\n",
                e % 10,
                50 + e % 51
            ));
        }
    }
    s
}
