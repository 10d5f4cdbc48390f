//! A fast path for the User-Agent shapes that make up most real traffic.
//!
//! Measured on the npm `user-agents` traffic mix (10,000 UAs by market share): six shapes — Chrome on macOS,
//! Windows and Linux (the reduced UA Chrome sends since 2023), Edge on Windows, Safari on iPhone and macOS,
//! Chrome on iPhone, Chrome on Android's frozen `Android 10; K` — cover ~75 % of requests. For a UA that
//! matches one of them *exactly* (every byte accounted for), this module returns what the uap-core rules
//! return, without touching the rules: no rule loading, no regex. Anything else — another token, a device
//! model, an unusual version shape — returns `None` and goes to the rules.
//!
//! Correctness is not argued, it is tested: the suite compares this path with the full rule engine on
//! every uap-core test UA it accepts and on property-generated UAs of each shape with random versions
//! (tests/suite/device.rs). When the rules change, those tests say which shape to narrow.

use super::{Hardware, Os, UserAgent};

/// A cursor over the UA bytes.
struct Cur<'a> {
    s: &'a str,
}

impl<'a> Cur<'a> {
    fn lit(&mut self, l: &str) -> Option<()> {
        self.s = self.s.strip_prefix(l)?;
        Some(())
    }

    /// `min..=max` (at most 4) runs of ASCII digits separated by `sep`, each at most 12 long.
    fn version(&mut self, sep: u8, min: usize, max: usize) -> Option<Version<'a>> {
        let b = self.s.as_bytes();
        let mut v = Version {
            parts: [""; 4],
            len: 0,
        };
        let mut i = 0;
        loop {
            let start = i;
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            if i == start || i - start > 12 {
                return None;
            }
            *v.parts.get_mut(v.len)? = self.s.get(start..i)?;
            v.len += 1;
            if v.len < max.min(4)
                && b.get(i) == Some(&sep)
                && b.get(i + 1).is_some_and(u8::is_ascii_digit)
            {
                i += 1;
                continue;
            }
            break;
        }
        if v.len < min {
            return None;
        }
        self.s = self.s.get(i..)?;
        Some(v)
    }

    /// A token of ASCII letters and digits (e.g. the `15E148` of `Mobile/15E148`).
    fn token(&mut self) -> Option<()> {
        let n = self.s.bytes().take_while(u8::is_ascii_alphanumeric).count();
        if n == 0 || n > 16 {
            return None;
        }
        self.s = self.s.get(n..)?;
        Some(())
    }

    fn end(&self) -> Option<()> {
        self.s.is_empty().then_some(())
    }
}

/// Up to four version parts, without allocating.
struct Version<'a> {
    parts: [&'a str; 4],
    len: usize,
}

impl<'a> std::ops::Deref for Version<'a> {
    type Target = [&'a str];
    fn deref(&self) -> &[&'a str] {
        self.parts.get(..self.len).unwrap_or_default()
    }
}

enum Platform<'a> {
    Mac(Version<'a>),
    Windows10,
    Linux,
    IPhone(Version<'a>),
    AndroidK(&'a str),
}

fn s(x: &str) -> Option<String> {
    Some(x.to_string())
}

fn browser(family: &str, v: &[&str]) -> UserAgent {
    UserAgent {
        family: family.to_string(),
        major: v.first().and_then(|x| s(x)),
        minor: v.get(1).and_then(|x| s(x)),
        patch: v.get(2).and_then(|x| s(x)),
    }
}

fn platform<'a>(c: &mut Cur<'a>) -> Option<Platform<'a>> {
    if c.lit("Macintosh; Intel Mac OS X ").is_some() {
        let v = c.version(b'_', 2, 3)?;
        return Some(Platform::Mac(v));
    }
    if c.lit("Windows NT 10.0; Win64; x64").is_some() {
        return Some(Platform::Windows10);
    }
    if c.lit("X11; Linux x86_64").is_some() {
        return Some(Platform::Linux);
    }
    if c.lit("iPhone; CPU iPhone OS ").is_some() {
        let v = c.version(b'_', 2, 3)?;
        c.lit(" like Mac OS X")?;
        return Some(Platform::IPhone(v));
    }
    if c.lit("Linux; Android ").is_some() {
        let v = c.version(b'.', 1, 1)?;
        c.lit("; K")?;
        return Some(Platform::AndroidK(v.first()?));
    }
    None
}

/// The uap-core answer for `ua` when it has one of the fast shapes, else `None`.
pub(crate) fn parse(ua: &str) -> Option<(UserAgent, Os, Hardware)> {
    let mut c = Cur { s: ua };
    c.lit("Mozilla/5.0 (")?;
    let p = platform(&mut c)?;
    c.lit(") AppleWebKit/")?;
    c.version(b'.', 1, 3)?;
    c.lit(" (KHTML, like Gecko) ")?;
    let apple = |model: &str| Hardware {
        family: model.to_string(),
        brand: s("Apple"),
        model: s(model),
    };
    let other = Hardware {
        family: "Other".into(),
        brand: None,
        model: None,
    };
    let (browser, os, hw) = match p {
        Platform::Mac(v) => {
            let b = if c.s.starts_with("Chrome/") {
                chrome(&mut c, true)?
            } else {
                c.lit("Version/")?;
                let safari = c.version(b'.', 2, 3)?;
                c.lit(" Safari/")?;
                c.version(b'.', 1, 3)?;
                browser("Safari", &safari)
            };
            (b, os("Mac OS X", &v), apple("Mac"))
        }
        Platform::Windows10 => (chrome(&mut c, true)?, os("Windows", &["10"]), other),
        Platform::Linux => (chrome(&mut c, false)?, os("Linux", &[]), other),
        Platform::IPhone(v) => {
            let b = if c.lit("CriOS/").is_some() {
                browser("Chrome Mobile iOS", &c.version(b'.', 4, 4)?)
            } else {
                c.lit("Version/")?;
                browser("Mobile Safari", &c.version(b'.', 2, 3)?)
            };
            c.lit(" Mobile/")?;
            c.token()?;
            c.lit(" Safari/604.1")?;
            (b, os("iOS", &v), apple("iPhone"))
        }
        Platform::AndroidK(major) => {
            c.lit("Chrome/")?;
            let chrome = c.version(b'.', 4, 4)?;
            c.lit(" Mobile Safari/537.36")?;
            let hw = Hardware {
                family: "K".into(),
                brand: s("Generic_Android"),
                model: s("K"),
            };
            (
                browser("Chrome Mobile", &chrome),
                os("Android", &[major]),
                hw,
            )
        }
    };
    c.end()?;
    Some((browser, os, hw))
}

/// `Chrome/<v> Safari/537.36`, and with `edge`, an optional ` Edg/<v>` that makes it Edge.
fn chrome(c: &mut Cur<'_>, edge: bool) -> Option<UserAgent> {
    c.lit("Chrome/")?;
    let chrome = c.version(b'.', 4, 4)?;
    c.lit(" Safari/537.36")?;
    Some(if edge && c.lit(" Edg/").is_some() {
        browser("Edge", &c.version(b'.', 4, 4)?)
    } else {
        browser("Chrome", &chrome)
    })
}

fn os(family: &str, v: &[&str]) -> Os {
    Os {
        family: family.to_string(),
        major: v.first().and_then(|x| s(x)),
        minor: v.get(1).and_then(|x| s(x)),
        patch: v.get(2).and_then(|x| s(x)),
        patch_minor: None,
    }
}
