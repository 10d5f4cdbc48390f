//! `tailor report`: what each experiment variant did, from the server's exposure log and profiles.
//!
//! Method (documented in the README):
//! - A visitor is counted in the variant of their FIRST exposure to an experience (later exposures to
//!   another variant, e.g. after a bundle change, are counted as `crossovers` and not re-assigned).
//! - A conversion is an event in the `--conversion` stream of the visitor's snapshot with `at` after that
//!   first exposure.
//! - Control is the variant named `control`, else the experience's first variant.
//! - Lift is relative (rate / control rate − 1) with a 95 % interval from the delta method on the log of
//!   the rate ratio; the absolute difference has a Wald interval. No interval when either arm has no
//!   conversions.
//! - Sample-ratio mismatch: Pearson's chi-square of exposed visitors against the variant weights of the
//!   bundle that served them; a p-value below 0.001 is flagged (the usual threshold: an SRM check runs on
//!   every experiment, so it must rarely cry wolf).

use crate::serve::store::{Exposure, Store, StoreError};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct VariantRow {
    pub variant: String,
    pub exposed: u64,
    pub conversions: u64,
    pub rate: f64,
    /// Relative lift over control; `None` for control itself.
    pub lift: Option<f64>,
    pub lift_ci95: Option<[f64; 2]>,
    pub diff: Option<f64>,
    pub diff_ci95: Option<[f64; 2]>,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct Srm {
    pub chi_square: f64,
    pub df: u32,
    pub p_value: f64,
    pub mismatch: bool,
    pub expected_shares: BTreeMap<String, f64>,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct ExperienceReport {
    pub experience: String,
    pub bundle_version: String,
    pub control: String,
    pub variants: Vec<VariantRow>,
    pub crossovers: u64,
    pub srm: Option<Srm>,
}

/// One visitor's first exposure to one experience.
struct First {
    variant: String,
    at_ms: i64,
    hash: String,
    version: String,
}

/// Compute the report. `conversions_after(visitor, t)` says whether the visitor converted after `t`;
/// `weights(hash, experience)` gives the variant ids and weights in bundle order.
pub fn compute(
    exposures: &[Exposure],
    mut converted_after: impl FnMut(&str, i64) -> bool,
    mut weights: impl FnMut(&str, &str) -> Option<Vec<(String, u32)>>,
) -> Vec<ExperienceReport> {
    let mut first: BTreeMap<String, HashMap<String, First>> = BTreeMap::new();
    let mut crossovers: HashMap<String, u64> = HashMap::new();
    for e in exposures {
        let per = first.entry(e.experience.clone()).or_default();
        match per.get(&e.visitor) {
            Some(f) if f.variant != e.variant => {
                *crossovers.entry(e.experience.clone()).or_default() += 1;
            }
            Some(_) => {}
            None => {
                per.insert(
                    e.visitor.clone(),
                    First {
                        variant: e.variant.clone(),
                        at_ms: e.at_ms,
                        hash: e.bundle_hash.clone(),
                        version: e.bundle_version.clone(),
                    },
                );
            }
        }
    }
    let mut out = Vec::new();
    for (exp, visitors) in first {
        // The latest bundle that served this experience defines its variants and weights.
        let latest = visitors.values().max_by_key(|f| f.at_ms);
        let (hash, version) = latest
            .map(|f| (f.hash.clone(), f.version.clone()))
            .unwrap_or_default();
        let declared = weights(&hash, &exp);
        let mut counts: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        if let Some(d) = &declared {
            for (v, _) in d {
                counts.entry(v.clone()).or_default();
            }
        }
        for (visitor, f) in &visitors {
            let c = counts.entry(f.variant.clone()).or_default();
            c.0 += 1;
            if converted_after(visitor, f.at_ms) {
                c.1 += 1;
            }
        }
        let order: Vec<String> = match &declared {
            Some(d) => {
                let mut o: Vec<String> = d.iter().map(|(v, _)| v.clone()).collect();
                o.extend(
                    counts
                        .keys()
                        .filter(|k| !o.contains(k))
                        .cloned()
                        .collect::<Vec<_>>(),
                );
                o
            }
            None => counts.keys().cloned().collect(),
        };
        let control = if order.iter().any(|v| v == "control") {
            "control".to_string()
        } else {
            order.first().cloned().unwrap_or_default()
        };
        let (cn, cc) = counts.get(&control).copied().unwrap_or((0, 0));
        let variants = order
            .iter()
            .map(|v| {
                let (n, c) = counts.get(v).copied().unwrap_or((0, 0));
                let is_control = *v == control;
                let (lift, lift_ci95, diff, diff_ci95) = if is_control {
                    (None, None, None, None)
                } else {
                    compare(n, c, cn, cc)
                };
                VariantRow {
                    variant: v.clone(),
                    exposed: n,
                    conversions: c,
                    rate: ratio(c, n),
                    lift,
                    lift_ci95,
                    diff,
                    diff_ci95,
                }
            })
            .collect::<Vec<_>>();
        let srm = declared.as_ref().and_then(|d| {
            let total_w: u64 = d.iter().map(|(_, w)| u64::from(*w)).sum();
            let n: u64 = d
                .iter()
                .map(|(v, _)| counts.get(v).map_or(0, |c| c.0))
                .sum();
            if d.len() < 2 || total_w == 0 || n == 0 {
                return None;
            }
            let mut chi = 0.0;
            let mut shares = BTreeMap::new();
            for (v, w) in d {
                let share = *w as f64 / total_w as f64;
                shares.insert(v.clone(), share);
                let expected = n as f64 * share;
                let observed = counts.get(v).map_or(0, |c| c.0) as f64;
                if expected > 0.0 {
                    chi += (observed - expected).powi(2) / expected;
                }
            }
            let df = u32::try_from(d.iter().filter(|(_, w)| *w > 0).count().saturating_sub(1))
                .unwrap_or(0);
            let p = chi_square_sf(chi, f64::from(df));
            Some(Srm {
                chi_square: chi,
                df,
                p_value: p,
                mismatch: p < 0.001,
                expected_shares: shares,
            })
        });
        out.push(ExperienceReport {
            experience: exp.clone(),
            bundle_version: version,
            control,
            variants,
            crossovers: crossovers.get(&exp).copied().unwrap_or(0),
            srm,
        });
    }
    out
}

fn ratio(c: u64, n: u64) -> f64 {
    if n == 0 {
        0.0
    } else {
        c as f64 / n as f64
    }
}

type Comparison = (Option<f64>, Option<[f64; 2]>, Option<f64>, Option<[f64; 2]>);

/// Variant (n, c) against control (cn, cc): relative lift with a log-ratio interval, absolute difference
/// with a Wald interval.
fn compare(n: u64, c: u64, cn: u64, cc: u64) -> Comparison {
    const Z: f64 = 1.959_963_984_540_054;
    if n == 0 || cn == 0 {
        return (None, None, None, None);
    }
    let (p, pc) = (ratio(c, n), ratio(cc, cn));
    let diff = p - pc;
    let se_d = (p * (1.0 - p) / n as f64 + pc * (1.0 - pc) / cn as f64).sqrt();
    let diff_ci = Some([diff - Z * se_d, diff + Z * se_d]);
    if c == 0 || cc == 0 {
        let lift = (cc > 0).then(|| p / pc - 1.0);
        return (lift, None, Some(diff), diff_ci);
    }
    let log_rr = (p / pc).ln();
    let se = ((1.0 - p) / c as f64 + (1.0 - pc) / cc as f64).sqrt();
    (
        Some(p / pc - 1.0),
        Some([(log_rr - Z * se).exp() - 1.0, (log_rr + Z * se).exp() - 1.0]),
        Some(diff),
        diff_ci,
    )
}

/// ln Γ(x) for x > 0 (Lanczos, g = 7, n = 9; relative error below 1e-13 over the range used here).
fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection.
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + G + 0.5;
    for (i, c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// Regularized upper incomplete gamma Q(a, x): series below a + 1, continued fraction above.
fn gamma_q(a: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    let ln_pre = a * x.ln() - x - ln_gamma(a);
    if x < a + 1.0 {
        let mut sum = 1.0 / a;
        let mut term = sum;
        let mut ap = a;
        for _ in 0..1000 {
            ap += 1.0;
            term *= x / ap;
            sum += term;
            if term.abs() < sum.abs() * 1e-15 {
                break;
            }
        }
        (1.0 - sum * ln_pre.exp()).clamp(0.0, 1.0)
    } else {
        // Modified Lentz.
        let tiny = 1e-300;
        let mut b = x + 1.0 - a;
        let mut c = 1.0 / tiny;
        let mut d = 1.0 / b;
        let mut h = d;
        for i in 1..1000 {
            let an = -(i as f64) * (i as f64 - a);
            b += 2.0;
            d = an * d + b;
            if d.abs() < tiny {
                d = tiny;
            }
            c = b + an / c;
            if c.abs() < tiny {
                c = tiny;
            }
            d = 1.0 / d;
            let del = d * c;
            h *= del;
            if (del - 1.0).abs() < 1e-15 {
                break;
            }
        }
        (ln_pre.exp() * h).clamp(0.0, 1.0)
    }
}

/// P(X ≥ x) for X ~ χ²(df).
pub fn chi_square_sf(x: f64, df: f64) -> f64 {
    if df <= 0.0 {
        return 1.0;
    }
    gamma_q(df / 2.0, x / 2.0)
}

/// `tailor report`.
pub fn run(data: &Path, conversion: &str, json: bool) -> Result<(), String> {
    if !data.join("tailor.db").is_file() {
        return Err(format!(
            "no store at `{}` (start `tailor serve --data {}` first)",
            data.display(),
            data.display()
        ));
    }
    let store = Store::open(
        data,
        crate::serve::store::CacheConfig {
            max_bytes: 1 << 20,
            ttl: std::time::Duration::from_secs(1),
        },
    )
    .map_err(|e| e.0)?;
    let exposures = store.exposures().map_err(|e: StoreError| e.0)?;
    let mut artifacts: HashMap<String, Option<tailor::bundle::BundleDef>> = HashMap::new();
    let mut store_err = None;
    let reports = compute(
        &exposures,
        |visitor, t| {
            let snap = match store.profile_uncached(visitor) {
                Ok(s) => s,
                Err(e) => {
                    store_err = Some(e.0);
                    None
                }
            };
            let Some(bytes) = snap else { return false };
            let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
                return false;
            };
            v.get("events")
                .and_then(|e| e.get(conversion))
                .and_then(|a| a.as_array())
                .is_some_and(|a| {
                    a.iter().any(|ev| {
                        ev.get("at")
                            .and_then(|x| x.as_str())
                            .and_then(tailor::time::parse_timestamp)
                            .is_some_and(|at| at > t)
                    })
                })
        },
        |hash, exp| {
            let def = artifacts.entry(hash.to_string()).or_insert_with(|| {
                let row = store.bundle_by_hash(hash).ok().flatten()?;
                serde_json::from_slice::<tailor::bundle::Artifact>(&row.artifact)
                    .ok()
                    .map(|a| a.definitions)
            });
            let def = def.as_ref()?;
            def.placements
                .iter()
                .flat_map(|p| &p.experiences)
                .find(|e| e.id == exp)
                .map(|e| {
                    e.variants
                        .iter()
                        .map(|v| (v.id.clone(), v.weight))
                        .collect()
                })
        },
    );
    if let Some(e) = store_err {
        return Err(e);
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({ "conversion": conversion, "experiences": reports })
            )
            .map_err(|e| e.to_string())?
        );
        return Ok(());
    }
    if reports.is_empty() {
        println!("no exposures logged yet");
    }
    let pct = |x: f64| format!("{:+.1}%", x * 100.0);
    for r in &reports {
        println!(
            "experience `{}` (bundle {}), control `{}`",
            r.experience, r.bundle_version, r.control
        );
        println!(
            "  {:<16} {:>9} {:>11} {:>8}  lift vs control (95% CI)",
            "variant", "exposed", "conversions", "rate"
        );
        for v in &r.variants {
            let lift = match (v.lift, v.lift_ci95) {
                (None, _) if v.variant == r.control => "(control)".to_string(),
                (Some(l), Some([lo, hi])) => format!("{} ({} … {})", pct(l), pct(lo), pct(hi)),
                (Some(l), None) => format!("{} (no interval: too few conversions)", pct(l)),
                (None, _) => "n/a".into(),
            };
            println!(
                "  {:<16} {:>9} {:>11} {:>7.2}%  {}",
                v.variant,
                v.exposed,
                v.conversions,
                v.rate * 100.0,
                lift
            );
        }
        match &r.srm {
            Some(s) => println!(
                "  sample ratio: chi-square {:.2} (df {}), p = {:.4} → {}",
                s.chi_square,
                s.df,
                s.p_value,
                if s.mismatch {
                    "MISMATCH: do not trust this experiment's results until the cause is found"
                } else {
                    "ok"
                }
            ),
            None => println!("  sample ratio: not tested (one variant, or the bundle is unknown)"),
        }
        if r.crossovers > 0 {
            println!(
                "  {} later exposures to a different variant (counted in the first)",
                r.crossovers
            );
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn chi_square_matches_tables() {
        // Critical values at 0.05 and 0.001 from standard chi-square tables.
        assert!((chi_square_sf(3.841_458_820_694_124, 1.0) - 0.05).abs() < 1e-9);
        assert!((chi_square_sf(5.991_464_547_107_979, 2.0) - 0.05).abs() < 1e-9);
        assert!((chi_square_sf(10.827_566_170_662_733, 1.0) - 0.001).abs() < 1e-9);
        assert!((chi_square_sf(0.0, 3.0) - 1.0).abs() < 1e-12);
        assert!(chi_square_sf(500.0, 2.0) < 1e-100);
    }

    fn exp(visitor: &str, variant: &str, at: i64) -> Exposure {
        Exposure {
            visitor: visitor.into(),
            experience: "x".into(),
            variant: variant.into(),
            bundle_version: "1".into(),
            bundle_hash: "h".into(),
            at_ms: at,
        }
    }

    #[test]
    fn counts_first_exposure_and_later_conversions() {
        let mut rows = Vec::new();
        for i in 0..1000 {
            rows.push(exp(&format!("c{i}"), "control", 10));
            rows.push(exp(&format!("t{i}"), "treatment", 10));
        }
        rows.push(exp("c0", "treatment", 20)); // crossover: stays in control
        let r = compute(
            &rows,
            // 10% of control converts, 15% of treatment; c1 converted only before exposure.
            |v, t| {
                let n: u32 = v[1..].parse().unwrap();
                let rate = if v.starts_with('c') { 10 } else { 15 };
                n % 100 < rate && !(v == "c1" && t >= 10)
            },
            |_, _| Some(vec![("control".into(), 1), ("treatment".into(), 1)]),
        );
        let r = &r[0];
        assert_eq!(r.control, "control");
        assert_eq!(r.crossovers, 1);
        assert_eq!(r.variants[0].exposed, 1000);
        assert_eq!(r.variants[0].conversions, 99);
        assert_eq!(r.variants[1].conversions, 150);
        let lift = r.variants[1].lift.unwrap();
        assert!((lift - (0.15 / 0.099 - 1.0)).abs() < 1e-12);
        let [lo, hi] = r.variants[1].lift_ci95.unwrap();
        assert!(lo > 0.0 && hi > lift, "{lo} {hi}");
        let srm = r.srm.as_ref().unwrap();
        assert!(!srm.mismatch);
        assert!(srm.chi_square.abs() < 1e-12);
    }

    #[test]
    fn flags_sample_ratio_mismatch() {
        let mut rows = Vec::new();
        for i in 0..1000 {
            rows.push(exp(&format!("a{i}"), "a", 1));
        }
        for i in 0..850 {
            rows.push(exp(&format!("b{i}"), "b", 1));
        }
        let r = compute(
            &rows,
            |_, _| false,
            |_, _| Some(vec![("a".into(), 50), ("b".into(), 50)]),
        );
        let srm = r[0].srm.as_ref().unwrap();
        // chi2 = (75^2 + 75^2) / 925 = 12.16, p ≈ 0.0005.
        assert!((srm.chi_square - 12.162_162).abs() < 1e-5);
        assert!(srm.mismatch, "{srm:?}");
        assert_eq!(r[0].control, "a");
        assert_eq!(r[0].variants[1].lift, None); // no conversions at all: no lift
    }
}
