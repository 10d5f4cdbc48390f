//! A purpose-built JSON reader for profile snapshots.
//!
//! Why not serde: measured on a 2.7 KB, 30-purchase profile, the serde decoder took 7.3 µs even when it
//! kept no value at all (key parsing and validation, `deserialize_any` dispatch), against 1.9 µs for serde
//! to merely skip the document (`IgnoredAny`); the full serde decode took 11.5 µs, this reader 7.4 µs. This reader validates UTF-8 once for the whole input,
//! borrows keys and escape-free strings straight from it, and skips unread values without building them.
//! It is tested against the serde-based decoder (`ProfileLayout::decode_value`) by property tests.
//!
//! It accepts exactly RFC 8259 JSON (one value, optional surrounding whitespace); nesting deeper than
//! [`MAX_DEPTH`] is rejected so a hostile document cannot exhaust the stack.

use std::borrow::Cow;

/// Deepest nesting accepted.
pub const MAX_DEPTH: usize = 128;

/// Bytes that end the fast string scan: `"`, `\\` and control characters.
// Indexing in a const initializer is checked when the crate compiles; it cannot panic at run time.
#[allow(clippy::indexing_slicing)]
static STOP: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

/// Index of the first `"`, `\\` or control character in `b` (or `b.len()`), eight bytes at a time.
///
/// Per 8-byte word `x`: a byte equal to `c` is a zero byte of `x ^ c·0x01…01`, and "has a zero byte" /
/// "has a byte below n" are `(v - n·0x01…01) & !v & 0x80…80`. Borrows can flag bytes above a true hit but
/// never below it, so the lowest flagged byte is exact. The quote and the control characters are one
/// test: flipping bit 1 maps `"` (0x22) to 0x20 and keeps 0x00–0x1F below 0x20, while space and `!` go
/// to 0x22 and 0x23, so "below 0x21 after `^ 0x02`" is exactly "quote or control". Measured with
/// callgrind: ~2 instructions per byte against ~8 for a byte loop (string scanning was the largest share
/// of profile decoding), and the merged test takes a fifth off that.
#[inline]
pub(crate) fn find_stop(b: &[u8]) -> usize {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let mut i = 0;
    while let Some(c) = b.get(i..).and_then(|t| t.first_chunk::<8>()) {
        let x = u64::from_le_bytes(*c);
        let y = x ^ (LO * 0x02);
        let e = x ^ (LO * u64::from(b'\\'));
        // `y`, `e` and `x` share each byte's top bit, so one `& !x` stands for `& !y` and `& !e`.
        let hits = (y.wrapping_sub(LO * 0x21) | e.wrapping_sub(LO)) & !x & HI;
        if hits != 0 {
            return i + (hits.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    let tail = b.get(i..).unwrap_or(&[]);
    i + tail
        .iter()
        .position(|&c| STOP.get(usize::from(c)).copied().unwrap_or(true))
        .unwrap_or(tail.len())
}

/// Index of the first `c` in `b`, eight bytes at a time: a byte equal to `c` is a zero byte of
/// `x ^ c·0x01…01`, and `(v - 0x01…01) & !v & 0x80…80` flags zero bytes (borrows can flag bytes above
/// a true hit, never below it, so the lowest flag is exact). Measured with callgrind on a 67-byte URL and
/// its five `utm_*` lookups: ~1 instruction per byte against ~5 for a byte loop.
#[inline]
pub fn find_byte(b: &[u8], c: u8) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let pat = LO * u64::from(c);
    let mut i = 0;
    while let Some(w) = b.get(i..).and_then(|t| t.first_chunk::<8>()) {
        let x = u64::from_le_bytes(*w) ^ pat;
        let hits = x.wrapping_sub(LO) & !x & HI;
        if hits != 0 {
            return Some(i + (hits.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    b.get(i..)?.iter().position(|&x| x == c).map(|p| i + p)
}

/// `a == b` for short slices, inline: two overlapping words for 4–16 bytes, a word loop beyond.
/// Measured with callgrind: the libc `memcmp` that slice equality calls costs ~25 instructions of
/// set-up per call, and an iterator over 8-byte chunks ~45; keys and repeated event values are a few
/// bytes long, and this takes ~10.
#[inline]
pub fn eq_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    fn w8(s: &[u8], i: usize) -> u64 {
        s.get(i..)
            .and_then(|t| t.first_chunk::<8>())
            .map_or(0, |c| u64::from_le_bytes(*c))
    }
    match n {
        0..=3 => a.iter().zip(b).all(|(x, y)| x == y),
        4..=7 => {
            let f = |s: &[u8]| {
                let (h, t) = (s.first_chunk::<4>(), s.last_chunk::<4>());
                (
                    h.map(|c| u32::from_le_bytes(*c)),
                    t.map(|c| u32::from_le_bytes(*c)),
                )
            };
            f(a) == f(b)
        }
        _ => {
            let mut i = 0;
            while i + 8 < n {
                if w8(a, i) != w8(b, i) {
                    return false;
                }
                i += 8;
            }
            w8(a, n - 8) == w8(b, n - 8)
        }
    }
}

#[cfg(test)]
#[test]
fn eq_bytes_agrees_with_slice_equality() {
    let base: Vec<u8> = (0u8..40).map(|i| i.wrapping_mul(37)).collect();
    for n in 0..40 {
        let a = &base[..n];
        assert!(eq_bytes(a, a));
        for i in 0..n {
            let mut b = a.to_vec();
            b[i] ^= 1;
            assert!(!eq_bytes(a, &b), "{n} {i}");
        }
        assert!(!eq_bytes(a, &base[..(n + 1).min(40)]) || n == 40);
    }
}

/// A known object key as the bytes `"name":`, in three little-endian words with masks, for
/// [`Scanner::next_key_in`]. A name longer than 21 bytes gets a pattern that never matches (a NUL byte
/// where the opening quote is), so such keys are read the general way.
#[derive(Clone, Copy, Debug)]
pub(crate) struct KeyPat {
    w: [u64; 3],
    m: [u64; 3],
    len: usize,
}

impl KeyPat {
    /// The pattern for `name` (meant for `const` tables).
    // Every index is below `n <= 24` or `name.len()`, by the loop bounds.
    #[allow(clippy::indexing_slicing)]
    pub(crate) const fn new(name: &str) -> KeyPat {
        let b = name.as_bytes();
        let n = b.len() + 3;
        let (mut w, mut m) = ([0u64; 3], [0u64; 3]);
        if n > 24 {
            m[0] = 0xFF;
            return KeyPat { w, m, len: 0 };
        }
        let mut i = 0;
        while i < n {
            let c = if i == 0 || i == b.len() + 1 {
                b'"'
            } else if i == b.len() + 2 {
                b':'
            } else {
                b[i - 1]
            };
            w[i / 8] |= (c as u64) << (8 * (i % 8));
            m[i / 8] |= 0xFF << (8 * (i % 8));
            i += 1;
        }
        KeyPat { w, m, len: n }
    }
}

/// A JSON syntax error at a byte offset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanError {
    /// What was wrong.
    pub message: &'static str,
    /// Byte offset.
    pub at: usize,
}

impl std::fmt::Display for ScanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at byte {}", self.message, self.at)
    }
}

/// What kind of value comes next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `{`
    Object,
    /// `[`
    Array,
    /// `"`
    String,
    /// a number
    Number,
    /// `true` / `false`
    Bool,
    /// `null`
    Null,
}

/// A cursor over a UTF-8-validated JSON text.
pub struct Scanner<'a> {
    s: &'a str,
    b: &'a [u8],
    pos: usize,
    depth: usize,
}

