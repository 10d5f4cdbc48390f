//! `tailor serve` end to end over real sockets: the real binary on port 0, a real SQLite store in a
//! temporary directory, plain HTTP/1.1 from the test. No part of the server is mocked.

use super::cli::bin;
use super::root;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TOKEN: &str = "test-admin-token-0123456789";

/// A fresh directory under the system temp dir.
fn temp_dir(name: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let d = std::env::temp_dir().join(format!("tailor-test-{name}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

struct Server {
    child: Child,
    addr: String,
    stderr: Arc<Mutex<String>>,
}

struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl Server {
    fn start(data: &Path, args: &[&str]) -> Server {
        Self::try_start(data, args).unwrap_or_else(|e| panic!("server did not start: {e}"))
    }

    /// Start `tailor serve` (admin token from the environment, as operators would pass it); returns the
    /// stderr text when it exits before listening.
    fn try_start(data: &Path, args: &[&str]) -> Result<Server, String> {
        let mut child = Command::new(bin())
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(data)
            .args(args)
            .env("TAILOR_ADMIN_TOKEN", TOKEN)
            .env("TAILOR_LOG", "info")
            .current_dir(root())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        {
            let mut err = child.stderr.take().unwrap();
            let sink = stderr.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = err.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    sink.lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            });
        }
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let Some(addr) = line.trim().strip_prefix("listening on http://") else {
            let _ = child.wait();
            std::thread::sleep(Duration::from_millis(100));
            return Err(stderr.lock().unwrap().clone());
        };
        Ok(Server {
            addr: addr.to_string(),
            child,
            stderr,
        })
    }

    fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
        http(&self.addr, method, path, headers, body).unwrap()
    }

    fn get(&self, path: &str) -> Resp {
        self.request("GET", path, &[], b"")
    }

    fn admin(&self, method: &str, path: &str, body: &[u8]) -> Resp {
        let auth = format!("Bearer {TOKEN}");
        self.request(method, path, &[("authorization", &auth)], body)
    }

    fn decide(&self, req: &Value) -> Value {
        let r = self.request("POST", "/v1/decide", &[], req.to_string().as_bytes());
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        r.json()
    }

    /// SIGTERM and wait: graceful shutdown.
    fn stop(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(Instant::now() < deadline, "server did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill9(&mut self) {
        self.child.kill().unwrap(); // SIGKILL on Unix
        self.child.wait().unwrap();
    }

    fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Minimal HTTP/1.1 client: one request per connection, `Connection: close`.
fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Resp> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !body.is_empty()
        && !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
    {
        head.push_str("Content-Type: application/json\r\n");
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes())?;
    s.write_all(body)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no header end"))?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other("bad status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"))
    {
        body = dechunk(&body);
    }
    Ok(Resp {
        status,
        headers,
        body,
    })
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let n = usize::from_str_radix(std::str::from_utf8(&b[..eol]).unwrap().trim(), 16).unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + n]);
        b = &b[eol + 2 + n + 2..];
    }
}

fn example(name: &str) -> Vec<u8> {
    std::fs::read(root().join("rules/retail/examples").join(name)).unwrap()
}

fn seoul_request(visitor: &str) -> Value {
    let mut v: Value = serde_json::from_slice(&example("seoul-mobile.request.json")).unwrap();
    v["visitor_id"] = json!(visitor);
    v
}

fn decision<'a>(resp: &'a Value, placement: &str) -> &'a Value {
    resp["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["placement"] == placement)
        .unwrap_or_else(|| panic!("no decision for {placement}: {resp}"))
}

fn rfc3339_in(secs: i64) -> String {
    let now = jiff::Timestamp::now();
    now.checked_add(jiff::SignedDuration::from_secs(secs))
        .unwrap()
        .to_string()
}

