//! A small least-recently-used map with host-supplied time, for per-isolate caches.
//!
//! moka cannot run on wasm32 (it reads `Instant`, which panics there), and a Worker isolate is
//! single-threaded, so this is a plain map: `HashMap` for lookup plus a `BTreeMap` from a use counter to
//! the key for eviction order; every operation is O(log n). Entries older than the TTL are misses. The
//! map is bounded by entry count and by total weight (the caller's estimate of an entry's bytes): a
//! Worker isolate has 128 MB, and a few thousand large profiles would exceed it.

use std::collections::{BTreeMap, HashMap};

struct Entry<V> {
    value: V,
    tick: u64,
    stored_ms: f64,
    weight: usize,
}

/// LRU map from `String` keys, bounded by entry count, with a time-to-live.
pub struct Lru<V> {
    map: HashMap<String, Entry<V>>,
    order: BTreeMap<u64, String>,
    tick: u64,
    capacity: usize,
    max_weight: usize,
    weight: usize,
    ttl_ms: f64,
}

impl<V: Clone> Lru<V> {
    /// At most `capacity` entries (0 disables caching) weighing at most `max_weight` together, each
    /// trusted for `ttl_ms`.
    pub fn new(capacity: usize, max_weight: usize, ttl_ms: f64) -> Lru<V> {
        Lru {
            map: HashMap::new(),
            order: BTreeMap::new(),
            tick: 0,
            capacity,
            max_weight,
            weight: 0,
            ttl_ms,
        }
    }

    fn next_tick(&mut self) -> u64 {
        self.tick = self.tick.wrapping_add(1);
        self.tick
    }

    /// The value under `key` if stored less than the TTL before `now_ms`; marks it most recent.
    pub fn get(&mut self, key: &str, now_ms: f64) -> Option<V> {
        let tick = self.next_tick();
        let e = self.map.get_mut(key)?;
        if now_ms - e.stored_ms >= self.ttl_ms || now_ms < e.stored_ms {
            let old = e.tick;
            if let Some(e) = self.map.remove(key) {
                self.weight -= e.weight;
            }
            self.order.remove(&old);
            return None;
        }
        let old = std::mem::replace(&mut e.tick, tick);
        let value = e.value.clone();
        if let Some(k) = self.order.remove(&old) {
            self.order.insert(tick, k);
        }
        Some(value)
    }

    /// Store `value` (weighing `weight`) under `key` as of `now_ms`, evicting the least recently used
    /// entries while over the entry or weight bound. An entry heavier than the whole bound is not kept.
    pub fn put(&mut self, key: &str, value: V, weight: usize, now_ms: f64) {
        if let Some(old) = self.map.remove(key) {
            self.order.remove(&old.tick);
            self.weight -= old.weight;
        }
        if self.capacity == 0 || weight > self.max_weight {
            return;
        }
        let tick = self.next_tick();
        self.map.insert(
            key.to_string(),
            Entry {
                value,
                tick,
                stored_ms: now_ms,
                weight,
            },
        );
        self.weight += weight;
        self.order.insert(tick, key.to_string());
        while self.map.len() > self.capacity || self.weight > self.max_weight {
            let Some((_, k)) = self.order.pop_first() else {
                break;
            };
            if let Some(e) = self.map.remove(&k) {
                self.weight -= e.weight;
            }
        }
    }

    /// Entries held (some may be expired).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Total weight held.
    pub fn weight(&self) -> usize {
        self.weight
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recent_and_expires() {
        let mut c = Lru::new(2, 1_000, 100.0);
        c.put("a", 1, 1, 0.0);
        c.put("b", 2, 1, 0.0);
        assert_eq!(c.get("a", 1.0), Some(1)); // a is now the most recent
        c.put("c", 3, 1, 2.0); // evicts b
        assert_eq!(c.get("b", 3.0), None);
        assert_eq!(c.get("a", 3.0), Some(1));
        assert_eq!(c.get("c", 3.0), Some(3));
        assert_eq!(c.len(), 2);
        assert_eq!(c.get("a", 100.0), None); // expired
        assert_eq!(c.len(), 1);
        c.put("c", 4, 1, 101.0); // replacing keeps one entry
        assert_eq!(c.get("c", 150.0), Some(4));
        assert_eq!(c.len(), 1);
        assert_eq!(c.order.len(), c.map.len());
    }

    #[test]
    fn zero_capacity_caches_nothing() {
        let mut c = Lru::new(0, 100, 100.0);
        c.put("a", 1, 1, 0.0);
        assert_eq!(c.get("a", 0.0), None);
    }

    #[test]
    fn weight_bound_evicts_and_refuses_giants() {
        let mut c = Lru::new(100, 10, 1e9);
        c.put("a", 1, 4, 0.0);
        c.put("b", 2, 4, 0.0);
        assert_eq!(c.weight(), 8);
        c.put("c", 3, 4, 0.0); // 12 > 10: a goes
        assert_eq!(c.get("a", 1.0), None);
        assert_eq!(c.weight(), 8);
        c.put("giant", 4, 11, 0.0);
        assert_eq!(c.get("giant", 1.0), None);
        assert_eq!(c.weight(), 8);
        c.put("b", 5, 1, 0.0); // re-weighing replaces the old weight
        assert_eq!(c.weight(), 5);
    }

    #[test]
    fn order_and_map_stay_in_step_under_churn() {
        let mut c = Lru::new(8, usize::MAX, 1e9);
        for i in 0..1000u32 {
            let k = format!("k{}", (i * 7919) % 13);
            if i % 3 == 0 {
                c.get(&k, f64::from(i));
            } else {
                c.put(&k, i, 3, f64::from(i));
            }
            assert!(c.len() <= 8);
            assert_eq!(c.weight(), 3 * c.len());
            assert_eq!(c.order.len(), c.map.len());
        }
    }
}
