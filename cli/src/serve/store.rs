//! The embedded store: profile snapshots, the exposure log and deployed bundles in one SQLite file.
//!
//! Durability: WAL journal with `synchronous = FULL`, so a write is acknowledged only after its commit
//! is on disk; it survives `kill -9` and power loss alike. One writer connection (SQLite allows one
//! writer at a time anyway) behind a mutex; readers take pooled connections and never block the writer
//! (WAL readers see the last committed state).
//!
//! Every write transaction is `BEGIN IMMEDIATE`: it takes the write lock before reading, so a
//! read-modify-write (events) waits for other writers (the exposure log) instead of failing with
//! SQLITE_BUSY when its read snapshot goes stale.
//!
//! The cache in front (moka, bounded in bytes, with a TTL) holds raw snapshots, including "no profile",
//! so unknown visitors do not hit SQLite on every request. Coherence: a cache fill and a write of the
//! same visitor hold the same lock stripe from the read/commit through the cache insert, so a fill can
//! never put back a snapshot older than a committed write.

use moka::sync::Cache;

/// moka caches keyed by visitor id, hashed with foldhash (see cli/Cargo.toml).
pub type FastCache<K, V> = Cache<K, V, foldhash::fast::RandomState>;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// A stored snapshot, or its absence (cached too), with its decoded form for the active bundle.
pub type Snapshot = Arc<Cached>;

/// A cache entry. Decoding a 3 KB snapshot costs ~5 µs, more than the decision itself, so the decoded
/// profile is kept with the bytes, for the layout it was decoded for
/// ([`tailor::Engine::profile_layout_id`]): a bundle with another layout decodes again.
///
/// The entry also carries the visitor's serving state, so a decision makes one cache lookup instead of
/// a second one for the counts and a probe of a global exposure set (measured under the load benchmark:
/// each moka lookup of a random visitor cost ~1 µs, most of it cache misses; together with the set,
/// ~1.8 µs of server CPU per decide):
/// - `counts`: the frequency-cap counts, the same `Arc` the counts cache holds (loaded once per entry);
/// - `logged`: hashes of the (experience, variant, bundle) exposures already queued for the log.
///
/// A write that replaces the snapshot carries both over to the new entry ([`Store::replace`]).
///
/// Layout, measured: a visitor picked among thousands is in no CPU cache, and every separate
/// allocation the decision reads is one more dependent memory miss (~0.1 µs each on the benchmark
/// VM), so the id, the decoded profile's own struct and the logged hashes live inside the entry
/// instead of behind a `String`, an `Arc` (whose count update, a locked instruction on a cold line,
/// also held back every later load) and a `Vec`.
pub struct Cached {
    /// Whose snapshot this is: the cache is keyed by a 64-bit hash of the id, so a lookup checks it.
    id: VisitorId,
    pub raw: Option<Arc<[u8]>>,
    decoded: OnceLock<tailor::context::Profile>,
    counts: OnceLock<Counts>,
    logged: Logged,
}

/// Most exposure hashes remembered per visitor; past it the list starts again (a repeated exposure row
/// is harmless: the report counts each visitor's first exposure).
const LOGGED_PER_VISITOR: usize = 16;

/// The remembered exposure hashes, inline (see [`Cached`]). Read without a lock: every decision reads
/// them, and a lock is a locked instruction on the entry's cold cache line that holds back every later
/// load (measured under the load benchmark: leaving out the exposure check made decide ~0.9 µs of
/// machine time cheaper, with the lock). Pushes (first exposures, rare) take `push`. A read racing a
/// push may miss the new key and queue a repeat row, which the report tolerates.
struct Logged {
    len: AtomicUsize,
    keys: [AtomicU64; LOGGED_PER_VISITOR],
    push: Mutex<()>,
}

impl Logged {
    fn from_keys(keys: &[u64]) -> Logged {
        let l = Logged {
            len: AtomicUsize::new(0),
            keys: Default::default(),
            push: Mutex::new(()),
        };
        for &k in keys.iter().take(LOGGED_PER_VISITOR) {
            l.push(k);
        }
        l
    }

    fn keys(&self) -> Vec<u64> {
        let n = self.len.load(Ordering::Acquire);
        self.keys
            .iter()
            .take(n)
            .map(|k| k.load(Ordering::Relaxed))
            .collect()
    }

    fn contains(&self, k: u64) -> bool {
        let n = self.len.load(Ordering::Acquire);
        self.keys
            .iter()
            .take(n)
            .any(|x| x.load(Ordering::Relaxed) == k)
    }

    /// Remember `k`; a full list starts again.
    fn push(&self, k: u64) {
        let _g = match self.push.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let mut n = self.len.load(Ordering::Relaxed);
        if n >= LOGGED_PER_VISITOR {
            n = 0;
        }
        if let Some(slot) = self.keys.get(n) {
            slot.store(k, Ordering::Relaxed);
            self.len.store(n + 1, Ordering::Release);
        }
    }
}

/// Most bytes of a decoded profile [`Cached::prefetch`] touches (64 cache lines): a 30-purchase
/// profile's tables are ~2.3 KB.
const PREFETCH_PROFILE_BYTES: usize = 4096;

/// Longest visitor id kept inline in a cache entry (a UUID is 36 bytes); longer ones are boxed.
const INLINE_ID: usize = 46;

