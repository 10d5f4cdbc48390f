//! A small least-recently-used map with host-supplied time, for per-isolate caches.
//!
//! moka cannot run on wasm32 (it reads `Instant`, which panics there), and a Worker isolate is
//! single-threaded, so this is a plain map: `HashMap` for lookup plus a `BTreeMap` from a use counter to
//! the key for eviction order; every operation is O(log n). Entries older than the TTL are misses.

use std::collections::{BTreeMap, HashMap};

struct Entry<V> {
    value: V,
    tick: u64,
    stored_ms: f64,
}

/// LRU map from `String` keys, bounded by entry count, with a time-to-live.
pub struct Lru<V> {
    map: HashMap<String, Entry<V>>,
    order: BTreeMap<u64, String>,
    tick: u64,
    capacity: usize,
    ttl_ms: f64,
}

impl<V: Clone> Lru<V> {
    /// At most `capacity` entries (0 disables caching), each trusted for `ttl_ms`.
    pub fn new(capacity: usize, ttl_ms: f64) -> Lru<V> {
        Lru {
            map: HashMap::new(),
            order: BTreeMap::new(),
            tick: 0,
            capacity,
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
            self.map.remove(key);
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

    /// Store `value` under `key` as of `now_ms`, evicting the least recently used entry when full.
    pub fn put(&mut self, key: &str, value: V, now_ms: f64) {
        if self.capacity == 0 {
            return;
        }
        let tick = self.next_tick();
        if let Some(old) = self.map.insert(
            key.to_string(),
            Entry {
                value,
                tick,
                stored_ms: now_ms,
            },
        ) {
            self.order.remove(&old.tick);
        }
        self.order.insert(tick, key.to_string());
        while self.map.len() > self.capacity {
            let Some((_, k)) = self.order.pop_first() else {
                break;
            };
            self.map.remove(&k);
        }
    }

    /// Entries held (some may be expired).
    pub fn len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recent_and_expires() {
        let mut c = Lru::new(2, 100.0);
        c.put("a", 1, 0.0);
        c.put("b", 2, 0.0);
        assert_eq!(c.get("a", 1.0), Some(1)); // a is now the most recent
        c.put("c", 3, 2.0); // evicts b
        assert_eq!(c.get("b", 3.0), None);
        assert_eq!(c.get("a", 3.0), Some(1));
        assert_eq!(c.get("c", 3.0), Some(3));
        assert_eq!(c.len(), 2);
        assert_eq!(c.get("a", 100.0), None); // expired
        assert_eq!(c.len(), 1);
        c.put("c", 4, 101.0); // replacing keeps one entry
        assert_eq!(c.get("c", 150.0), Some(4));
        assert_eq!(c.len(), 1);
        assert_eq!(c.order.len(), c.map.len());
    }

    #[test]
    fn zero_capacity_caches_nothing() {
        let mut c = Lru::new(0, 100.0);
        c.put("a", 1, 0.0);
        assert_eq!(c.get("a", 0.0), None);
    }

    #[test]
    fn order_and_map_stay_in_step_under_churn() {
        let mut c = Lru::new(8, 1e9);
        for i in 0..1000u32 {
            let k = format!("k{}", (i * 7919) % 13);
            if i % 3 == 0 {
                c.get(&k, f64::from(i));
            } else {
                c.put(&k, i, f64::from(i));
            }
            assert!(c.len() <= 8);
            assert_eq!(c.order.len(), c.map.len());
        }
    }
}