#[test]
fn profiles_decide_and_auth_over_http() {
    let data = temp_dir("routes");
    let s = Server::start(
        &data,
        &[
            "--bundle",
            "rules/retail",
            "--geoip-db",
            "tests/data/maxmind/test-data/GeoIP2-City-Test.mmdb",
        ],
    );
    let h = s.get("/healthz");
    assert_eq!(h.status, 200);
    assert_eq!(h.json()["bundle"]["id"], "retail");

    // Without a stored profile the Seoul visitor gets the KR hero, not the VIP one.
    let d = s.decide(&seoul_request("v-1"));
    assert_eq!(decision(&d, "home_hero")["experience"], "gangnam-store");

    // Auth: no header 401 (with WWW-Authenticate), wrong token 403, right token 200.
    let mut snap: Value = serde_json::from_slice(&example("big-spender.profile.json")).unwrap();
    snap["visitor_id"] = json!("v-1");
    let body = snap.to_string();
    let r = s.request("PUT", "/v1/profiles/v-1", &[], body.as_bytes());
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    assert_eq!(r.json()["code"], "unauthorized");
    let r = s.request(
        "PUT",
        "/v1/profiles/v-1",
        &[("authorization", "Bearer wrong-token")],
        body.as_bytes(),
    );
    assert_eq!(r.status, 403);
    assert_eq!(
        s.admin("PUT", "/v1/profiles/v-1", body.as_bytes()).status,
        200
    );
    // Another visitor's snapshot cannot be stored under this id.
    let r = s.admin("PUT", "/v1/profiles/v-2", body.as_bytes());
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["code"], "invalid_profile");

    // The stored profile makes the VIP experience win.
    let d = s.decide(&seoul_request("v-1"));
    assert_eq!(decision(&d, "home_hero")["experience"], "vip-welcome-back");
    // …and only for v-1.
    let d = s.decide(&seoul_request("v-2"));
    assert_eq!(decision(&d, "home_hero")["experience"], "gangnam-store");

    let g = s.admin("GET", "/v1/profiles/v-1", b"");
    assert_eq!(g.status, 200);
    assert_eq!(g.json()["traits"]["tier"], "gold");
    assert_eq!(s.get("/v1/profiles/v-1").status, 401);

    // Erasure: gone from the store and from decisions.
    let del = s.admin("DELETE", "/v1/profiles/v-1", b"");
    assert_eq!(del.status, 200);
    assert_eq!(del.json()["deleted"], true);
    assert_eq!(s.admin("GET", "/v1/profiles/v-1", b"").status, 404);
    let d = s.decide(&seoul_request("v-1"));
    assert_eq!(decision(&d, "home_hero")["experience"], "gangnam-store");

    // Device from the HTTP User-Agent, geo from the IP in the body (MaxMind test DB: 81.2.69.142 is London).
    let r = s.request(
        "POST",
        "/v1/decide",
        &[("user-agent", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36")],
        json!({"visitor_id": "v-3", "placements": ["home_hero"], "context": {"ip": "81.2.69.142"}, "explain": true}).to_string().as_bytes(),
    );
    assert_eq!(r.status, 200);
    let trace = r.json().to_string();
    assert!(
        trace.contains("geo.country == \\\"KR\\\"` was false"),
        "{trace}"
    );
    assert!(r.header("x-request-id").is_some());
    // GeoIP through the server's answer cache (MaxMind test DB: 2001:220::/32 is KR). The first request
    // fills the cache, the second (same address, padded) is answered from it; a malformed address leaves
    // `geo` empty and the decision still succeeds.
    let kr = |ip: &str| {
        let r = s.request(
            "POST",
            "/v1/decide",
            &[],
            json!({"visitor_id": "v-geo", "placements": ["home_hero"], "context": {"ip": ip}})
                .to_string()
                .as_bytes(),
        );
        assert_eq!(r.status, 200);
        decision(&r.json(), "home_hero")["experience"].clone()
    };
    assert_eq!(kr("2001:220::1"), "kr-hero");
    assert_eq!(kr(" 2001:220::1 "), "kr-hero");
    assert_eq!(kr("not-an-address"), serde_json::Value::Null);

    // JSON errors everywhere.
    let r = s.get("/nope");
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["code"], "not_found");
    let r = s.request("POST", "/v1/decide", &[], b"{not json");
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["code"], "invalid_request");

    // Placement names the bundle does not define are counted, but never become metric labels.
    for name in ["zz-probe-1", "zz-probe-2"] {
        let r = s.decide(&json!({"placements": [name]}));
        assert_eq!(decision(&r, name)["reason"], "unknown_placement");
    }

    let m = String::from_utf8(s.get("/metrics").body).unwrap();
    assert!(m.contains("tailor_decisions_total{placement=\"home_hero\",experience=\"vip-welcome-back\",variant=\"main\",reason=\"matched\"} 1"), "{m}");
    assert!(m.contains("tailor_decisions_total{placement=\"\",experience=\"\",variant=\"\",reason=\"unknown_placement\"} 2"), "{m}");
    assert!(!m.contains("zz-probe"), "{m}");
    assert!(m.contains("tailor_http_requests_total{route=\"/v1/profiles/{id}\",status=\"401\"}"));
    assert!(
        m.contains("tailor_http_request_duration_seconds_bucket{route=\"/v1/decide\",le=\"+Inf\"}")
    );
    assert!(m.contains("tailor_bundle_info{id=\"retail\""));
    assert!(m.contains("tailor_profile_cache_requests_total{result=\"hit\"}"));
    // The token never reaches the log.
    assert!(!s.log().contains(TOKEN));
    assert!(s.stop().success());
}

