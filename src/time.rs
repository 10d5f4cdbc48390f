//! Time: parsing timestamps, and calendar fields in a visitor's time zone.
//!
//! The core never reads a clock: `now` (Unix milliseconds) is an argument. Time zones come from jiff's
//! bundled tz database so this works the same on wasm32, in Workers and natively.

use jiff::{civil, tz::TimeZone, Timestamp};

/// Parse RFC 3339 (`2026-12-01T09:00:00+09:00`, `…Z`) or a plain date (`2026-12-01`, midnight UTC) into Unix
/// milliseconds.
pub fn parse_timestamp(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(ts) = s.parse::<Timestamp>() {
        return Some(ts.as_millisecond());
    }
    let date: civil::Date = s.parse().ok()?;
    date.to_zoned(TimeZone::UTC)
        .ok()
        .map(|z| z.timestamp().as_millisecond())
}

/// Parse a local date-time (`2026-12-01T00:00:00` or `2026-12-01`) in the named IANA time zone, or an RFC 3339
/// timestamp with its own offset. Errors are messages for diagnostics.
pub fn parse_local(s: &str, zone: Option<&str>) -> Result<i64, String> {
    if let Ok(ts) = s.trim().parse::<Timestamp>() {
        return Ok(ts.as_millisecond());
    }
    let tz = match zone {
        Some(name) => TimeZone::get(name).map_err(|_| format!("unknown time zone `{name}`"))?,
        None => TimeZone::UTC,
    };
    let dt: civil::DateTime = match s.trim().parse::<civil::DateTime>() {
        Ok(dt) => dt,
        Err(_) => s
            .trim()
            .parse::<civil::Date>()
            .map_err(|_| format!("`{s}` is not a date-time"))?
            .to_datetime(civil::Time::midnight()),
    };
    dt.to_zoned(tz)
        .map(|z| z.timestamp().as_millisecond())
        .map_err(|e| format!("`{s}`: {e}"))
}

/// Is `name` a time zone the bundled database knows?
pub fn is_time_zone(name: &str) -> bool {
    TimeZone::get(name).is_ok()
}

/// Calendar fields of an instant in a time zone.
#[derive(Clone, Debug, PartialEq)]
pub struct Calendar {
    /// 0..=23
    pub hour: i8,
    /// 0..=59
    pub minute: i8,
    /// `mon` … `sun`
    pub weekday: &'static str,
    /// The year (−9999..=9999)
    pub year: i16,
    /// 1..=12
    pub month: i8,
    /// 1..=31
    pub day: i8,
}

impl Calendar {
    /// `YYYY-MM-DD` (a leading `-` before year 0), written without the formatting machinery: it is
    /// computed per decision for bundles that read `time.date`.
    pub fn date(&self) -> String {
        let mut s = String::with_capacity(11);
        let y = self.year.unsigned_abs();
        if self.year < 0 {
            s.push('-');
        }
        for d in [y / 1000 % 10, y / 100 % 10, y / 10 % 10, y % 10] {
            s.push(char::from(b'0' + d as u8));
        }
        for n in [self.month, self.day] {
            let n = n.unsigned_abs();
            s.push('-');
            s.push(char::from(b'0' + n / 10 % 10));
            s.push(char::from(b'0' + n % 10));
        }
        s
    }
}

/// Calendar fields of `now_ms` in `zone` (UTC when absent or unknown).
///
/// The zone is looked up once per thread and name: jiff's own cache is one global `RwLock` and an
/// `Arc` clone per lookup, four atomic updates of cache lines that every decision on every core
/// writes. A per-thread memo of the last name (visitors of one server are mostly in a few zones) reads
/// nothing another thread writes; a different name looks it up again. The memo also keeps the last
/// answer and the second it was for: zone offsets and their transitions are whole seconds and a
/// [`Calendar`] has nothing finer than minutes, so every instant of that second has the same fields,
/// and the zone's offset search (~500 instructions, callgrind) runs once per thread and second instead
/// of once per decision. The answer is the same either way: the memo only skips work.
pub fn calendar(now_ms: i64, zone: Option<&str>) -> Calendar {
    let ts = Timestamp::from_millisecond(now_ms).unwrap_or(Timestamp::UNIX_EPOCH);
    let Some(name) = zone else {
        return fields(TimeZone::UTC.to_datetime(ts));
    };
    let second = ts.as_millisecond().div_euclid(1000);
    let memo = LAST_ZONE.try_with(|m| {
        let mut m = m.try_borrow_mut().ok()?;
        if !matches!(&*m, Some(z) if *z.name == *name) {
            *m = Some(LastZone {
                name: name.into(),
                zone: zone_named(name),
                last: None,
            });
        }
        let z = m.as_mut()?;
        if let Some((at, c)) = &z.last {
            if *at == second {
                return Some(c.clone());
            }
        }
        let c = fields(z.zone.to_datetime(ts));
        z.last = Some((second, c.clone()));
        Some(c)
    });
    match memo {
        Ok(Some(c)) => c,
        _ => fields(zone_named(name).to_datetime(ts)),
    }
}

