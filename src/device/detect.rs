//! From request headers to the `device.*` fields: uap-core parsing of the User-Agent, User-Agent Client
//! Hints on top (they win where both speak: Chrome freezes its UA to `Android 10; K` and
//! `Windows NT 10.0`), and a device-type classification.
//!
//! `device.type` is not part of uap-core; tailor derives it, in this order (documented in rules/README.md):
//! `bot` (uap device family `Spider`, or a browser family naming a bot, crawler or spider); `tv`; `console`;
//! `wearable`; `tablet`; `mobile` (Client Hint `Sec-CH-UA-Mobile: ?1`, a mobile OS, or a `Mobile` token);
//! `desktop` otherwise.

use super::{Hardware, Os, UaParser, UserAgent};
use crate::wire::{Device, Text};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Everything detected about a request's device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Detected {
    /// `mobile`, `tablet`, `desktop`, `tv`, `console`, `wearable` or `bot`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The browser.
    pub browser: UserAgent,
    /// The operating system.
    pub os: Os,
    /// The hardware.
    pub device: Hardware,
    /// A known crawler or bot.
    pub is_bot: bool,
    /// The Android app whose web view made the request: the package name in `X-Requested-With` (absent
    /// for `XMLHttpRequest`, the AJAX marker, and for values that are not a package name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
}

impl Detected {
    /// The wire `device` object rules read.
    pub fn to_wire(&self) -> Device {
        let version = |parts: &[&Option<String>]| {
            let mut out = Text::default();
            for p in parts.iter().map_while(|p| p.as_deref()) {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(p);
            }
            (!out.is_empty()).then_some(out)
        };
        let known = |s: &str| (s != "Other").then(|| Text::from(s));
        let text = |s: &Option<String>| s.as_deref().map(Text::from);
        Device {
            kind: Some(Text::from(self.kind.as_str())),
            os: known(&self.os.family),
            os_version: version(&[&self.os.major, &self.os.minor, &self.os.patch]),
            browser: known(&self.browser.family),
            browser_version: version(&[
                &self.browser.major,
                &self.browser.minor,
                &self.browser.patch,
            ]),
            brand: text(&self.device.brand),
            model: text(&self.device.model),
            is_bot: Some(self.is_bot),
            app: text(&self.app),
        }
    }
}

fn header<'a>(headers: &'a BTreeMap<Text, Text>, name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// A structured-header string item, parsed leniently: real traffic sends both `"Android"` and `Android`.
fn sh_string(v: &str) -> String {
    let v = v.trim();
    v.strip_prefix('"')
        .and_then(|x| x.strip_suffix('"'))
        .unwrap_or(v)
        .replace("\\\"", "\"")
        .trim()
        .to_string()
}

/// `Sec-CH-UA(-Full-Version-List)`: `"Brand";v="1.2", Brand2;v=3` → [(brand, version)].
fn brand_list(v: &str) -> Vec<(String, String)> {
    v.split(',')
        .filter_map(|item| {
            let mut parts = item.split(';');
            let brand = sh_string(parts.next()?);
            let version = parts
                .find_map(|p| p.trim().strip_prefix("v=").map(sh_string))
                .unwrap_or_default();
            (!brand.is_empty()).then_some((brand, version))
        })
        .collect()
}

/// uap-core family names for the brands Client Hints report.
fn browser_family(brand: &str) -> Option<&'static str> {
    Some(match brand {
        "Google Chrome" => "Chrome",
        "Microsoft Edge" => "Edge",
        "Opera" => "Opera",
        "Brave" => "Brave",
        "Samsung Internet" => "Samsung Internet",
        "Yandex" | "YaBrowser" => "Yandex Browser",
        "Vivaldi" => "Vivaldi",
        "Whale" | "Naver Whale" => "Whale",
        "Android WebView" => "Chrome Mobile WebView",
        _ => return None,
    })
}

fn os_family(platform: &str) -> Option<&'static str> {
    Some(match platform {
        "Android" => "Android",
        "Windows" => "Windows",
        "macOS" => "Mac OS X",
        "iOS" => "iOS",
        "Chrome OS" | "ChromeOS" => "Chrome OS",
        "Linux" => "Linux",
        "Fuchsia" => "Fuchsia",
        _ => return None,
    })
}

fn split_version(v: &str) -> [Option<String>; 4] {
    let mut out: [Option<String>; 4] = Default::default();
    for (slot, p) in out.iter_mut().zip(v.split('.')) {
        if !p.is_empty() {
            *slot = Some(p.to_string());
        }
    }
    out
}

fn contains_any(hay: &str, needles: &[&str]) -> bool {
    needles.iter().any(|n| hay.contains(n))
}

/// The key under which adapters cache [`detect`]'s answer: the User-Agent plus every other header
/// [`detect`] reads — each Client Hint (`Sec-CH-*`) and `X-Requested-With` — names lowercased.
/// `None` without a User-Agent.
///
/// Invariant: every header `detect` reads is in the key, or two visitors with the same User-Agent
/// would share one answer (e.g. two Android apps' web views would get the first one's `device.app`).
pub fn cache_key(headers: &BTreeMap<Text, Text>) -> Option<(&str, String)> {
    let mut key = String::new();
    let ua = cache_key_into(headers, &mut key)?;
    Some((ua, key))
}

/// [`cache_key`] appended to `key` (an adapter's reused buffer: no allocation per request once it has
/// grown); returns the User-Agent.
pub fn cache_key_into<'h>(headers: &'h BTreeMap<Text, Text>, key: &mut String) -> Option<&'h str> {
    let ua = crate::wire::header(headers, "user-agent")?;
    cache_key_for(ua, headers, key);
    Some(ua)
}