#[test]
fn admin_routes_are_off_without_a_token() {
    let data = temp_dir("notoken");
    let mut child = Command::new(bin())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--bundle",
            "rules/retail",
            "--data",
        ])
        .arg(&data)
        .env_remove("TAILOR_ADMIN_TOKEN")
        .current_dir(root())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap()
        .to_string();
    let r = http(
        &addr,
        "GET",
        "/v1/bundle",
        &[("authorization", "Bearer anything-at-all")],
        b"",
    )
    .unwrap();
    assert_eq!(r.status, 403);
    assert!(String::from_utf8_lossy(&r.body).contains("admin routes are disabled"));
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn events_are_visible_to_the_next_decide() {
    let data = temp_dir("ryw");
    let s = Server::start(&data, &["--bundle", "rules/retail"]);
    let before = s.decide(&seoul_request("v-ryw"));
    assert_eq!(
        decision(&before, "home_hero")["experience"],
        "gangnam-store"
    );
    // Three purchases worth $600 make the visitor `high_value` and `returning_customer`.
    let events: Vec<Value> = (0..3)
        .map(|i| json!({"visitor_id": "v-ryw", "type": "purchase", "category": "shoes", "price": 200, "product_id": format!("p{i}"), "discounted": false, "quantity": 1}))
        .collect();
    let r = s.admin(
        "POST",
        "/v1/events",
        json!({ "events": events }).to_string().as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["accepted"], 3);
    let after = s.decide(&seoul_request("v-ryw"));
    assert_eq!(
        decision(&after, "home_hero")["experience"],
        "vip-welcome-back"
    );

    // A bad event rejects the whole batch: nothing is half-applied.
    let r = s.admin(
        "POST",
        "/v1/events",
        json!({"events": [
            {"visitor_id": "v-ryw", "type": "view", "product_id": "x"},
            {"visitor_id": "v-ryw", "type": "view", "at": "last tuesday"}
        ]})
        .to_string()
        .as_bytes(),
    );
    assert_eq!(r.status, 400);
    assert!(r.json()["message"]
        .as_str()
        .unwrap()
        .starts_with("event 1:"));
    let p = s.admin("GET", "/v1/profiles/v-ryw", b"").json();
    assert!(p["events"].get("views").is_none(), "{p}");
}

