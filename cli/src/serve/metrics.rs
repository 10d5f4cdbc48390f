//! Prometheus text exposition (format 0.0.4), written by hand: a few counters and one histogram family
//! do not justify a metrics framework. Label values are escaped; label sets are bounded by the routes
//! and by the bundle's own placements, experiences and variants (never by visitor data).

// foldhash: label lookups run on every request (four placements = twelve lookups per decide).
use super::shard::Shards;
use foldhash::HashMap;
use std::fmt::Write;
use std::sync::Arc;

/// Latency buckets in seconds: fine-grained below a millisecond, where decide lives.
const BUCKETS: [f64; 14] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

#[derive(Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Default, Clone)]
struct RouteStats {
    statuses: Vec<(u16, u64)>,
    latency: Histogram,
}

/// Reasons in `tailor_decisions_total`, in counter-array order.
pub const REASONS: [&str; 4] = ["matched", "default", "holdout", "unknown_placement"];

/// Labels of one decision counter: the bundle's own shared strings (`""` for none).
type Labels = (Arc<str>, Arc<str>, Arc<str>);

/// Keyed by `&str` lookups so the hot path allocates only the first time a label set is seen.
#[derive(Default)]
struct Inner {
    routes: HashMap<String, RouteStats>,
    /// Decision counters keyed by the addresses of the label strings: placement, experience and variant
    /// ids are `Arc<str>`s of the compiled bundle, the same allocation in every decision, so a lookup
    /// hashes three words and compares no text (measured under the load benchmark: string keys cost
    /// ~0.5 µs per decide, mostly `memcmp`). The entry holds the `Arc`s, so an address cannot be reused
    /// by another string while it is a key; a redeployed bundle adds new keys with the same text, which
    /// [`Metrics::render`] adds up.
    decisions: HashMap<(usize, usize, usize), (Labels, [u64; 4])>,
}

fn addr(s: &Arc<str>) -> usize {
    Arc::as_ptr(s).cast::<u8>() as usize
}

/// One decision as [`Metrics::decisions`] counts it: placement, experience, variant (the bundle's shared
/// strings) and the index of its reason in [`REASONS`].
pub type DecisionLabels<'a> = (
    &'a Arc<str>,
    Option<&'a Arc<str>>,
    Option<&'a Arc<str>>,
    usize,
);

/// Index of `unknown_placement` in [`REASONS`].
pub const UNKNOWN_PLACEMENT: usize = 3;

impl Inner {
    /// Add another shard's counts to these.
    fn add(&mut self, o: &Inner) {
        for (route, r) in &o.routes {
            let mine = self.routes.entry(route.clone()).or_default();
            for &(status, n) in &r.statuses {
                match mine.statuses.iter_mut().find(|(s, _)| *s == status) {
                    Some((_, m)) => *m += n,
                    None => mine.statuses.push((status, n)),
                }
            }
            let (h, oh) = (&mut mine.latency, &r.latency);
            for (c, oc) in h.counts.iter_mut().zip(oh.counts) {
                *c += oc;
            }
            h.count += oh.count;
            h.sum += oh.sum;
        }
        for (key, (labels, counts)) in &o.decisions {
            let mine = &mut self
                .decisions
                .entry(*key)
                .or_insert_with(|| (labels.clone(), [0; 4]))
                .1;
            for (m, n) in mine.iter_mut().zip(counts) {
                *m += n;
            }
        }
    }
}

/// Server metrics, one shard per thread ([`Shards`]: no lock or counter shared by two requests).
pub struct Metrics {
    inner: Shards<Inner>,
    /// The empty label (one allocation, so its address is a stable key).
    none: Arc<str>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            inner: Shards::default(),
            none: Arc::from(""),
        }
    }
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Gauges read at scrape time.
pub struct Snapshot<'a> {
    pub cache_hits: u64,
    pub cache_misses: u64,
    pub cache_entries: u64,
    pub cache_bytes: u64,
    pub exposures_dropped: u64,
    pub bundle: Option<(&'a str, &'a str, &'a str)>,
}

impl Metrics {
    /// Count one HTTP request.
    pub fn request(&self, route: &str, status: u16, seconds: f64) {
        self.inner
            .update(|g| Self::count_request(g, route, status, seconds));
    }