type R<T> = Result<T, ScanError>;

impl<'a> Scanner<'a> {
    /// A scanner over `bytes`; fails when they are not UTF-8.
    pub fn new(bytes: &'a [u8]) -> R<Scanner<'a>> {
        // The SIMD check answers valid or not; std's finds where, for the error only.
        let s = simdutf8::basic::from_utf8(bytes).map_err(|_| ScanError {
            message: "invalid UTF-8",
            at: std::str::from_utf8(bytes)
                .err()
                .map_or(0, |e| e.valid_up_to()),
        })?;
        Ok(Scanner {
            s,
            b: bytes,
            pos: 0,
            depth: 0,
        })
    }

    /// The whole input (for readers that match raw bytes, such as the compact event-row reader).
    pub(crate) fn input(&self) -> &'a [u8] {
        self.b
    }

    /// The whole input as text (validated UTF-8).
    pub(crate) fn src(&self) -> &'a str {
        self.s
    }

    /// The byte offset of the cursor.
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// Move the cursor past bytes a caller has read and validated itself. The caller must leave it
    /// where a value of the current container ends (nesting depth is not changed).
    pub(crate) fn set_pos(&mut self, pos: usize) {
        self.pos = pos.min(self.b.len());
    }

    /// Skip whitespace.
    pub(crate) fn skip_ws(&mut self) {
        self.ws();
    }

    fn err<T>(&self, message: &'static str) -> R<T> {
        Err(ScanError {
            message,
            at: self.pos,
        })
    }

    #[inline]
    fn ws(&mut self) {
        while let Some(c) = self.b.get(self.pos) {
            if matches!(c, b' ' | b'\n' | b'\r' | b'\t') {
                self.pos += 1;
            } else {
                break;
            }
        }
    }

    /// After the top-level value: only whitespace may remain.
    pub fn end(&mut self) -> R<()> {
        self.ws();
        if self.pos == self.b.len() {
            Ok(())
        } else {
            self.err("trailing characters")
        }
    }

    /// The kind of the next value.
    pub fn peek(&mut self) -> R<Kind> {
        self.ws();
        Ok(match self.b.get(self.pos) {
            Some(b'{') => Kind::Object,
            Some(b'[') => Kind::Array,
            Some(b'"') => Kind::String,
            Some(b'-' | b'0'..=b'9') => Kind::Number,
            Some(b't' | b'f') => Kind::Bool,
            Some(b'n') => Kind::Null,
            Some(_) => return self.err("expected a value"),
            None => return self.err("unexpected end of input"),
        })
    }

    fn enter(&mut self) -> R<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return self.err("nesting too deep");
        }
        Ok(())
    }

    /// Start an object; then call [`Scanner::next_key`] until it returns `None`.
    pub fn begin_object(&mut self) -> R<()> {
        self.ws();
        if self.b.get(self.pos) != Some(&b'{') {
            return self.err("expected an object");
        }
        self.enter()?;
        self.pos += 1;
        Ok(())
    }

    /// The next key of the current object (consuming the `:`), or `None` at its end. `first` is true for
    /// the first call after [`Scanner::begin_object`].
    pub fn next_key(&mut self, first: bool) -> R<Option<Cow<'a, str>>> {
        if !self.key_ahead(first)? {
            return Ok(None);
        }
        self.key_text().map(Some)
    }

    /// Between keys of an object: `Ok(true)` with the cursor on the next key's opening quote (after a
    /// separating comma unless `first`), `Ok(false)` past the closing `}`.
    #[inline(always)]
    fn key_ahead(&mut self, first: bool) -> R<bool> {
        self.ws();
        match self.b.get(self.pos) {
            Some(b'}') => {
                self.pos += 1;
                self.depth -= 1;
                return Ok(false);
            }
            Some(b',') if !first => {
                self.pos += 1;
                self.ws();
            }
            Some(b'"') if first => {}
            _ => {
                return self.err(if first {
                    "expected a key or `}`"
                } else {
                    "expected `,` or `}`"
                })
            }
        }
        Ok(true)
    }

    /// A key read as a string, and the `:` after it.
    #[inline]
    fn key_text(&mut self) -> R<Cow<'a, str>> {
        let k = self.string()?;
        self.ws();
        if self.b.get(self.pos) != Some(&b':') {
            return self.err("expected `:`");
        }
        self.pos += 1;
        Ok(k)
    }

    /// Like [`Scanner::next_key`], but first compares the raw bytes with `keys`: `Some(Ok(i))` when
    /// the key is written plainly as `keys[i]` (`"name":`, no escape, no space before the colon),
    /// `Some(Err(key))` for any other key (read the general way), `None` at the end of the object.
    /// A key read either way is the same key, so callers answer alike. `from` (start it at 0) carries
    /// where the last key was found from one call to the next. Measured with callgrind on the
    /// example request: a key found this way costs ~30 instructions against ~150 for reading it as a
    /// string and comparing it with each field name. Always inlined: as a call, its nested answer went
    /// through memory (~1.6k more instructions end to end, ~1.2k of them in the request).
    #[inline(always)]
    pub(crate) fn next_key_in(
        &mut self,
        first: bool,
        keys: &[KeyPat],
        from: &mut usize,
    ) -> R<Option<Result<usize, Cow<'a, str>>>> {
        if !self.key_ahead(first)? {
            return Ok(None);
        }
        let rest = self.b.get(self.pos..).unwrap_or(&[]);
        let mut tail = [0u8; 24];
        let window = match rest.first_chunk::<24>() {
            Some(w) => w,
            None => {
                // Near the end of the input: zero padding never matches, since every pattern byte is
                // a quote, a colon or a byte of a field name.
                for (d, s) in tail.iter_mut().zip(rest) {
                    *d = *s;
                }
                &tail
            }
        };
        let (a, r) = window.split_at(8);
        let (b, c) = r.split_at(8);
        let word = |x: &[u8]| x.first_chunk::<8>().map_or(0, |v| u64::from_le_bytes(*v));
        let w = [word(a), word(b), word(c)];
        // Writers put keys in one order, so the search starts after the key found last (`from`) and
        // wraps around; most candidates differ in the first word (the quote and seven name bytes).
        let hit = |k: &KeyPat| {
            (w[0] ^ k.w[0]) & k.m[0] == 0
                && (w[1] ^ k.w[1]) & k.m[1] == 0
                && (w[2] ^ k.w[2]) & k.m[2] == 0
        };
        let start = (*from).min(keys.len());
        let (head, tail) = keys.split_at(start);
        let found = match tail.iter().position(hit) {
            Some(i) => Some(start + i),
            None => head.iter().position(hit),
        };
        if let Some(i) = found {
            self.pos += keys.get(i).map_or(0, |k| k.len);
            *from = i + 1;
            return Ok(Some(Ok(i)));
        }
        self.key_text().map(|k| Some(Err(k)))
    }

    /// Start an array; then call [`Scanner::next_element`] before each element.
    pub fn begin_array(&mut self) -> R<()> {
        self.ws();
        if self.b.get(self.pos) != Some(&b'[') {
            return self.err("expected an array");
        }
        self.enter()?;
        self.pos += 1;
        Ok(())
    }

    /// True when another element follows (consuming a separating comma); false at the array's end.
    pub fn next_element(&mut self, first: bool) -> R<bool> {
        self.ws();
        match self.b.get(self.pos) {
            Some(b']') => {
                self.pos += 1;
                self.depth -= 1;
                Ok(false)
            }
            Some(b',') if !first => {
                self.pos += 1;
                Ok(true)
            }
            Some(_) if first => Ok(true),
            _ => self.err("expected `,` or `]`"),
        }
    }

    /// A string value.
    #[inline]
    pub fn string(&mut self) -> R<Cow<'a, str>> {
        self.ws();
        if self.b.get(self.pos) != Some(&b'"') {
            return self.err("expected a string");
        }
        let start = self.pos + 1;
        // Fast path: no escapes. Eight bytes at a time (see `find_stop`); slicing at ASCII quote
        // positions keeps char boundaries valid.
        let end = start + find_stop(self.b.get(start..).unwrap_or(&[]));
        if self.b.get(end) == Some(&b'"') {
            self.pos = end + 1;
            return Ok(Cow::Borrowed(self.s.get(start..end).unwrap_or("")));
        }
        self.pos = end;
        self.escaped_string(start)
    }

    /// The rest of a string that has an escape (or an error) at `self.pos`; `start` is its first byte.
    /// Out of line, so the common path above stays small.
    #[cold]
    #[inline(never)]
    fn escaped_string(&mut self, start: usize) -> R<Cow<'a, str>> {
        match self.b.get(self.pos) {
            Some(b'\\') => {}
            Some(_) => return self.err("control character in string"),
            None => return self.err("unterminated string"),
        }
        let mut out = String::from(self.s.get(start..self.pos).unwrap_or(""));
        loop {
            let Some(&c) = self.b.get(self.pos) else {
                return self.err("unterminated string");
            };
            match c {
                b'"' => {
                    self.pos += 1;
                    return Ok(Cow::Owned(out));
                }
                b'\\' => {
                    let Some(&e) = self.b.get(self.pos + 1) else {
                        return self.err("unterminated string");
                    };
                    self.pos += 2;
                    match e {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let hi = self.hex4()?;
                            let ch = if (0xD800..0xDC00).contains(&hi) {
                                if self.b.get(self.pos) != Some(&b'\\')
                                    || self.b.get(self.pos + 1) != Some(&b'u')
                                {
                                    return self.err("unpaired surrogate");
                                }
                                self.pos += 2;
                                let lo = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&lo) {
                                    return self.err("unpaired surrogate");
                                }
                                char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))
                            } else {
                                char::from_u32(hi)
                            };
                            match ch {
                                Some(ch) => out.push(ch),
                                None => return self.err("invalid \\u escape"),
                            }
                        }
                        _ => return self.err("invalid escape"),
                    }
                }
                0..=0x1f => return self.err("control character in string"),
                _ => {
                    // Copy the run up to the next quote or backslash in one go.
                    let run_start = self.pos;
                    while self
                        .b
                        .get(self.pos)
                        .is_some_and(|c| !matches!(c, b'"' | b'\\' | 0..=0x1f))
                    {
                        self.pos += 1;
                    }
                    out.push_str(self.s.get(run_start..self.pos).unwrap_or(""));
                }
            }
        }
    }

    fn hex4(&mut self) -> R<u32> {
        let h = self
            .b
            .get(self.pos..self.pos + 4)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u32::from_str_radix(h, 16).ok());
        match h {
            Some(v) => {
                self.pos += 4;
                Ok(v)
            }
            None => self.err("invalid \\u escape"),
        }
    }

    /// The text of a number (validated against the JSON grammar).
    fn number_text(&mut self) -> R<&'a str> {
        self.ws();
        let start = self.pos;
        let digits = |sc: &mut Self| {
            let s = sc.pos;
            while sc.b.get(sc.pos).is_some_and(u8::is_ascii_digit) {
                sc.pos += 1;
            }
            sc.pos - s
        };
        if self.b.get(self.pos) == Some(&b'-') {
            self.pos += 1;
        }
        let int_start = self.pos;
        let n = digits(self);
        if n == 0 || (n > 1 && self.b.get(int_start) == Some(&b'0')) {
            return self.err("invalid number");
        }
        if self.b.get(self.pos) == Some(&b'.') {
            self.pos += 1;
            if digits(self) == 0 {
                return self.err("invalid number");
            }
        }
        if matches!(self.b.get(self.pos), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.b.get(self.pos), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if digits(self) == 0 {
                return self.err("invalid number");
            }
        }
        Ok(self.s.get(start..self.pos).unwrap_or("0"))
    }

    /// A number as f64, and whether it was written as an integer.
    ///
    /// One pass for the plain decimals stores write (`plain_number`); anything else is re-read by the
    /// general path.
    pub fn number(&mut self) -> R<(f64, Option<i64>)> {
        self.ws();
        let start = self.pos;
        if let Some((v, end)) = plain_number(self.b, start) {
            self.pos = end;
            return Ok(v);
        }
        self.pos = start;
        let t = self.number_text()?;
        if let Some(x) = fast_decimal(t) {
            return Ok(x);
        }
        let int = if t.bytes().all(|c| c.is_ascii_digit() || c == b'-') {
            t.parse::<i64>().ok()
        } else {
            None
        };
        match int {
            Some(i) => Ok((i as f64, Some(i))),
            None => t
                .parse::<f64>()
                .map(|f| (f, None))
                .or_else(|_| self.err("invalid number")),
        }
    }

    /// `true` or `false`.
    pub fn boolean(&mut self) -> R<bool> {
        self.ws();
        if self.b.get(self.pos..self.pos + 4) == Some(b"true") {
            self.pos += 4;
            Ok(true)
        } else if self.b.get(self.pos..self.pos + 5) == Some(b"false") {
            self.pos += 5;
            Ok(false)
        } else {
            self.err("expected `true` or `false`")
        }
    }

    /// `null`.
    pub fn null(&mut self) -> R<()> {
        self.ws();
        if self.b.get(self.pos..self.pos + 4) == Some(b"null") {
            self.pos += 4;
            Ok(())
        } else {
            self.err("expected `null`")
        }
    }

    /// Skip any value (validating it).
    pub fn skip(&mut self) -> R<()> {
        match self.peek()? {
            Kind::Object => {
                self.begin_object()?;
                let mut first = true;
                while self.next_key(first)?.is_some() {
                    first = false;
                    self.skip()?;
                }
                Ok(())
            }
            Kind::Array => {
                self.begin_array()?;
                let mut first = true;
                while self.next_element(first)? {
                    first = false;
                    self.skip()?;
                }
                Ok(())
            }
            Kind::String => self.skip_string(),
            Kind::Number => self.number_text().map(|_| ()),
            Kind::Bool => self.boolean().map(|_| ()),
            Kind::Null => self.null(),
        }
    }

    fn skip_string(&mut self) -> R<()> {
        // Escapes are validated by the full reader only when the string is needed; here it suffices that the
        // string ends (a backslash always skips the next byte).
        self.ws();
        self.pos += 1;
        loop {
            // Jump to the next quote, backslash or control character, a word at a time (see
            // `find_stop`; measured with callgrind: `memchr2` and a separate byte loop for control
            // characters cost ~190 instructions per skipped value of the benchmark profile's traits).
            self.pos += find_stop(self.b.get(self.pos..).unwrap_or(&[]));
            match self.b.get(self.pos) {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(());
                }
                Some(b'\\') => self.pos += 2,
                Some(_) => return self.err("control character in string"),
                None => return self.err("unterminated string"),
            }
        }
    }
}