#[test]
fn concurrent_events_for_one_visitor_lose_nothing() {
    let data = temp_dir("concurrent");
    let s = Server::start(
        &data,
        &[
            "--bundle",
            "rules/retail",
            "--max-events-per-stream",
            "10000",
            "--max-profile-bytes",
            "1000000",
        ],
    );
    let addr = s.addr.clone();
    let auth = format!("Bearer {TOKEN}");
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let (addr, auth) = (addr.clone(), auth.clone());
            std::thread::spawn(move || {
                for i in 0..25 {
                    let body = json!({"events": [{"visitor_id": "same", "type": "view", "product_id": format!("{t}-{i}")}]});
                    let r = http(&addr, "POST", "/v1/events", &[("authorization", &auth)], body.to_string().as_bytes()).unwrap();
                    assert_eq!(r.status, 200);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let p = s.admin("GET", "/v1/profiles/same", b"").json();
    let mut ids: Vec<String> = p["events"]["views"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["product_id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 200);
}

#[test]
fn acknowledged_events_survive_kill_9() {
    let data = temp_dir("kill9");
    let args = [
        "--bundle",
        "rules/retail",
        "--max-events-per-stream",
        "100000",
        "--max-profile-bytes",
        "10000000",
    ];
    let mut s = Server::start(&data, &args);
    let acked: Arc<Mutex<Vec<(usize, usize)>>> = Arc::default();
    let auth = format!("Bearer {TOKEN}");
    let writers: Vec<_> = (0..4)
        .map(|t| {
            let (addr, auth, acked) = (s.addr.clone(), auth.clone(), acked.clone());
            std::thread::spawn(move || {
                for i in 0.. {
                    let body = json!({"events": [{"visitor_id": format!("k{t}"), "type": "purchase", "seq": i, "price": 1}]});
                    match http(&addr, "POST", "/v1/events", &[("authorization", &auth)], body.to_string().as_bytes()) {
                        Ok(r) if r.status == 200 => acked.lock().unwrap().push((t, i)),
                        // The server died mid-request: this event was never acknowledged.
                        _ => return,
                    }
                }
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.lock().unwrap().len() < 150 {
        assert!(
            Instant::now() < deadline,
            "too slow: {} acks",
            acked.lock().unwrap().len()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    s.kill9();
    for w in writers {
        w.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    let s = Server::start(&data, &args);
    for t in 0..4 {
        let p = s.admin("GET", &format!("/v1/profiles/k{t}"), b"").json();
        let stored: std::collections::HashSet<u64> = p["events"]["purchases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["seq"].as_u64().unwrap())
            .collect();
        for (_, i) in acked.iter().filter(|(tt, _)| *tt == t) {
            assert!(
                stored.contains(&(*i as u64)),
                "acknowledged event k{t}/{i} lost after kill -9"
            );
        }
    }
}

fn build(dir: &Path, out: &Path, sign: Option<&Path>) {
    let mut c = Command::new(bin());
    c.args(["build"])
        .arg(dir)
        .arg("-o")
        .arg(out)
        .current_dir(root());
    if let Some(k) = sign {
        c.arg("--sign").arg(k);
    }
    let o = c.output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// A copy of rules/retail with another version (a distinct deployable bundle).
fn retail_copy(version: &str) -> PathBuf {
    let d = temp_dir("bundle");
    copy_dir(&root().join("rules/retail"), &d);
    let p = d.join("bundle.toml");
    let text = std::fs::read_to_string(&p).unwrap();
    std::fs::write(
        &p,
        text.replace(
            "version = \"2026.11.1\"",
            &format!("version = \"{version}\""),
        ),
    )
    .unwrap();
    d
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}

#[test]
fn bad_deploys_keep_serving_and_rollback_restores() {
    let data = temp_dir("deploy");
    let s = Server::start(&data, &["--bundle", "rules/retail"]);
    let v1 = s.admin("GET", "/v1/bundle", b"").json();
    assert_eq!(v1["version"], "2026.11.1");

    // Invalid artifact: 422 with every error; the old bundle keeps serving.
    let out = temp_dir("artifacts").join("v2.json");
    build(&retail_copy("2026.11.2"), &out, None);
    let mut broken: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    broken["definitions"]["placements"][0]["experiences"][0]["audience"] =
        json!("geo.contry == 1 &&");
    broken["definitions"]["segments"][0]["when"] = json!("profile.nope > 1");
    broken["content_hash"] = json!(tailor::bundle::def::content_hash(
        &serde_json::from_value(broken["definitions"].clone()).unwrap()
    ));
    let r = s.admin("PUT", "/v1/bundle", broken.to_string().as_bytes());
    assert_eq!(r.status, 422, "{}", String::from_utf8_lossy(&r.body));
    let e = r.json();
    assert_eq!(e["code"], "invalid_bundle");
    assert!(e["errors"].as_array().unwrap().len() >= 2, "{e}");
    assert_eq!(s.admin("GET", "/v1/bundle", b"").json()["hash"], v1["hash"]);
    let d = s.decide(&seoul_request("v-d"));
    assert_eq!(d["bundle"]["version"], "2026.11.1");

    // A good deploy swaps atomically; rollback returns to the previous one.
    let r = s.admin("PUT", "/v1/bundle", &std::fs::read(&out).unwrap());
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        s.decide(&seoul_request("v-d"))["bundle"]["version"],
        "2026.11.2"
    );
    let r = s.admin("POST", "/v1/bundle/rollback", b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["version"], "2026.11.1");
    assert_eq!(
        s.decide(&seoul_request("v-d"))["bundle"]["version"],
        "2026.11.1"
    );
    // Nothing before the first deployment.
    assert_eq!(s.admin("POST", "/v1/bundle/rollback", b"").status, 409);
    s.stop();

    // The active deployment survives a restart without --bundle.
    let s = Server::start(&data, &[]);
    assert_eq!(
        s.admin("GET", "/v1/bundle", b"").json()["version"],
        "2026.11.1"
    );
}

#[test]
fn signed_bundles_only_when_a_key_is_trusted() {
    let dir = temp_dir("keys");
    for name in ["good", "other"] {
        let o = Command::new(bin())
            .args(["keygen", "--out"])
            .arg(dir.join(name))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let key_text = std::fs::read_to_string(dir.join("good.key")).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("good.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o077,
            0,
            "the secret key must not be readable by others"
        );
    }
    let retail = root().join("rules/retail");
    let signed = dir.join("signed.json");
    build(&retail, &signed, Some(&dir.join("good.key")));
    let signed_v2 = dir.join("signed-v2.json");
    build(
        &retail_copy("2026.11.2"),
        &signed_v2,
        Some(&dir.join("good.key")),
    );
    let unsigned = dir.join("unsigned.json");
    build(&retail_copy("2026.11.3"), &unsigned, None);
    let foreign = dir.join("foreign.json");
    build(
        &retail_copy("2026.11.4"),
        &foreign,
        Some(&dir.join("other.key")),
    );
    let pubkey = dir.join("good.pub");
    let pubkey = pubkey.to_str().unwrap();

    // Refuses to start with an unsigned bundle.
    let e = Server::try_start(
        &temp_dir("sig0"),
        &[
            "--trusted-key",
            pubkey,
            "--bundle",
            unsigned.to_str().unwrap(),
        ],
    )
    .err()
    .expect("an unsigned bundle must not start a server that requires signatures");
    assert!(e.contains("not signed"), "{e}");

    let s = Server::start(
        &temp_dir("sig"),
        &[
            "--trusted-key",
            pubkey,
            "--bundle",
            signed.to_str().unwrap(),
        ],
    );
    let info = s.admin("GET", "/v1/bundle", b"").json();
    assert_eq!(info["signature_verified"], true);
    let put = |p: &Path| s.admin("PUT", "/v1/bundle", &std::fs::read(p).unwrap());
    let r = put(&unsigned);
    assert_eq!(
        (r.status, r.json()["code"].clone()),
        (403, json!("unsigned_bundle"))
    );
    let r = put(&foreign);
    assert_eq!(
        (r.status, r.json()["code"].clone()),
        (403, json!("bad_signature"))
    );
    // Tampered after signing: content edited, hash and signature kept.
    let mut t: Value = serde_json::from_slice(&std::fs::read(&signed_v2).unwrap()).unwrap();
    t["definitions"]["placements"][0]["default"] = json!({"title": "pwned"});
    let r = s.admin("PUT", "/v1/bundle", t.to_string().as_bytes());
    assert_eq!(
        (r.status, r.json()["code"].clone()),
        (403, json!("tampered_bundle"))
    );
    // …and with the hash recomputed, the signature no longer matches.
    t["content_hash"] = json!(tailor::bundle::def::content_hash(
        &serde_json::from_value(t["definitions"].clone()).unwrap()
    ));
    let r = s.admin("PUT", "/v1/bundle", t.to_string().as_bytes());
    assert_eq!(
        (r.status, r.json()["code"].clone()),
        (403, json!("bad_signature"))
    );
    assert_eq!(
        s.admin("GET", "/v1/bundle", b"").json()["version"],
        "2026.11.1"
    );
    // The genuine signed bundle deploys.
    let r = put(&signed_v2);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["version"], "2026.11.2");
    assert!(!key_text.is_empty() && !s.log().contains(key_text.trim()));
}

#[test]
fn limits_answer_413_and_400() {
    let data = temp_dir("limits");
    let s = Server::start(
        &data,
        &[
            "--bundle",
            "rules/retail",
            "--max-body-bytes",
            "4096",
            "--max-events-per-batch",
            "5",
            "--max-profile-bytes",
            "1024",
        ],
    );
    let big = json!({"placements": ["home_hero"], "context": {"url": format!("https://x.example/?q={}", "a".repeat(5000))}});
    let r = s.request("POST", "/v1/decide", &[], big.to_string().as_bytes());
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["code"], "too_large");
    let many: Vec<String> = (0..65).map(|i| format!("p{i}")).collect();
    let r = s.request(
        "POST",
        "/v1/decide",
        &[],
        json!({"placements": many}).to_string().as_bytes(),
    );
    assert_eq!(r.status, 400);
    let events: Vec<Value> = (0..6)
        .map(|_| json!({"visitor_id": "a", "type": "view"}))
        .collect();
    let r = s.admin(
        "POST",
        "/v1/events",
        json!({ "events": events }).to_string().as_bytes(),
    );
    assert_eq!(r.status, 413);
    let r = s.admin(
        "PUT",
        "/v1/profiles/a",
        json!({"traits": {"x": "y".repeat(2000)}})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(r.status, 413);
    let long_id = "x".repeat(300);
    let r = s.admin("GET", &format!("/v1/profiles/{long_id}"), b"");
    assert_eq!(r.status, 400);
}

/// A decide body sent in chunks (no `Content-Length`): read whole across frames, and refused with 413
/// once it passes `--max-body-bytes`, like a declared one.
#[test]
fn chunked_decide_bodies_are_read_whole_and_limited() {
    let data = temp_dir("chunked");
    let s = Server::start(
        &data,
        &["--bundle", "rules/retail", "--max-body-bytes", "4096"],
    );
    let chunked = |chunks: &[&[u8]]| -> (u16, Value) {
        let mut t = TcpStream::connect(&s.addr).unwrap();
        t.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut req = format!(
            "POST /v1/decide HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
            s.addr
        )
        .into_bytes();
        for c in chunks {
            req.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
            req.extend_from_slice(c);
            req.extend_from_slice(b"\r\n");
        }
        req.extend_from_slice(b"0\r\n\r\n");
        // Written in pieces with pauses, so the server sees more than one frame. A refused body may
        // be answered (and the connection closed) before the rest is written.
        for part in req.chunks(40) {
            if t.write_all(part).and_then(|()| t.flush()).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let mut raw = Vec::new();
        let _ = t.read_to_end(&mut raw);
        let text = String::from_utf8_lossy(&raw).to_string();
        let status: u16 = text.split(' ').nth(1).unwrap().parse().unwrap();
        let (_, body) = text.split_once("\r\n\r\n").unwrap();
        // The answers here are small: one chunk, or a Content-Length body.
        let json = body
            .find('{')
            .and_then(|i| body.rfind('}').map(|j| &body[i..=j]))
            .map_or(Value::Null, |b| serde_json::from_str(b).unwrap());
        (status, json)
    };
    let req =
        json!({"visitor_id": "v-chunked", "placements": ["home_hero", "promo_strip"]}).to_string();
    let (a, b) = req.as_bytes().split_at(req.len() / 2);
    let (status, answer) = chunked(&[a, b]);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["decisions"][1]["placement"], "promo_strip",
        "{answer}"
    );
    let big = format!(
        "{{\"placements\":[\"home_hero\"],\"context\":{{\"url\":\"https://x.example/?q={}\"}}}}",
        "a".repeat(5000)
    );
    let parts: Vec<&[u8]> = big.as_bytes().chunks(1000).collect();
    let (status, answer) = chunked(&parts);
    assert_eq!(status, 413, "{answer}");
    assert_eq!(answer["code"], "too_large");
}

#[test]
fn cors_preflight_for_allowed_origins_only() {
    let data = temp_dir("cors");
    let s = Server::start(
        &data,
        &[
            "--bundle",
            "rules/retail",
            "--cors-origin",
            "https://shop.example",
        ],
    );
    let pre = |origin: &str| {
        s.request(
            "OPTIONS",
            "/v1/decide",
            &[
                ("origin", origin),
                ("access-control-request-method", "POST"),
                ("access-control-request-headers", "content-type"),
            ],
            b"",
        )
    };
    let ok = pre("https://shop.example");
    assert_eq!(
        ok.header("access-control-allow-origin"),
        Some("https://shop.example")
    );
    let no = pre("https://evil.example");
    assert_eq!(no.header("access-control-allow-origin"), None);
}

#[test]
fn watch_redeploys_good_edits_and_ignores_bad_ones() {
    let data = temp_dir("watch");
    let dir = retail_copy("2026.11.1");
    let s = Server::start(&data, &["--watch", dir.to_str().unwrap()]);
    assert_eq!(
        s.admin("GET", "/v1/bundle", b"").json()["version"],
        "2026.11.1"
    );
    let p = dir.join("bundle.toml");
    let text = std::fs::read_to_string(&p).unwrap();
    std::fs::write(
        &p,
        text.replace("version = \"2026.11.1\"", "version = \"2026.11.9\""),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while s.admin("GET", "/v1/bundle", b"").json()["version"] != "2026.11.9" {
        assert!(Instant::now() < deadline, "the edit was not deployed");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::fs::write(
        dir.join("broken.toml"),
        "[segments.x]\nwhen = 'geo.contry == \"KR\"'\n",
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !s.log().contains("geo.contry") {
        assert!(
            Instant::now() < deadline,
            "the broken edit was not reported: {}",
            s.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        s.admin("GET", "/v1/bundle", b"").json()["version"],
        "2026.11.9"
    );
    assert_eq!(
        s.decide(&seoul_request("w"))["bundle"]["version"],
        "2026.11.9"
    );
}

#[test]
fn exposure_log_feeds_the_experiment_report() {
    let data = temp_dir("report");
    let s = Server::start(&data, &["--bundle", "rules/retail"]);
    let mut variant_of = std::collections::HashMap::new();
    for i in 0..300 {
        let v = format!("r{i}");
        let d = s.decide(&json!({"visitor_id": v, "placements": ["product_recs"], "context": {"attributes": {"page_type": "product"}}}));
        let dd = decision(&d, "product_recs");
        if dd["experience"] == "recs-layout-test" {
            variant_of.insert(v, dd["variant"].as_str().unwrap().to_string());
        }
    }
    assert!(variant_of.len() > 50, "{}", variant_of.len());
    // Every third exposed visitor buys after exposure.
    let buyers: Vec<&String> = variant_of
        .keys()
        .filter(|v| v[1..].parse::<u32>().unwrap() % 3 == 0)
        .collect();
    let at = rfc3339_in(60);
    let events: Vec<Value> = buyers
        .iter()
        .map(|v| json!({"visitor_id": v, "type": "purchase", "at": at, "price": 10}))
        .collect();
    for chunk in events.chunks(500) {
        assert_eq!(
            s.admin(
                "POST",
                "/v1/events",
                json!({ "events": chunk }).to_string().as_bytes()
            )
            .status,
            200
        );
    }
    // Graceful stop flushes the exposure log.
    assert!(s.stop().success());
    let o = Command::new(bin())
        .args(["report", "--json", "--data"])
        .arg(&data)
        .current_dir(root())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    let exp = r["experiences"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["experience"] == "recs-layout-test")
        .unwrap_or_else(|| panic!("{r}"));
    assert_eq!(exp["control"], "control");
    for row in exp["variants"].as_array().unwrap() {
        let name = row["variant"].as_str().unwrap();
        let exposed = variant_of.values().filter(|v| *v == name).count() as u64;
        let converted = buyers.iter().filter(|b| variant_of[**b] == name).count() as u64;
        assert_eq!(row["exposed"].as_u64().unwrap(), exposed, "{name}");
        assert_eq!(row["conversions"].as_u64().unwrap(), converted, "{name}");
    }
    assert_eq!(exp["srm"]["df"], 1);
    assert_eq!(exp["srm"]["mismatch"], false, "{exp}");
    // The human report prints the same experiment.
    let o = Command::new(bin())
        .args(["report", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("experience `recs-layout-test`") && text.contains("sample ratio"),
        "{text}"
    );
}

#[test]
fn frequency_caps_count_the_servers_own_exposures() {
    let dir = retail_copy("2026.11.1");
    let p = dir.join("placements/home_hero.toml");
    let text = std::fs::read_to_string(&p).unwrap();
    assert!(text.contains("frequency_cap = 20"));
    std::fs::write(
        &p,
        text.replacen("frequency_cap = 20", "frequency_cap = 3", 1),
    )
    .unwrap();
    let data = temp_dir("cap");
    let bundle = ["--bundle", dir.to_str().unwrap()];
    let s = Server::start(&data, &bundle);
    let mut snap: Value = serde_json::from_slice(&example("big-spender.profile.json")).unwrap();
    snap["visitor_id"] = json!("v-cap");
    // The CDP says the visitor has seen it once already.
    snap["exposures"] = json!({"vip-welcome-back": 1});
    assert_eq!(
        s.admin("PUT", "/v1/profiles/v-cap", snap.to_string().as_bytes())
            .status,
        200
    );
    let hero = |s: &Server| {
        let mut req = seoul_request("v-cap");
        req["explain"] = json!(true);
        decision(&s.decide(&req), "home_hero").clone()
    };
    // 1 (snapshot) + 2 served here = the cap of 3.
    for n in 0..2 {
        assert_eq!(hero(&s)["experience"], "vip-welcome-back", "serve {n}");
    }
    let capped = hero(&s);
    assert_ne!(capped["experience"], "vip-welcome-back");
    assert_eq!(
        capped["trace"]["experiences"][0]["outcome"], "frequency_capped",
        "{capped}"
    );
    assert_eq!(
        capped["trace"]["experiences"][0]["detail"],
        "seen 3 times, cap 3"
    );
    // An event batch replaces the cached snapshot; the counts stay with the visitor.
    let ev = json!({"events": [{"visitor_id": "v-cap", "type": "view", "at": rfc3339_in(0)}]});
    assert_eq!(
        s.admin("POST", "/v1/events", ev.to_string().as_bytes())
            .status,
        200
    );
    assert_eq!(
        hero(&s)["trace"]["experiences"][0]["outcome"],
        "frequency_capped"
    );
    // The snapshot itself is not rewritten; the counts survive a restart (graceful stop flushes them).
    assert_eq!(
        s.admin("GET", "/v1/profiles/v-cap", b"").json()["exposures"]["vip-welcome-back"],
        1
    );
    assert!(s.stop().success());
    let s = Server::start(&data, &bundle);
    assert_eq!(
        hero(&s)["trace"]["experiences"][0]["outcome"],
        "frequency_capped"
    );
    // Erasure forgets the counts too.
    assert_eq!(s.admin("DELETE", "/v1/profiles/v-cap", b"").status, 200);
    assert_eq!(
        s.admin("PUT", "/v1/profiles/v-cap", snap.to_string().as_bytes())
            .status,
        200
    );
    assert_eq!(hero(&s)["experience"], "vip-welcome-back");
}

#[test]
fn preview_time_is_admin_only_and_has_no_side_effects() {
    let data = temp_dir("preview");
    let s = Server::start(&data, &["--bundle", "rules/retail"]);
    let mut snap: Value = serde_json::from_slice(&example("big-spender.profile.json")).unwrap();
    snap["visitor_id"] = json!("v-preview");
    assert_eq!(
        s.admin("PUT", "/v1/profiles/v-preview", snap.to_string().as_bytes())
            .status,
        200
    );
    let body = seoul_request("v-preview").to_string();
    let auth = format!("Bearer {TOKEN}");
    let at = |when: &str, token: Option<&str>| {
        let mut h = vec![("X-Tailor-Preview-At", when)];
        if let Some(t) = token {
            h.push(("Authorization", t));
        }
        s.request("POST", "/v1/decide", &h, body.as_bytes())
    };
    // A visitor cannot look at a campaign before it starts.
    let r = at("2026-12-03T10:00:00Z", None);
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["code"], "forbidden");
    assert_eq!(at("2026-12-03T10:00:00Z", Some("Bearer wrong")).status, 403);
    assert_eq!(at("next tuesday", Some(&auth)).status, 400);
    // The winter sale runs 1 Dec – 6 Jan (Asia/Seoul): in it, and before it (for a visitor the coffee
    // reminder does not claim first).
    let anon = seoul_request("v-no-profile").to_string();
    let promo = |when: &str| {
        let h = [
            ("X-Tailor-Preview-At", when),
            ("Authorization", auth.as_str()),
        ];
        let r = s.request("POST", "/v1/decide", &h, anon.as_bytes()).json();
        decision(&r, "promo_strip")["experience"].clone()
    };
    assert_eq!(promo("2026-12-03T10:00:00Z"), "winter-sale");
    assert_ne!(promo("2026-11-20T10:00:00Z"), "winter-sale");
    // Previews count no exposures: 30 of them leave the VIP hero (cap 20, 3 seen) uncapped.
    for _ in 0..30 {
        let r = at("2026-12-03T10:00:00Z", Some(&auth)).json();
        assert_eq!(decision(&r, "home_hero")["experience"], "vip-welcome-back");
    }
    assert_eq!(
        decision(&s.decide(&seoul_request("v-preview")), "home_hero")["experience"],
        "vip-welcome-back"
    );
}

/// The HTTP User-Agent always reaches device detection, and reaches the rules only when the bundle
/// allow-lists it (the server keeps it out of the context otherwise); a User-Agent in the body wins over
/// the HTTP one for both.
#[test]
fn the_user_agent_reaches_rules_only_when_allow_listed() {
    let iphone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1";
    let windows = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
    for allow in [true, false] {
        let dir = temp_dir(if allow {
            "ua-allowed-bundle"
        } else {
            "ua-kept-bundle"
        });
        let (schema, rule) = if allow {
            (
                "[schema.request]\nheaders = [\"user-agent\"]\n",
                "request.headers.user_agent.contains(\"iPhone\")",
            )
        } else {
            ("", "false")
        };
        std::fs::write(
            dir.join("bundle.toml"),
            format!(
                r#"
[bundle]
id = "ua"
version = "1"
{schema}
[placements.device]
default = {{ seen = "none" }}

[[placements.device.experiences]]
id = "mobile"
audience = 'device.type == "mobile"'
requires_visitor_id = false
content = {{ seen = "mobile" }}

[placements.rule]
default = {{ read = false }}

[[placements.rule.experiences]]
id = "reads-ua"
audience = '{rule}'
requires_visitor_id = false
content = {{ read = true }}
"#
            ),
        )
        .unwrap();
        let data = temp_dir(if allow { "ua-allowed" } else { "ua-kept" });
        let s = Server::start(&data, &["--bundle", dir.to_str().unwrap()]);
        let ask = |http_ua: &str, body_ua: Option<&str>| {
            let mut ctx = json!({});
            if let Some(u) = body_ua {
                ctx["headers"] = json!({ "user-agent": u });
            }
            let body = json!({"placements": ["device", "rule"], "context": ctx}).to_string();
            let r = s.request(
                "POST",
                "/v1/decide",
                &[("User-Agent", http_ua)],
                body.as_bytes(),
            );
            assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
            let j = r.json();
            (
                decision(&j, "device")["content"]["seen"].clone(),
                decision(&j, "rule")["content"]["read"].clone(),
            )
        };
        // Twice each: the second answer's device comes from the server's cache.
        for _ in 0..2 {
            assert_eq!(
                ask(iphone, None),
                (json!("mobile"), json!(allow)),
                "allow-listed: {allow}"
            );
            assert_eq!(ask(windows, None), (json!("none"), json!(false)));
            assert_eq!(ask(windows, Some(iphone)), (json!("mobile"), json!(allow)));
            assert_eq!(ask(iphone, Some(windows)), (json!("none"), json!(false)));
        }
    }
}

/// The server caches device detection per User-Agent; two Android apps' web views that share one
/// User-Agent must still be told apart by `X-Requested-With` (it is part of the cache key).
#[test]
fn device_cache_tells_app_web_views_apart() {
    let dir = temp_dir("apps-bundle");
    std::fs::write(
        dir.join("bundle.toml"),
        r#"
[bundle]
id = "apps"
version = "1"

[placements.banner]
default = { in_app = false }

[[placements.banner.experiences]]
id = "shop-app"
audience = 'device.app == "com.example.shop"'
requires_visitor_id = false
content = { in_app = true }
"#,
    )
    .unwrap();
    let data = temp_dir("apps");
    let s = Server::start(&data, &["--bundle", dir.to_str().unwrap()]);
    let ua = "Mozilla/5.0 (Linux; Android 14; Pixel 8 Build/UQ1A.240105.004; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/120.0.6099.193 Mobile Safari/537.36";
    let body = json!({"placements": ["banner"], "explain": true}).to_string();
    let banner = |app: Option<&str>| {
        let mut h = vec![("User-Agent", ua)];
        if let Some(a) = app {
            h.push(("X-Requested-With", a));
        }
        let r = s.request("POST", "/v1/decide", &h, body.as_bytes());
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        decision(&r.json(), "banner")["content"]["in_app"].clone()
    };
    // Each answer is asked twice, so the second one comes from the cache.
    for _ in 0..2 {
        assert_eq!(banner(Some("com.example.shop")), json!(true));
        assert_eq!(banner(Some("com.other.news")), json!(false));
        assert_eq!(banner(None), json!(false));
    }
}