/// The IANA zone `name`, UTC when unknown.
fn zone_named(name: &str) -> TimeZone {
    TimeZone::get(name).unwrap_or(TimeZone::UTC)
}

/// [`calendar`]'s per-thread memo.
struct LastZone {
    name: Box<str>,
    /// UTC if the name is unknown.
    zone: TimeZone,
    /// The last answer in this zone and the Unix second it was for.
    last: Option<(i64, Calendar)>,
}

std::thread_local! {
    static LAST_ZONE: std::cell::RefCell<Option<LastZone>> = const { std::cell::RefCell::new(None) };
}

fn fields(dt: civil::DateTime) -> Calendar {
    let weekday = match dt.weekday() {
        civil::Weekday::Monday => "mon",
        civil::Weekday::Tuesday => "tue",
        civil::Weekday::Wednesday => "wed",
        civil::Weekday::Thursday => "thu",
        civil::Weekday::Friday => "fri",
        civil::Weekday::Saturday => "sat",
        civil::Weekday::Sunday => "sun",
    };
    Calendar {
        hour: dt.hour(),
        minute: dt.minute(),
        weekday,
        year: dt.year(),
        month: dt.month(),
        day: dt.day(),
    }
}

/// RFC 3339 text of Unix milliseconds (UTC).
pub fn format_timestamp(ms: i64) -> String {
    Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| ms.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_forms() {
        assert_eq!(parse_timestamp("1970-01-01T00:00:01Z"), Some(1000));
        assert_eq!(parse_timestamp("1970-01-02"), Some(86_400_000));
        assert_eq!(parse_timestamp("nope"), None);
        assert_eq!(
            parse_local("1970-01-01T09:00:00", Some("Asia/Seoul")),
            Ok(0)
        );
    }

    #[test]
    fn calendar_in_zone() {
        // 2026-11-24T10:00:00Z is 19:00 on a Tuesday in Seoul.
        let ms = parse_timestamp("2026-11-24T10:00:00Z").unwrap_or(0);
        let c = calendar(ms, Some("Asia/Seoul"));
        assert_eq!(
            (c.hour, c.weekday, c.date().as_str()),
            (19, "tue", "2026-11-24")
        );
        assert_eq!(calendar(ms, Some("Not/AZone")).hour, 10);
    }

    /// The per-thread memo answers as a fresh lookup would, whatever the order of zone names.
    #[test]
    fn calendar_memo_never_answers_for_another_zone() {
        let ms = parse_timestamp("2026-11-24T10:00:00Z").unwrap_or(0);
        let zones = [
            Some("Asia/Seoul"),
            Some("Europe/London"),
            None,
            Some("Not/AZone"),
            Some("America/New_York"),
            Some("Asia/Seoul"),
            Some("asia/seoul"),
        ];
        for _ in 0..3 {
            for z in zones {
                let fresh = fields(
                    z.and_then(|n| TimeZone::get(n).ok())
                        .unwrap_or(TimeZone::UTC)
                        .to_datetime(
                            Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH),
                        ),
                );
                let c = calendar(ms, z);
                assert_eq!(
                    (c.hour, c.weekday, c.day),
                    (fresh.hour, fresh.weekday, fresh.day),
                    "{z:?}"
                );
            }
        }
        assert_eq!(calendar(ms, Some("America/New_York")).hour, 5);
    }

    /// The memo's last answer is reused only within its second: instants around a DST change, a minute
    /// boundary of a zone whose offset had seconds (Monrovia, −00:44:30 until 1972) and before 1970, in
    /// an order that revisits seconds, all answer as a fresh lookup.
    #[test]
    fn calendar_memo_answers_per_second() {
        let fresh = |ms: i64, z: &str| {
            fields(
                zone_named(z)
                    .to_datetime(Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH)),
            )
        };
        let cases = [
            ("America/New_York", "2026-03-08T06:59:58Z"),
            ("Europe/London", "2026-10-25T00:59:58Z"),
            ("Africa/Monrovia", "1960-06-01T12:00:28Z"),
            ("Asia/Seoul", "1969-12-31T23:59:58Z"),
        ];
        for (zone, start) in cases {
            let t0 = parse_timestamp(start).unwrap_or(0);
            let mut instants: Vec<i64> = (0..24).map(|i| t0 + i * 250).collect();
            instants.extend((0..24).rev().map(|i| t0 + i * 250 + 1));
            instants.extend([t0 + 999, t0 + 1000, t0 + 999, t0 - 1, t0]);
            for ms in instants {
                let c = calendar(ms, Some(zone));
                assert_eq!(c, fresh(ms, zone), "{zone} at {ms}");
            }
        }
    }
}
