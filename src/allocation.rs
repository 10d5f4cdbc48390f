//! Deterministic, sticky allocation of visitors to buckets.
//!
//! The specification (also in the README, with test vectors in `tests/data/allocation_vectors.json`):
//!
//! ```text
//! bucket(draw, unit, visitor) = murmur3_x86_32(utf8("<salt>.<draw>:<unit>:<visitor>"), seed = 0) mod 10000
//! ```
//!
//! `salt` is the bundle's salt (default: the bundle id), `draw` is one of `traffic`, `variant`, `exclusion`,
//! `holdout`, so the four draws are independent; `unit` is the experience id (traffic, variant), the
//! exclusion group id, or the holdout id. A variant with weights `w1..wn` (total `W`) owns buckets
//! `[floor(10000·(w1+…+w(i-1))/W), floor(10000·(w1+…+wi)/W))`. Traffic of `p` % admits buckets `< round(100·p)`.
//!
//! The hash is computed in a streaming fashion over the three parts, so a decision allocates nothing.

/// Number of buckets: allocation has a resolution of 0.01 %.
pub const BUCKETS: u32 = 10_000;

/// The independent draws of one decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Draw {
    /// Does the visitor enter the experience at all (`traffic` percentage)?
    Traffic,
    /// Which variant?
    Variant,
    /// Which experience of a mutual-exclusion group may the visitor see?
    Exclusion,
    /// Is the visitor in a holdout?
    Holdout,
}

impl Draw {
    /// The name used in the hashed key.
    pub fn name(self) -> &'static str {
        match self {
            Draw::Traffic => "traffic",
            Draw::Variant => "variant",
            Draw::Exclusion => "exclusion",
            Draw::Holdout => "holdout",
        }
    }
}

/// The bucket `0..10000` of `visitor` for `draw` over `unit`.
pub fn bucket(salt: &str, draw: Draw, unit: &str, visitor: &str) -> u32 {
    bucket_after(&prefix(salt, draw, unit), visitor)
}

/// The hash state after `salt.draw:unit:`, the part of [`bucket`]'s input that does not depend on the
/// visitor: an engine computes it once per experience at load instead of once per decision.
pub fn prefix(salt: &str, draw: Draw, unit: &str) -> Murmur3 {
    let mut h = Murmur3::new(0);
    h.write(salt.as_bytes());
    h.write(b".");
    h.write(draw.name().as_bytes());
    h.write(b":");
    h.write(unit.as_bytes());
    h.write(b":");
    h
}

/// [`bucket`] of `visitor` from its [`prefix`]: the same number.
pub fn bucket_after(prefix: &Murmur3, visitor: &str) -> u32 {
    let mut h = prefix.clone();
    h.write(visitor.as_bytes());
    h.finish() % BUCKETS
}

/// Upper bucket bounds (exclusive) of variants with these weights; the last bound is always 10000 when the
/// total is positive.
pub fn variant_bounds(weights: &[u32]) -> Vec<u32> {
    let total: u64 = weights.iter().map(|w| u64::from(*w)).sum();
    let mut cum = 0u64;
    weights
        .iter()
        .map(|w| {
            cum += u64::from(*w);
            (cum * u64::from(BUCKETS))
                .checked_div(total)
                .map_or(0, |b| u32::try_from(b).unwrap_or(BUCKETS))
        })
        .collect()
}

/// MurmurHash3 x86_32, fed incrementally.
#[derive(Clone, Debug)]
pub struct Murmur3 {
    h: u32,
    tail: u32,
    tail_len: u32,
    len: u32,
}

const C1: u32 = 0xcc9e_2d51;
const C2: u32 = 0x1b87_3593;

impl Murmur3 {
    /// A hasher with `seed`.
    pub fn new(seed: u32) -> Murmur3 {
        Murmur3 {
            h: seed,
            tail: 0,
            tail_len: 0,
            len: 0,
        }
    }

    #[inline]
    fn mix(&mut self, k: u32) {
        let k = k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
        self.h ^= k;
        self.h = self
            .h
            .rotate_left(13)
            .wrapping_mul(5)
            .wrapping_add(0xe654_6b64);
    }

    /// Feed bytes.
    pub fn write(&mut self, bytes: &[u8]) {
        self.len = self
            .len
            .wrapping_add(u32::try_from(bytes.len()).unwrap_or(u32::MAX));
        let mut rest = bytes;
        // Complete a partial block left by the previous write.
        while self.tail_len > 0 {
            let Some((&b, r)) = rest.split_first() else {
                return;
            };
            self.tail |= u32::from(b) << (8 * self.tail_len);
            self.tail_len += 1;
            rest = r;
            if self.tail_len == 4 {
                let k = self.tail;
                self.tail = 0;
                self.tail_len = 0;
                self.mix(k);
            }
        }
        let mut chunks = rest.chunks_exact(4);
        for c in &mut chunks {
            let k = u32::from_le_bytes([
                c.first().copied().unwrap_or(0),
                c.get(1).copied().unwrap_or(0),
                c.get(2).copied().unwrap_or(0),
                c.get(3).copied().unwrap_or(0),
            ]);
            self.mix(k);
        }
        for (i, &b) in chunks.remainder().iter().enumerate() {
            self.tail |= u32::from(b) << (8 * i);
            self.tail_len += 1;
        }
    }

    /// The hash of everything written.
    pub fn finish(&self) -> u32 {
        let mut h = self.h;
        if self.tail_len > 0 {
            let k = self.tail.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
            h ^= k;
        }
        h ^= self.len;
        h ^= h >> 16;
        h = h.wrapping_mul(0x85eb_ca6b);
        h ^= h >> 13;
        h = h.wrapping_mul(0xc2b2_ae35);
        h ^= h >> 16;
        h
    }
}

/// MurmurHash3 x86_32 of `bytes` with `seed`.
pub fn murmur3_x86_32(bytes: &[u8], seed: u32) -> u32 {
    let mut h = Murmur3::new(seed);
    h.write(bytes);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streaming_equals_one_shot() {
        let text = b"retail.variant:hero-test:visitor-0042";
        for split1 in 0..text.len() {
            for split2 in split1..text.len() {
                let mut h = Murmur3::new(7);
                h.write(text.get(..split1).unwrap_or_default());
                h.write(text.get(split1..split2).unwrap_or_default());
                h.write(text.get(split2..).unwrap_or_default());
                assert_eq!(h.finish(), murmur3_x86_32(text, 7));
            }
        }
    }

    #[test]
    fn bounds_cover_all_buckets() {
        assert_eq!(variant_bounds(&[50, 50]), vec![5000, 10000]);
        assert_eq!(variant_bounds(&[1, 1, 1]), vec![3333, 6666, 10000]);
        assert_eq!(variant_bounds(&[0, 3]), vec![0, 10000]);
    }
}