/// A visitor id, inline when short (see [`Cached`]).
#[derive(Clone)]
enum VisitorId {
    Inline(u8, [u8; INLINE_ID]),
    Boxed(Box<str>),
}

impl VisitorId {
    fn new(id: &str) -> VisitorId {
        let mut b = [0u8; INLINE_ID];
        match (b.get_mut(..id.len()), u8::try_from(id.len())) {
            (Some(dst), Ok(n)) => {
                dst.copy_from_slice(id.as_bytes());
                VisitorId::Inline(n, b)
            }
            _ => VisitorId::Boxed(id.into()),
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            VisitorId::Inline(n, b) => b.get(..usize::from(*n)).unwrap_or(&[]),
            VisitorId::Boxed(s) => s.as_bytes(),
        }
    }

    fn is(&self, id: &str) -> bool {
        self.as_bytes() == id.as_bytes()
    }
}

/// The profile a decision reads: borrowed from the cache entry, or decoded for this request only
/// (the entry holds one for another bundle's layout).
pub enum Decoded<'a> {
    Cached(&'a tailor::context::Profile),
    Once(tailor::context::Profile),
}

impl std::ops::Deref for Decoded<'_> {
    type Target = tailor::context::Profile;
    fn deref(&self) -> &tailor::context::Profile {
        match self {
            Decoded::Cached(p) => p,
            Decoded::Once(p) => p,
        }
    }
}

impl Cached {
    fn new(id: &str, raw: Option<Arc<[u8]>>, logged: &[u64]) -> Snapshot {
        Arc::new(Cached {
            id: VisitorId::new(id),
            raw,
            decoded: OnceLock::new(),
            counts: OnceLock::new(),
            logged: Logged::from_keys(logged),
        })
    }

    /// A new entry for `raw`, the same visitor's, with `prev`'s serving state (counts and logged
    /// exposures).
    fn succeed(prev: &Cached, raw: Option<Arc<[u8]>>) -> Snapshot {
        let counts = OnceLock::new();
        if let Some(c) = prev.counts.get() {
            let _ = counts.set(c.clone());
        }
        let logged = Logged::from_keys(&prev.logged.keys());
        Arc::new(Cached {
            id: prev.id.clone(),
            raw,
            decoded: OnceLock::new(),
            counts,
            logged,
        })
    }

    /// Start loading what a decision reads of this entry: the decoded profile's hot lines
    /// ([`tailor::context::Profile::touch`]) and the cap counts' lock. The handler calls this right
    /// after the cache lookup, so the profile's misses overlap each other instead of stalling the
    /// evaluator one by one. (Plain loads, not prefetch instructions: the workspace forbids `unsafe`.)
    pub fn prefetch(&self) {
        if let Some(p) = self.decoded.get() {
            std::hint::black_box(p.touch(PREFETCH_PROFILE_BYTES));
        }
        if let Some(c) = self.counts.get() {
            // The reference count shares a cache line with the lock the decision takes.
            std::hint::black_box(Arc::strong_count(c));
        }
    }

    /// Whether this entry is `id`'s (and not another id's with the same cache key).
    fn is(&self, id: &str) -> bool {
        self.id.is(id)
    }

    /// The visitor's frequency-cap counts if this entry has them (no I/O).
    /// Borrowed, not cloned: an `Arc` clone is a locked increment on the entry's cold cache line.
    pub fn counts(&self) -> Option<&Counts> {
        self.counts.get()
    }

    /// Keep `c` as this entry's counts (the first one set wins, and is returned).
    pub fn set_counts(&self, c: Counts) -> &Counts {
        self.counts.get_or_init(|| c)
    }

    /// Whether exposure `key` is seen for the first time by this entry (and remember it).
    pub fn first_exposure(&self, key: u64) -> bool {
        if self.logged.contains(key) {
            return false;
        }
        self.logged.push(key);
        true
    }

    /// The profile decoded for `engine`, `None` without a snapshot. The first decode is kept in the
    /// entry (`true`: the caller then re-weighs it, [`Store::reweigh`]); an entry decoded for another
    /// layout decodes for this request only (`true` as well: the caller's re-weigh replaces the entry
    /// with an undecoded successor, so the next decision keeps the new layout's form).
    pub fn profile(
        &self,
        engine: &tailor::Engine,
    ) -> Result<(Option<Decoded<'_>>, bool), tailor::wire::ErrorResponse> {
        let Some(raw) = &self.raw else {
            return Ok((None, false));
        };
        let layout = engine.profile_layout_id();
        if let Some(p) = self.decoded.get() {
            return Ok(if p.layout_id == layout {
                (Some(Decoded::Cached(p)), false)
            } else {
                (Some(Decoded::Once(engine.decode_profile(raw)?)), true)
            });
        }
        let p = engine.decode_profile(raw)?;
        // Two requests may decode at once: the first one kept wins. If that one was decoded for
        // another layout (a deploy in between), this request decodes its own.
        let kept = self.decoded.get_or_init(|| p);
        if kept.layout_id == layout {
            Ok((Some(Decoded::Cached(kept)), true))
        } else {
            Ok((Some(Decoded::Once(engine.decode_profile(raw)?)), true))
        }
    }