    fn count_request(g: &mut Inner, route: &str, status: u16, seconds: f64) {
        let r = match g.routes.get_mut(route) {
            Some(r) => r,
            None => g.routes.entry(route.to_string()).or_default(),
        };
        match r.statuses.iter_mut().find(|(s, _)| *s == status) {
            Some((_, n)) => *n += 1,
            None => r.statuses.push((status, 1)),
        }
        let h = &mut r.latency;
        for (c, b) in h.counts.iter_mut().zip(BUCKETS) {
            if seconds <= b {
                *c += 1;
            }
        }
        h.count += 1;
        h.sum += seconds;
    }

    /// Count decisions: (placement, experience, variant, index into [`REASONS`]). Placement names the
    /// bundle does not define are counted under the placement `""`: a request's own strings never become
    /// labels (which would let callers grow the metrics without bound).
    pub fn decisions<'a>(&self, d: impl Iterator<Item = DecisionLabels<'a>>) {
        self.inner.update(|g| self.count_decisions(g, d));
    }

    fn count_decisions<'a>(&self, g: &mut Inner, d: impl Iterator<Item = DecisionLabels<'a>>) {
        for (p, e, v, reason) in d {
            let p = if reason == UNKNOWN_PLACEMENT {
                &self.none
            } else {
                p
            };
            let (e, v) = (e.unwrap_or(&self.none), v.unwrap_or(&self.none));
            let counts = &mut g
                .decisions
                .entry((addr(p), addr(e), addr(v)))
                .or_insert_with(|| ((p.clone(), e.clone(), v.clone()), [0; 4]))
                .1;
            if let Some(c) = counts.get_mut(reason) {
                *c += 1;
            }
        }
    }

    /// The exposition text.
    pub fn render(&self, s: &Snapshot<'_>) -> String {
        let g = self.inner.fold(Inner::default(), |mut all, shard| {
            all.add(shard);
            all
        });
        let mut o = String::with_capacity(4096);
        o.push_str("# HELP tailor_http_requests_total HTTP requests by route and status.\n# TYPE tailor_http_requests_total counter\n");
        let mut routes: Vec<(&String, &RouteStats)> = g.routes.iter().collect();
        routes.sort_by(|a, b| a.0.cmp(b.0));
        for (r, stats) in &routes {
            let mut st = stats.statuses.clone();
            st.sort_unstable();
            for (code, n) in st {
                let _ = writeln!(
                    o,
                    "tailor_http_requests_total{{route=\"{}\",status=\"{code}\"}} {n}",
                    esc(r)
                );
            }
        }
        o.push_str("# HELP tailor_http_request_duration_seconds HTTP request latency by route.\n# TYPE tailor_http_request_duration_seconds histogram\n");
        for (r, stats) in &routes {
            let h = &stats.latency;
            let r = esc(r);
            for (c, b) in h.counts.iter().zip(BUCKETS) {
                let _ = writeln!(
                    o,
                    "tailor_http_request_duration_seconds_bucket{{route=\"{r}\",le=\"{b}\"}} {c}"
                );
            }
            let _ = writeln!(
                o,
                "tailor_http_request_duration_seconds_bucket{{route=\"{r}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                o,
                "tailor_http_request_duration_seconds_sum{{route=\"{r}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                o,
                "tailor_http_request_duration_seconds_count{{route=\"{r}\"}} {}",
                h.count
            );
        }
        o.push_str("# HELP tailor_decisions_total Decisions by placement, experience, variant and reason.\n# TYPE tailor_decisions_total counter\n");
        let mut rows: std::collections::BTreeMap<(&str, &str, &str, &str), u64> =
            Default::default();
        for ((p, e, v), counts) in g.decisions.values() {
            for (reason, n) in REASONS.iter().zip(counts) {
                if *n > 0 {
                    *rows.entry((p, e, v, reason)).or_default() += n;
                }
            }
        }
        for ((p, e, v, reason), n) in rows {
            let _ = writeln!(
                o,
                "tailor_decisions_total{{placement=\"{}\",experience=\"{}\",variant=\"{}\",reason=\"{reason}\"}} {n}",
                esc(p),
                esc(e),
                esc(v)
            );
        }
        let _ = write!(
            o,
            "# HELP tailor_profile_cache_requests_total Profile cache lookups.\n# TYPE tailor_profile_cache_requests_total counter\n\
             tailor_profile_cache_requests_total{{result=\"hit\"}} {}\ntailor_profile_cache_requests_total{{result=\"miss\"}} {}\n\
             # HELP tailor_profile_cache_hit_ratio Hits over lookups since start.\n# TYPE tailor_profile_cache_hit_ratio gauge\n\
             tailor_profile_cache_hit_ratio {}\n\
             # HELP tailor_profile_cache_entries Profiles (and known absences) in the cache.\n# TYPE tailor_profile_cache_entries gauge\n\
             tailor_profile_cache_entries {}\n\
             # HELP tailor_profile_cache_bytes Weighted size of the cache.\n# TYPE tailor_profile_cache_bytes gauge\n\
             tailor_profile_cache_bytes {}\n\
             # HELP tailor_exposures_dropped_total Exposure rows dropped because the log writer fell behind.\n# TYPE tailor_exposures_dropped_total counter\n\
             tailor_exposures_dropped_total {}\n",
            s.cache_hits,
            s.cache_misses,
            {
                let total = s.cache_hits + s.cache_misses;
                if total == 0 { 0.0 } else { s.cache_hits as f64 / total as f64 }
            },
            s.cache_entries,
            s.cache_bytes,
            s.exposures_dropped,
        );
        o.push_str(
            "# HELP tailor_bundle_info The active bundle.\n# TYPE tailor_bundle_info gauge\n",
        );
        if let Some((id, version, hash)) = s.bundle {
            let _ = writeln!(
                o,
                "tailor_bundle_info{{id=\"{}\",version=\"{}\",hash=\"{}\"}} 1",
                esc(id),
                esc(version),
                esc(hash)
            );
        }
        o
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn render(m: &Metrics) -> String {
        m.render(&Snapshot {
            cache_hits: 0,
            cache_misses: 0,
            cache_entries: 0,
            cache_bytes: 0,
            exposures_dropped: 0,
            bundle: None,
        })
    }

    #[test]
    fn decision_labels_are_the_bundles_and_add_up_across_deployments() {
        let m = Metrics::default();
        // Two deployments of the same bundle: the same names in different allocations.
        let (p1, e1, v1) = (Arc::from("hero"), Arc::from("sale"), Arc::from("a"));
        let (p2, e2, v2) = (Arc::from("hero"), Arc::from("sale"), Arc::from("a"));
        let visitor_typed: Arc<str> = Arc::from("made-up");
        m.decisions([(&p1, Some(&e1), Some(&v1), 0), (&p1, None, None, 1)].into_iter());
        m.decisions([(&p2, Some(&e2), Some(&v2), 0)].into_iter());
        m.decisions([(&visitor_typed, None, None, UNKNOWN_PLACEMENT)].into_iter());
        let t = render(&m);
        assert!(t.contains("tailor_decisions_total{placement=\"hero\",experience=\"sale\",variant=\"a\",reason=\"matched\"} 2\n"), "{t}");
        assert!(t.contains("tailor_decisions_total{placement=\"hero\",experience=\"\",variant=\"\",reason=\"default\"} 1\n"), "{t}");
        assert!(t.contains("tailor_decisions_total{placement=\"\",experience=\"\",variant=\"\",reason=\"unknown_placement\"} 1\n"), "{t}");
        assert!(!t.contains("made-up"), "{t}");
    }

    #[test]
    fn counts_from_every_thread_add_up() {
        let m = Arc::new(Metrics::default());
        let (p, e, v): (Arc<str>, Arc<str>, Arc<str>) =
            (Arc::from("hero"), Arc::from("sale"), Arc::from("b"));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (m, p, e, v) = (m.clone(), p.clone(), e.clone(), v.clone());
                std::thread::spawn(move || {
                    for i in 0..250 {
                        m.request("/v1/decide", if i % 50 == 0 { 400 } else { 200 }, 0.0003);
                        m.decisions([(&p, Some(&e), Some(&v), 0)].into_iter());
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        m.request("/v1/decide", 200, 0.002);
        let t = render(&m);
        assert!(
            t.contains("tailor_http_requests_total{route=\"/v1/decide\",status=\"200\"} 981\n"),
            "{t}"
        );
        assert!(
            t.contains("tailor_http_requests_total{route=\"/v1/decide\",status=\"400\"} 20\n"),
            "{t}"
        );
        assert!(t.contains("tailor_http_request_duration_seconds_bucket{route=\"/v1/decide\",le=\"0.0005\"} 1000\n"), "{t}");
        assert!(
            t.contains("tailor_http_request_duration_seconds_count{route=\"/v1/decide\"} 1001\n"),
            "{t}"
        );
        assert!(t.contains("tailor_decisions_total{placement=\"hero\",experience=\"sale\",variant=\"b\",reason=\"matched\"} 1000\n"), "{t}");
    }
}