/// [`cache_key_into`] for a User-Agent given apart from `headers` (an adapter that did not copy it into
/// them); the key is the same as with the User-Agent among the headers.
pub fn cache_key_for(ua: &str, headers: &BTreeMap<Text, Text>, key: &mut String) {
    key.reserve(ua.len() + 64);
    key.push_str(ua);
    for (k, v) in headers {
        let hint = k.len() > 6 && k.get(..6).is_some_and(|p| p.eq_ignore_ascii_case("sec-ch"));
        if hint || k.eq_ignore_ascii_case("x-requested-with") {
            key.push('\u{1}');
            key.push_str(&k.to_ascii_lowercase());
            key.push('=');
            key.push_str(v);
        }
    }
}

/// Detect from a User-Agent and the request headers (Client Hints, `X-Requested-With`).
pub fn detect(parser: &UaParser, user_agent: &str, headers: &BTreeMap<Text, Text>) -> Detected {
    let (mut browser, mut os, mut device) = parser.parse(user_agent);

    // Client Hints win where they speak.
    if let Some(p) = header(headers, "sec-ch-ua-platform").map(sh_string) {
        if let Some(fam) = os_family(&p) {
            if os.family != fam {
                os = Os {
                    family: fam.to_string(),
                    ..Os::default()
                };
            }
            if let Some(v) = header(headers, "sec-ch-ua-platform-version").map(sh_string) {
                let [a, b, c, _] = split_version(&v);
                if fam == "Windows" {
                    // Windows reports its UWP platform version: 13 and later is Windows 11, 1–12 Windows 10.
                    let major = a
                        .as_deref()
                        .and_then(|m| m.parse::<u32>().ok())
                        .unwrap_or(0);
                    os.major = match major {
                        13.. => Some("11".into()),
                        1..=12 => Some("10".into()),
                        _ => os.major.take(),
                    };
                    os.minor = None;
                    os.patch = None;
                } else {
                    (os.major, os.minor, os.patch) = (a, b, c);
                }
            }
        }
    }
    let list =
        header(headers, "sec-ch-ua-full-version-list").or_else(|| header(headers, "sec-ch-ua"));
    if let Some(list) = list {
        // The first brand tailor knows; GREASE entries ("Not A;Brand") and "Chromium" are skipped.
        if let Some((fam, ver)) = brand_list(list)
            .iter()
            .find_map(|(b, v)| browser_family(b).map(|f| (f, v.clone())))
        {
            let mobile_chrome = fam == "Chrome" && matches!(os.family.as_str(), "Android" | "iOS");
            let fam = if mobile_chrome { "Chrome Mobile" } else { fam };
            let [a, b, c, _] = split_version(&ver);
            if browser.family != fam || (a.is_some() && b.is_some()) {
                browser = UserAgent {
                    family: fam.to_string(),
                    major: a,
                    minor: b,
                    patch: c,
                };
            }
        }
    }
    if let Some(model) = header(headers, "sec-ch-ua-model")
        .map(sh_string)
        .filter(|m| !m.is_empty())
    {
        device.model = Some(model.clone());
        if device.family == "Other" || device.family == "K" || device.family.starts_with("Generic")
        {
            device.family = model;
        }
    }
    let ch_mobile =
        header(headers, "sec-ch-ua-mobile").map(|v| v.trim_start_matches('?').trim() == "1");

    let lower_family = browser.family.to_ascii_lowercase();
    let is_bot =
        device.family == "Spider" || contains_any(&lower_family, &["bot", "crawler", "spider"]);
    let ua = user_agent;
    let kind = if is_bot {
        "bot"
    } else if contains_any(
        ua,
        &[
            "SmartTV", "SMART-TV", "Smart-TV", "HbbTV", "AppleTV", "GoogleTV", "CrKey", "Roku",
            "BRAVIA", "NetCast", "Web0S", "webOS.TV", "Tizen TV", "AFTB", "AFTS", "AFTM", "AFTT",
        ],
    ) || matches!(os.family.as_str(), "tvOS" | "Roku")
    {
        "tv"
    } else if contains_any(ua, &["PlayStation", "Xbox", "Nintendo"]) {
        "console"
    } else if os.family == "WatchOS"
        || os.family == "Wear OS"
        || device.family.contains("Watch")
        || ua.contains("Wearable")
    {
        "wearable"
    } else if device.family.starts_with("iPad")
        || contains_any(ua, &["Tablet", "Kindle", "Silk/", "PlayBook"])
        || (os.family == "Android"
            && !ua.contains("Mobile")
            && ch_mobile != Some(true)
            && !ua.is_empty())
    {
        "tablet"
    } else if ch_mobile == Some(true)
        || matches!(
            os.family.as_str(),
            "iOS"
                | "Android"
                | "Windows Phone"
                | "BlackBerry OS"
                | "KaiOS"
                | "Symbian OS"
                | "Firefox OS"
        )
        || contains_any(ua, &["Mobile", "iPhone", "Opera Mini"])
    {
        "mobile"
    } else {
        "desktop"
    };
    Detected {
        kind: kind.to_string(),
        browser,
        os,
        device,
        is_bot,
        app: header(headers, "x-requested-with").and_then(app_package),
    }
}

/// A package name such as `com.example.shop`: two or more dot-separated parts of `[A-Za-z0-9_]`, each
/// starting with a letter, at most 128 bytes.
fn app_package(v: &str) -> Option<String> {
    let ok = v.len() <= 128
        && v.split('.').count() >= 2
        && v.split('.').all(|part| {
            part.starts_with(|c: char| c.is_ascii_alphabetic())
                && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        });
    ok.then(|| v.to_string())
}