    /// Whether the kept profile was decoded for `layout` (none kept: true).
    fn decoded_for(&self, layout: u64) -> bool {
        self.decoded.get().is_none_or(|p| p.layout_id == layout)
    }

    /// What this entry weighs in the cache: id + snapshot bytes + the decoded profile's measured size
    /// (`Profile::heap_bytes`) + 256 bytes for moka's node and this struct (the counts are the counts
    /// cache's, outside this budget).
    fn weight(&self) -> u32 {
        let decoded = self.decoded.get().map_or(0, |p| p.heap_bytes());
        let id = match &self.id {
            VisitorId::Inline(..) => 0,
            VisitorId::Boxed(s) => s.len(),
        };
        let n = id
            + self.raw.as_ref().map_or(0, |b| b.len())
            + decoded
            + std::mem::size_of::<Cached>()
            + 256;
        u32::try_from(n).unwrap_or(u32::MAX)
    }
}

/// A visitor's frequency-cap counts: (experience id, times served).
/// The experience ids are `CompactString`s, inline up to 24 bytes, so matching one against the bundle's
/// capped experience reads the list's own buffer, not one more allocation per entry.
pub type Counts = Arc<Mutex<Vec<(tailor::wire::Text, u32)>>>;

/// One exposure-log row.
#[derive(Clone, Debug)]
pub struct Exposure {
    pub visitor: String,
    pub experience: String,
    pub variant: String,
    pub bundle_version: String,
    pub bundle_hash: String,
    pub at_ms: i64,
}

/// A deployed bundle.
#[derive(Clone, Debug)]
pub struct BundleRow {
    pub seq: i64,
    pub hash: String,
    pub artifact: Vec<u8>,
    pub deployed_at_ms: i64,
}

/// Store errors are internal errors (HTTP 500); the message never contains profile data.
#[derive(Debug)]
pub struct StoreError(pub String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> StoreError {
        StoreError(format!("store: {e}"))
    }
}

const STRIPES: usize = 64;

/// Pooled reader connections (and the decide path's concurrent SQLite reads).
pub const READERS: usize = 4;

pub struct Store {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
    /// Snapshots by [`Store::key`]: a 64-bit hash of the visitor id, so a lookup compares a word instead
    /// of following the key's `String` to its bytes (one dependent cache miss fewer: the `memcmp` was
    /// ~0.4 µs per decide under the load benchmark). Two ids may share a key; the entry holds its id and
    /// every read checks it ([`Store::entry`]), so a collision is a cache miss, never another
    /// visitor's data.
    cache: FastCache<u64, Snapshot>,
    key_hash: foldhash::fast::RandomState,
    /// `u64::MAX`; tests set 0 so that every id collides.
    key_mask: u64,
    /// Frequency-cap counts per visitor (the server's own serves), loaded from `exposure_counts` on a
    /// miss and incremented in memory at decision time; the log writer persists increments.
    counts: FastCache<String, Counts>,
    stripes: Vec<Mutex<()>>,
    stripe_hash: foldhash::fast::RandomState,
    /// Hashes (visitor, experience, variant, bundle hash) for the exposure log's de-duplication.
    exposure_hash: foldhash::quality::RandomState,
    /// Cache (hits, misses), per thread (see [`super::shard`]).
    lookups: super::shard::Shards<(u64, u64)>,
}