/// A plain decimal (`-?digits(.digits)?`, at most 19 digits, no exponent) starting at `b[p]`, read in one
/// pass: the digits become an integer mantissa while the JSON grammar is checked (see [`fast_decimal`]
/// for why the value is exact). Returns the number (and the integer, when written as one) and the offset
/// after it; `None` for anything else (which the general reader handles, or rejects). Always inlined:
/// as a call (its answer returned through memory) it cost ~1.4k more instructions end to end for the 30
/// prices of the benchmark profile (callgrind).
#[inline(always)]
pub(crate) fn plain_number(b: &[u8], p: usize) -> Option<((f64, Option<i64>), usize)> {
    let mut i = p;
    let neg = b.get(i) == Some(&b'-');
    if neg {
        i += 1;
    }
    // The digits at `b[i..]` appended to `m`; the offset after them.
    let digits = |mut i: usize, m: &mut u64| {
        while let Some(d) = b.get(i).map(|c| c.wrapping_sub(b'0')).filter(|d| *d <= 9) {
            *m = m.wrapping_mul(10).wrapping_add(u64::from(d));
            i += 1;
        }
        i
    };
    let int_start = i;
    let mut m: u64 = 0;
    i = digits(i, &mut m);
    let int_digits = i - int_start;
    if int_digits == 0 || (int_digits > 1 && b.get(int_start) == Some(&b'0')) {
        return None;
    }
    let mut frac = None;
    if b.get(i) == Some(&b'.') {
        let f0 = i + 1;
        i = digits(f0, &mut m);
        frac = Some(i - f0);
    }
    // More than 19 digits may have wrapped `m`; such numbers go to the general reader.
    let nd = int_digits + frac.unwrap_or(0);
    if frac == Some(0) || matches!(b.get(i), Some(b'e' | b'E')) || nd > 19 || m >= (1u64 << 53) {
        return None;
    }
    let v = match frac {
        // m < 2^53 fits an i64 exactly; `-0` is the float -0.0, as serde_json reads it.
        None if neg && m == 0 => (-0.0, Some(0)),
        None => {
            let v = if neg { -(m as i64) } else { m as i64 };
            (v as f64, Some(v))
        }
        Some(k) => {
            let v = m as f64 / POW10.get(k).copied()?;
            (if neg { -v } else { v }, None)
        }
    };
    Some((v, i))
}