fn open(path: &Path) -> Result<Connection, StoreError> {
    let c = Connection::open(path)?;
    c.busy_timeout(Duration::from_secs(10))?;
    c.pragma_update(None, "journal_mode", "WAL")?;
    c.pragma_update(None, "synchronous", "FULL")?;
    // 4 MiB page cache per connection (SQLite's default is 2 MiB); with READERS + 2 connections this
    // bounds SQLite's memory whatever the number of stored profiles.
    c.pragma_update(None, "cache_size", -4096)?;
    Ok(c)
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS profiles (
  id TEXT PRIMARY KEY,
  snapshot BLOB NOT NULL,
  updated_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS exposures (
  visitor TEXT NOT NULL,
  experience TEXT NOT NULL,
  variant TEXT NOT NULL,
  bundle_version TEXT NOT NULL,
  bundle_hash TEXT NOT NULL,
  at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS exposures_by_visitor ON exposures(visitor);
CREATE TABLE IF NOT EXISTS bundles (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  hash TEXT NOT NULL,
  artifact BLOB NOT NULL,
  deployed_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS exposure_counts (
  visitor TEXT NOT NULL,
  experience TEXT NOT NULL,
  count INTEGER NOT NULL,
  PRIMARY KEY (visitor, experience)
) WITHOUT ROWID;
";

/// Cache sizing.
pub struct CacheConfig {
    pub max_bytes: u64,
    pub ttl: Duration,
}

impl Store {
    /// Open (creating) `dir/tailor.db`.
    pub fn open(dir: &Path, cache: CacheConfig) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError(format!("cannot create `{}`: {e}", dir.display())))?;
        let path = dir.join("tailor.db");
        let writer = open(&path)?;
        writer.execute_batch(SCHEMA)?;
        let cache = Cache::builder()
            .max_capacity(cache.max_bytes)
            .weigher(|_: &u64, v: &Snapshot| v.weight())
            .time_to_live(cache.ttl)
            .build_with_hasher(foldhash::fast::RandomState::default());
        Ok(Store {
            path,
            writer: Mutex::new(writer),
            readers: Mutex::new(Vec::new()),
            cache,
            key_hash: foldhash::fast::RandomState::default(),
            key_mask: u64::MAX,
            counts: Cache::builder()
                .max_capacity(200_000)
                .build_with_hasher(foldhash::fast::RandomState::default()),
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
            stripe_hash: foldhash::fast::RandomState::default(),
            exposure_hash: foldhash::quality::RandomState::default(),
            lookups: Default::default(),
        })
    }

    /// Lock the stripes of `ids` in index order (so concurrent callers cannot deadlock).
    fn lock_stripes<'a>(
        &self,
        ids: impl Iterator<Item = &'a str>,
    ) -> Vec<std::sync::MutexGuard<'_, ()>> {
        use std::hash::BuildHasher;
        let mut idx: Vec<usize> = ids
            .map(|id| usize::try_from(self.stripe_hash.hash_one(id) % STRIPES as u64).unwrap_or(0))
            .collect();
        idx.sort_unstable();
        idx.dedup();
        // A poisoned stripe only means another request panicked while holding it; the data it guards
        // is in SQLite, so carry on.
        idx.iter()
            .filter_map(|&i| self.stripes.get(i))
            .map(|m| match m.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            })
            .collect()
    }

    fn with_reader<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let conn = match self.readers.lock().map(|mut v| v.pop()) {
            Ok(Some(c)) => c,
            _ => open(&self.path)?,
        };
        let r = f(&conn);
        if let Ok(mut v) = self.readers.lock() {
            if v.len() < READERS {
                v.push(conn);
            }
        }
        r
    }

    fn with_writer<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut w = match self.writer.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        f(&mut w)
    }

    /// The cache key of `id` (see [`Store::cache`]).
    fn key(&self, id: &str) -> u64 {
        use std::hash::BuildHasher;
        self.key_hash.hash_one(id) & self.key_mask
    }

    /// Profile cache (hits, misses) since start.
    pub fn lookups(&self) -> (u64, u64) {
        self.lookups.fold((0, 0), |a, c| (a.0 + c.0, a.1 + c.1))
    }

    /// `id`'s cache entry, if the cache has one.
    fn entry(&self, id: &str) -> Option<Snapshot> {
        self.cache.get(&self.key(id)).filter(|s| s.is(id))
    }

    /// The cached snapshot of `id`, if the cache has it (no I/O: safe on the async hot path).
    pub fn cached(&self, id: &str) -> Option<Snapshot> {
        let s = self.entry(id)?;
        self.lookups.update(|c| c.0 += 1);
        Some(s)
    }

    /// The snapshot of `id` (cached); a cache fill reads the visitor's cap counts too when
    /// `with_counts` (the active bundle has frequency caps).
    pub fn profile(&self, id: &str, with_counts: bool) -> Result<Snapshot, StoreError> {
        if let Some(s) = self.entry(id) {
            self.lookups.update(|c| c.0 += 1);
            return Ok(s);
        }
        self.lookups.update(|c| c.1 += 1);
        let _g = self.lock_stripes(std::iter::once(id));
        if let Some(s) = self.entry(id) {
            return Ok(s);
        }
        // One connection, one blocking hop: the snapshot, what the exposure log holds and the cap
        // counts together (the counts were a second hop in the decide handler: measured with 1,000,000
        // visitors, nearly all misses, ~10 % of the miss path's throughput).
        let cached_counts = self.counts.get(id);
        let (raw, logged, counts) = self.with_reader(|c| {
            let counts = match cached_counts {
                None if with_counts => Some(read_counts(c, id)?),
                _ => None,
            };
            Ok((read_profile(c, id)?, self.read_logged(c, id), counts))
        })?;
        let s = Cached::new(id, raw, &logged);
        match (cached_counts, counts) {
            (Some(c), _) => {
                s.set_counts(c);
            }
            (None, Some(rows)) => {
                s.set_counts(self.keep_counts(id, rows));
            }
            (None, None) => {}
        }
        self.cache.insert(self.key(id), s.clone());
        Ok(s)
    }

    /// The frequency-cap counts of `id` if `snap` (its entry) or the counts cache has them (no I/O:
    /// safe on the async hot path); found in the counts cache, they are kept in `snap` for next time.
    pub fn counts_cached<'a>(&self, id: &str, snap: &'a Cached) -> Option<&'a Counts> {
        if let Some(c) = snap.counts() {
            return Some(c);
        }
        self.counts.get(id).map(|c| snap.set_counts(c))
    }

    /// Put `raw` in the cache as `id`'s snapshot, carrying over the serving state of the entry it
    /// replaces (or, with none cached, the exposures the log already has). Callers hold `id`'s stripe
    /// lock and have committed `raw`.
    fn replace(&self, id: &str, raw: Option<Arc<[u8]>>) {
        let next = match self.entry(id) {
            Some(prev) => Cached::succeed(&prev, raw),
            None => Cached::new(id, raw, &self.logged(id)),
        };
        self.cache.insert(self.key(id), next);
    }

    /// The key of one exposure for [`Cached::first_exposure`].
    pub fn exposure_key(
        &self,
        visitor: &str,
        experience: &str,
        variant: &str,
        bundle: &str,
    ) -> u64 {
        use std::hash::BuildHasher;
        self.exposure_hash
            .hash_one((visitor, experience, variant, bundle))
    }

    /// Keys of `id`'s latest exposure-log rows, so a visitor new to the cache (evicted, or after a
    /// restart) is not logged again for what the log already holds. Rows still queued for the writer
    /// are not in it yet: at worst one repeat, which the report ignores. On error: none (a repeat).
    fn logged(&self, id: &str) -> Vec<u64> {
        self.with_reader(|c| Ok(self.read_logged(c, id)))
            .unwrap_or_default()
    }

    /// [`Store::logged`] on a connection the caller holds.
    fn read_logged(&self, c: &Connection, id: &str) -> Vec<u64> {
        let read = || -> Result<Vec<u64>, StoreError> {
            let mut st = c.prepare_cached(
                "SELECT experience, variant, bundle_hash FROM exposures WHERE visitor = ?1 ORDER BY rowid DESC LIMIT ?2",
            )?;
            let rows = st.query_map(params![id, LOGGED_PER_VISITOR as i64], |r| {
                Ok(self.exposure_key(
                    id,
                    &r.get::<_, String>(0)?,
                    &r.get::<_, String>(1)?,
                    &r.get::<_, String>(2)?,
                ))
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        };
        read().unwrap_or_default()
    }

    /// The frequency-cap counts of `id` (loaded from SQLite on a miss).
    pub fn counts(&self, id: &str) -> Result<Counts, StoreError> {
        if let Some(c) = self.counts.get(id) {
            return Ok(c);
        }
        let _g = self.lock_stripes(std::iter::once(id));
        if let Some(c) = self.counts.get(id) {
            return Ok(c);
        }
        let rows = self.with_reader(|c| read_counts(c, id))?;
        Ok(self.keep_counts(id, rows))
    }

    /// Put counts read from SQLite in the counts cache (callers hold `id`'s stripe lock).
    fn keep_counts(&self, id: &str, rows: Vec<(tailor::wire::Text, u32)>) -> Counts {
        let c: Counts = Arc::new(Mutex::new(rows));
        self.counts.insert(id.to_string(), c.clone());
        c
    }

    /// Persist count increments ((visitor, experience) → n) in one transaction.
    pub fn add_counts(
        &self,
        conn: &mut Connection,
        increments: &std::collections::BTreeMap<(String, String), u32>,
    ) -> Result<(), StoreError> {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut st = tx.prepare_cached(
                "INSERT INTO exposure_counts (visitor, experience, count) VALUES (?1, ?2, ?3)
                 ON CONFLICT(visitor, experience) DO UPDATE SET count = count + excluded.count",
            )?;
            for ((v, e), n) in increments {
                st.execute(params![v, e, n])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Re-insert `snap` after it decoded its profile so the cache weighs the decoded form too, or, when
    /// it holds a profile decoded for another layout than `layout` (the bundle changed), replace it with
    /// an undecoded successor; skipped if a write replaced the entry meanwhile (same stripe lock as
    /// writes, so no stale resurrection).
    pub fn reweigh(&self, id: &str, snap: &Snapshot, layout: u64) {
        let _g = self.lock_stripes(std::iter::once(id));
        if self.entry(id).is_some_and(|cur| Arc::ptr_eq(&cur, snap)) {
            let next = if snap.decoded_for(layout) {
                snap.clone()
            } else {
                Cached::succeed(snap, snap.raw.clone())
            };
            self.cache.insert(self.key(id), next);
        }
    }

    /// The snapshot of `id`, read from SQLite (no cache): for tests of durability and for `GET`.
    pub fn profile_uncached(&self, id: &str) -> Result<Option<Arc<[u8]>>, StoreError> {
        self.with_reader(|c| read_profile(c, id))
    }

    /// Replace `id`'s snapshot; returns after the commit.
    pub fn put_profile(&self, id: &str, snapshot: Vec<u8>, now_ms: i64) -> Result<(), StoreError> {
        let _g = self.lock_stripes(std::iter::once(id));
        self.with_writer(|w| {
            w.execute(
                "INSERT INTO profiles (id, snapshot, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT(id) DO UPDATE SET snapshot = excluded.snapshot, updated_at = excluded.updated_at",
                params![id, snapshot, now_ms],
            )?;
            Ok(())
        })?;
        self.replace(id, Some(Arc::from(snapshot)));
        Ok(())
    }

    /// Erase `id`: its snapshot and its exposure-log rows. Returns whether a snapshot existed.
    pub fn delete_profile(&self, id: &str) -> Result<bool, StoreError> {
        let _g = self.lock_stripes(std::iter::once(id));
        let existed = self.with_writer(|w| {
            let tx = w.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let n = tx.execute("DELETE FROM profiles WHERE id = ?1", params![id])?;
            tx.execute("DELETE FROM exposures WHERE visitor = ?1", params![id])?;
            tx.execute(
                "DELETE FROM exposure_counts WHERE visitor = ?1",
                params![id],
            )?;
            tx.commit()?;
            Ok(n > 0)
        })?;
        self.cache.insert(self.key(id), Cached::new(id, None, &[]));
        self.counts.insert(id.to_string(), Counts::default());
        Ok(existed)
    }

    /// Read-modify-write several visitors' snapshots in ONE transaction: `update` gets the current
    /// snapshot (or None) and returns the new one or an error that aborts the whole batch. Returns after
    /// the commit. Stripe locks are taken in index order, so concurrent batches cannot deadlock.
    pub fn update_profiles<E>(
        &self,
        ids: &[String],
        now_ms: i64,
        mut update: impl FnMut(&str, Option<&[u8]>) -> Result<Vec<u8>, E>,
    ) -> Result<Result<(), E>, StoreError> {
        let _guards = self.lock_stripes(ids.iter().map(String::as_str));
        let mut written: Vec<(String, Vec<u8>)> = Vec::with_capacity(ids.len());
        let outcome = self.with_writer(|w| {
            let tx = w.transaction_with_behavior(TransactionBehavior::Immediate)?;
            for id in ids {
                let cur = read_profile(&tx, id)?;
                match update(id, cur.as_deref()) {
                    Ok(next) => {
                        tx.execute(
                            "INSERT INTO profiles (id, snapshot, updated_at) VALUES (?1, ?2, ?3)
                             ON CONFLICT(id) DO UPDATE SET snapshot = excluded.snapshot, updated_at = excluded.updated_at",
                            params![id, next, now_ms],
                        )?;
                        written.push((id.clone(), next));
                    }
                    // Dropping `tx` rolls the whole batch back.
                    Err(e) => return Ok(Err(e)),
                }
            }
            tx.commit()?;
            Ok(Ok(()))
        })?;
        if outcome.is_ok() {
            for (id, s) in written {
                self.replace(&id, Some(Arc::from(s)));
            }
        }
        Ok(outcome)
    }

    /// Bulk upsert for `tailor import`: `batch` rows per transaction.
    pub fn import(
        &self,
        rows: impl Iterator<Item = (String, Vec<u8>)>,
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        let mut n = 0u64;
        let mut rows = rows.peekable();
        while rows.peek().is_some() {
            self.with_writer(|w| {
                let tx = w.transaction_with_behavior(TransactionBehavior::Immediate)?;
                {
                    let mut st = tx.prepare_cached(
                        "INSERT INTO profiles (id, snapshot, updated_at) VALUES (?1, ?2, ?3)
                         ON CONFLICT(id) DO UPDATE SET snapshot = excluded.snapshot, updated_at = excluded.updated_at",
                    )?;
                    for (id, snap) in rows.by_ref().take(10_000) {
                        st.execute(params![id, snap, now_ms])?;
                        self.cache.invalidate(&self.key(&id));
                        n += 1;
                    }
                }
                tx.commit()?;
                Ok(())
            })?;
        }
        Ok(n)
    }

    /// Entries and weighted bytes in the cache.
    pub fn cache_usage(&self) -> (u64, u64) {
        self.cache.run_pending_tasks();
        (self.cache.entry_count(), self.cache.weighted_size())
    }

    /// Append exposure rows in one transaction.
    pub fn append_exposures(
        &self,
        conn: &mut Connection,
        rows: &[Exposure],
    ) -> Result<(), StoreError> {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut st = tx.prepare_cached(
                "INSERT INTO exposures (visitor, experience, variant, bundle_version, bundle_hash, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for e in rows {
                st.execute(params![
                    e.visitor,
                    e.experience,
                    e.variant,
                    e.bundle_version,
                    e.bundle_hash,
                    e.at_ms
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// A separate connection (for the exposure writer thread).
    pub fn connection(&self) -> Result<Connection, StoreError> {
        open(&self.path)
    }

    /// Record a deployment and make it active; returns its sequence number.
    pub fn deploy_bundle(
        &self,
        hash: &str,
        artifact: &[u8],
        now_ms: i64,
    ) -> Result<i64, StoreError> {
        self.with_writer(|w| {
            let tx = w.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute(
                "INSERT INTO bundles (hash, artifact, deployed_at) VALUES (?1, ?2, ?3)",
                params![hash, artifact, now_ms],
            )?;
            let seq = tx.last_insert_rowid();
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('active_bundle', ?1)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![seq],
            )?;
            tx.commit()?;
            Ok(seq)
        })
    }

    /// The active deployment.
    pub fn active_bundle(&self) -> Result<Option<BundleRow>, StoreError> {
        self.with_reader(|c| {
            let seq: Option<i64> = c
                .query_row(
                    "SELECT value FROM meta WHERE key = 'active_bundle'",
                    [],
                    |r| r.get(0),
                )
                .optional()?;
            match seq {
                Some(s) => bundle_row(
                    c,
                    "SELECT seq, hash, artifact, deployed_at FROM bundles WHERE seq = ?1",
                    s,
                ),
                None => Ok(None),
            }
        })
    }

    /// The deployment before `seq`.
    pub fn previous_bundle(&self, seq: i64) -> Result<Option<BundleRow>, StoreError> {
        self.with_reader(|c| {
            bundle_row(
                c,
                "SELECT seq, hash, artifact, deployed_at FROM bundles WHERE seq < ?1 ORDER BY seq DESC LIMIT 1",
                seq,
            )
        })
    }

    /// A bundle by content hash (latest deployment of it).
    pub fn bundle_by_hash(&self, hash: &str) -> Result<Option<BundleRow>, StoreError> {
        self.with_reader(|c| {
            Ok(c.query_row(
                "SELECT seq, hash, artifact, deployed_at FROM bundles WHERE hash = ?1 ORDER BY seq DESC LIMIT 1",
                params![hash],
                |r| Ok(BundleRow { seq: r.get(0)?, hash: r.get(1)?, artifact: r.get(2)?, deployed_at_ms: r.get(3)? }),
            )
            .optional()?)
        })
    }

    /// Make deployment `seq` active again (rollback).
    pub fn activate_bundle(&self, seq: i64) -> Result<(), StoreError> {
        self.with_writer(|w| {
            w.execute(
                "INSERT INTO meta (key, value) VALUES ('active_bundle', ?1)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![seq],
            )?;
            Ok(())
        })
    }

    /// Every exposure row, oldest first (for `tailor report`).
    pub fn exposures(&self) -> Result<Vec<Exposure>, StoreError> {
        self.with_reader(|c| {
            let mut st = c.prepare(
                "SELECT visitor, experience, variant, bundle_version, bundle_hash, at FROM exposures ORDER BY at, rowid",
            )?;
            let rows = st.query_map([], |r| {
                Ok(Exposure {
                    visitor: r.get(0)?,
                    experience: r.get(1)?,
                    variant: r.get(2)?,
                    bundle_version: r.get(3)?,
                    bundle_hash: r.get(4)?,
                    at_ms: r.get(5)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }
}

/// `id`'s frequency-cap counts as stored.
fn read_counts(c: &Connection, id: &str) -> Result<Vec<(tailor::wire::Text, u32)>, StoreError> {
    let mut st =
        c.prepare_cached("SELECT experience, count FROM exposure_counts WHERE visitor = ?1")?;
    let rows = st.query_map(params![id], |r| {
        Ok((
            tailor::wire::Text::from(r.get_ref(0)?.as_str()?),
            u32::try_from(r.get::<_, i64>(1)?).unwrap_or(u32::MAX),
        ))
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

fn read_profile(c: &Connection, id: &str) -> Result<Option<Arc<[u8]>>, StoreError> {
    let v: Option<Vec<u8>> = c
        .query_row(
            "SELECT snapshot FROM profiles WHERE id = ?1",
            params![id],
            |r| r.get(0),
        )
        .optional()?;
    Ok(v.map(Arc::from))
}

fn bundle_row(c: &Connection, sql: &str, seq: i64) -> Result<Option<BundleRow>, StoreError> {
    Ok(c.query_row(sql, params![seq], |r| {
        Ok(BundleRow {
            seq: r.get(0)?,
            hash: r.get(1)?,
            artifact: r.get(2)?,
            deployed_at_ms: r.get(3)?,
        })
    })
    .optional()?)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn store(name: &str) -> (Store, PathBuf) {
        let dir = std::env::temp_dir().join(format!("tailor-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let s = Store::open(
            &dir,
            CacheConfig {
                max_bytes: 1 << 20,
                ttl: Duration::from_secs(60),
            },
        )
        .unwrap();
        (s, dir)
    }

    #[test]
    fn a_replaced_snapshot_keeps_the_visitors_counts_and_logged_exposures() {
        let (s, dir) = store("replace");
        s.put_profile("v", b"{}".to_vec(), 1).unwrap();
        let first = s.profile("v", false).unwrap();
        assert!(first.counts().is_none());
        let c = first.set_counts(s.counts("v").unwrap());
        c.lock().unwrap().push(("hero".into(), 2));
        assert!(first.first_exposure(7));
        assert!(!first.first_exposure(7));

        // A full upsert and an event batch each replace the entry: the state moves with it.
        s.put_profile("v", br#"{"traits":{}}"#.to_vec(), 2).unwrap();
        let second = s.cached("v").unwrap();
        assert!(!Arc::ptr_eq(&first, &second));
        assert_eq!(second.raw.as_deref(), Some(&br#"{"traits":{}}"#[..]));
        assert!(Arc::ptr_eq(second.counts().unwrap(), c));
        assert!(!second.first_exposure(7));
        s.update_profiles(&["v".to_string()], 3, |_, _| {
            Ok::<_, ()>(br#"{"segments":[]}"#.to_vec())
        })
        .unwrap()
        .unwrap();
        let third = s.cached("v").unwrap();
        assert_eq!(third.raw.as_deref(), Some(&br#"{"segments":[]}"#[..]));
        assert_eq!(
            *s.counts_cached("v", &third).unwrap().lock().unwrap(),
            vec![(tailor::wire::Text::from("hero"), 2)]
        );
        assert!(!third.first_exposure(7));
        assert!(third.first_exposure(8));

        // A visitor new to the cache (evicted, restarted) starts from what the exposure log holds.
        let mut conn = s.connection().unwrap();
        let row = |experience: &str| Exposure {
            visitor: "w".into(),
            experience: experience.into(),
            variant: "a".into(),
            bundle_version: "1".into(),
            bundle_hash: "sha256:x".into(),
            at_ms: 1,
        };
        s.append_exposures(&mut conn, &[row("sale"), row("hero")])
            .unwrap();
        let mut inc = std::collections::BTreeMap::new();
        inc.insert(("w".to_string(), "hero".to_string()), 5);
        s.add_counts(&mut conn, &inc).unwrap();
        let fresh = s.profile("w", true).unwrap();
        // The fill read the counts too: the decision needs no second read.
        assert_eq!(
            *fresh.counts().unwrap().lock().unwrap(),
            vec![(tailor::wire::Text::from("hero"), 5)]
        );
        assert!(!fresh.first_exposure(s.exposure_key("w", "sale", "a", "sha256:x")));
        assert!(!fresh.first_exposure(s.exposure_key("w", "hero", "a", "sha256:x")));
        assert!(fresh.first_exposure(s.exposure_key("w", "hero", "b", "sha256:x")));
        s.cache.invalidate(&s.key("w"));
        s.put_profile("w", b"{}".to_vec(), 4).unwrap();
        let written = s.cached("w").unwrap();
        assert!(!written.first_exposure(s.exposure_key("w", "sale", "a", "sha256:x")));

        // Erasure starts over: no counts, nothing logged.
        assert!(s.delete_profile("v").unwrap());
        let erased = s.cached("v").unwrap();
        assert!(erased.raw.is_none() && erased.counts().is_none());
        assert!(s
            .counts_cached("v", &erased)
            .unwrap()
            .lock()
            .unwrap()
            .is_empty());
        assert!(erased.first_exposure(7));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn the_logged_list_is_bounded() {
        let c = Cached::new("v", None, &[]);
        for k in 0..LOGGED_PER_VISITOR as u64 {
            assert!(c.first_exposure(k));
        }
        assert!(!c.first_exposure(0));
        // Full: it starts again, so the oldest may be queued once more.
        assert!(c.first_exposure(u64::MAX));
        assert!(c.first_exposure(0));
        assert!(c.logged.keys().len() <= LOGGED_PER_VISITOR);
    }

    #[test]
    fn ids_that_share_a_cache_key_never_see_each_others_entry() {
        let (mut s, dir) = store("collide");
        s.key_mask = 0; // every id has cache key 0
        s.put_profile("alice", br#"{"traits":{"tier":"gold"}}"#.to_vec(), 1)
            .unwrap();
        s.put_profile("bob", br#"{"traits":{"tier":"bronze"}}"#.to_vec(), 1)
            .unwrap();
        // Bob's write took the slot: Alice's lookup misses instead of reading Bob's snapshot.
        assert!(s.cached("alice").is_none());
        let a = s.profile("alice", false).unwrap();
        assert_eq!(
            a.raw.as_deref(),
            Some(&br#"{"traits":{"tier":"gold"}}"#[..])
        );
        assert!(s.cached("bob").is_none());
        assert!(a.first_exposure(7));
        // A write of Bob does not inherit Alice's serving state from the shared slot.
        s.put_profile("bob", br#"{"segments":[]}"#.to_vec(), 2)
            .unwrap();
        let b = s.cached("bob").unwrap();
        assert_eq!(b.raw.as_deref(), Some(&br#"{"segments":[]}"#[..]));
        assert!(b.first_exposure(7));
        // Ids longer than the inline form are compared whole.
        let long_a = "x".repeat(200) + "a";
        let long_b = "x".repeat(200) + "b";
        s.put_profile(&long_a, b"{}".to_vec(), 3).unwrap();
        assert!(s.cached(&long_b).is_none());
        assert!(s.cached(&long_a).is_some());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_profile_decoded_for_another_layout_is_not_read_and_is_replaced() {
        let (s, dir) = store("layout");
        let engine = |schema: &str| {
            let files = vec![tailor::diagnostic::SourceFile {
                name: "b.toml".into(),
                text: format!("[bundle]\nid = \"b\"\nversion = \"1\"\n{schema}"),
            }];
            tailor::Engine::new(tailor::bundle::load_sources(&files).unwrap().0)
        };
        let one = engine("[schema.traits]\ntier = \"string\"\n");
        let two = engine("[schema.traits]\nlevel = \"number\"\n");
        assert_ne!(one.profile_layout_id(), two.profile_layout_id());
        s.put_profile("v", br#"{"traits":{"tier":"gold","level":3}}"#.to_vec(), 1)
            .unwrap();
        let e = s.profile("v", false).unwrap();
        let (p, fresh) = e.profile(&one).unwrap();
        assert!(fresh && matches!(p, Some(Decoded::Cached(_))));
        assert_eq!(p.unwrap().layout_id, one.profile_layout_id());
        s.reweigh("v", &e, one.profile_layout_id());
        assert!(Arc::ptr_eq(&s.cached("v").unwrap(), &e));
        let (p, fresh) = e.profile(&one).unwrap();
        assert!(!fresh && matches!(p, Some(Decoded::Cached(_))));
        // Another bundle's layout: decoded for this call, and the entry makes way for a successor.
        let (p, fresh) = e.profile(&two).unwrap();
        assert!(fresh && matches!(p, Some(Decoded::Once(_))));
        assert_eq!(p.unwrap().layout_id, two.profile_layout_id());
        s.reweigh("v", &e, two.profile_layout_id());
        let next = s.cached("v").unwrap();
        assert!(!Arc::ptr_eq(&next, &e));
        let (p, _) = next.profile(&two).unwrap();
        assert!(matches!(p, Some(Decoded::Cached(_))));
        let _ = std::fs::remove_dir_all(dir);
    }
}