/// Powers of ten exactly representable as f64.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Exact fast path for plain decimals (`-?digits(.digits)?`, no exponent): with all digits as an integer
/// mantissa `m < 2^53` and `k <= 22` fraction digits, `m / 10^k` is one correctly rounded IEEE division of
/// two exactly representable numbers, so it equals the correctly rounded parse (Clinger, 1990). Prices and
/// amounts are almost always of this form; anything else goes to the general parser.
fn fast_decimal(t: &str) -> Option<(f64, Option<i64>)> {
    let (neg, digits) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t),
    };
    let mut m: u64 = 0;
    let mut frac: Option<usize> = None;
    for c in digits.bytes() {
        match c {
            b'0'..=b'9' => {
                m = m.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
                if let Some(k) = frac.as_mut() {
                    *k += 1;
                }
            }
            b'.' if frac.is_none() => frac = Some(0),
            _ => return None,
        }
    }
    if m >= (1u64 << 53) {
        return None;
    }
    let mf = m as f64;
    match frac {
        None => {
            let i = i64::try_from(m).ok()?;
            let i = if neg { -i } else { i };
            // `-0` is the float -0.0, as serde_json reads it.
            if neg && m == 0 {
                return Some((-0.0, Some(0)));
            }
            Some((i as f64, Some(i)))
        }
        Some(k) => {
            let v = mf / POW10.get(k).copied()?;
            Some((if neg { -v } else { v }, None))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skip_all(s: &str) -> R<()> {
        let mut sc = Scanner::new(s.as_bytes())?;
        sc.skip()?;
        sc.end()
    }

    #[test]
    fn accepts_and_rejects() {
        for ok in [
            "{}",
            "[]",
            r#"{"a":[1,-2.5e3,true,false,null,"x\"\u00e9\ud83d\ude00"]}"#,
            r#"["a long string with \\ and \" inside, past a word or two"]"#,
            " 0 ",
            "[[[]]]",
        ] {
            assert_eq!(skip_all(ok), Ok(()), "{ok}");
        }
        for bad in [
            "{",
            "[1,]",
            "{\"a\" 1}",
            "01",
            "1.",
            "\"\u{1}\"",
            "[\"abcdefghijklm\u{1f}n\"]",
            "[\"abc",
            "[\"ab\\\"]",
            "[1 2]",
            "{} x",
            "tru",
            "{,}",
            "[,1]",
            "{,\"a\":1}",
            "{\"a\":1,}",
        ] {
            assert!(skip_all(bad).is_err(), "{bad}");
        }
        let deep = "[".repeat(1000);
        assert!(skip_all(&deep).is_err());
    }

    #[test]
    fn fast_decimals_equal_the_general_parser() {
        for t in [
            "0",
            "-0",
            "12",
            "-7",
            "123.45",
            "0.1",
            "9007199254740991",
            "-12.5000",
            "0.30000000000000004",
            "1234567.891",
        ] {
            if let Some((fast, _)) = fast_decimal(t) {
                assert_eq!(
                    Some(fast.to_bits()),
                    t.parse::<f64>().ok().map(f64::to_bits),
                    "{t}"
                );
            }
        }
        assert!(fast_decimal("123.45").is_some() && fast_decimal("-7").is_some());
        assert_eq!(fast_decimal("0.30000000000000004"), None);
        assert_eq!(fast_decimal("9007199254740993"), None);
        assert_eq!(fast_decimal("1e5"), None);
    }

    #[test]
    fn find_byte_agrees_with_a_byte_loop() {
        let mut x: u32 = 11;
        for len in 0..40 {
            for _ in 0..200 {
                let bytes: Vec<u8> = (0..len)
                    .map(|_| {
                        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                        // The target, its neighbours, bytes with the top bit set, zero.
                        *b"&&%'\x00\x80\xa6\xffab=?"
                            .get((x >> 16) as usize % 12)
                            .unwrap_or(&b'a')
                    })
                    .collect();
                for c in [b'&', b'=', 0, 0x80, 0xff] {
                    let want = bytes.iter().position(|&b| b == c);
                    assert_eq!(find_byte(&bytes, c), want, "{bytes:?} {c}");
                }
            }
        }
    }

    #[test]
    fn find_stop_agrees_with_a_byte_loop() {
        let mut x: u32 = 7;
        for len in 0..40 {
            for _ in 0..200 {
                let bytes: Vec<u8> = (0..len)
                    .map(|_| {
                        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                        // Mostly printable, sometimes a stop byte or a high byte.
                        match (x >> 16) % 16 {
                            0 => b'"',
                            1 => b'\\',
                            2 => (x >> 8) as u8 % 0x20,
                            3 => 0x80 | (x >> 8) as u8,
                            // Neighbours of the stop bytes, which the word test must not flag.
                            4 => *b" !#[]^\x7f\xa2\xdc"
                                .get((x >> 8) as usize % 9)
                                .unwrap_or(&b' '),
                            _ => b'a' + (x >> 8) as u8 % 26,
                        }
                    })
                    .collect();
                let want = bytes
                    .iter()
                    .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
                    .unwrap_or(bytes.len());
                assert_eq!(find_stop(&bytes), want, "{bytes:?}");
            }
        }
    }

    #[test]
    fn strings_decode_escapes() {
        let mut sc =
            Scanner::new(br#""a\n\u00e9\ud83d\ude00b""#).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(sc.string().ok().as_deref(), Some("a\né😀b"));
    }

    /// `next_key_in` finds a known key by its raw bytes only when it is written plainly, and reads every
    /// other key (escaped, spaced, unknown, too long for a pattern, at the very end) as `next_key` does.
    #[test]
    fn known_keys_by_bytes_and_every_other_key_the_general_way() {
        const LONG: &str = "a_field_name_of_22_byt";
        let keys = [KeyPat::new("url"), KeyPat::new("urls"), KeyPat::new(LONG)];
        let read = |text: &str| -> Vec<Result<usize, String>> {
            let mut sc = Scanner::new(text.as_bytes()).unwrap_or_else(|e| unreachable!("{e}"));
            sc.begin_object().unwrap_or_else(|e| unreachable!("{e}"));
            let mut out = Vec::new();
            let (mut first, mut from) = (true, 0);
            while let Some(k) = sc
                .next_key_in(first, &keys, &mut from)
                .unwrap_or_else(|e| unreachable!("{e}"))
            {
                first = false;
                out.push(k.map_err(|k| k.into_owned()));
                sc.skip().unwrap_or_else(|e| unreachable!("{e}"));
            }
            out
        };
        assert_eq!(read(r#"{"urls":1,"url":2}"#), vec![Ok(1), Ok(0)]);
        assert_eq!(
            read(r#"{"url":1,"urls":2,"url":3}"#),
            vec![Ok(0), Ok(1), Ok(0)]
        );
        assert_eq!(
            read(r#"{"u\u0072l":1, "url" :2,"uri":3}"#),
            vec![Err("url".into()), Err("url".into()), Err("uri".into())]
        );
        assert_eq!(read(&format!(r#"{{"{LONG}":1}}"#)), vec![Err(LONG.into())]);
        // Fewer than 24 bytes left: the padded window still matches exactly.
        assert_eq!(read(r#"{"url":1}"#), vec![Ok(0)]);
        assert_eq!(read(r#"{"ur":1}"#), vec![Err("ur".into())]);
        let mut sc = Scanner::new(br#"{"url"1}"#).unwrap_or_else(|e| unreachable!("{e}"));
        sc.begin_object().unwrap_or_else(|e| unreachable!("{e}"));
        assert!(sc.next_key_in(true, &keys, &mut 0).is_err());
    }
}
