// The Cloudflare Worker in workerd (Miniflare 4): every route, auth, deploy with atomic swap, rollback,
// bad bundles, KV failures, profiles through the visitor Durable Object, request.cf geo, device
// detection, frequency caps.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { startWorker, buildBundle, retailVariant, admin, root } from "./harness.mjs";

// Re-read the bundle pointer on every request, so KV changes made by a test show at once.
const w = startWorker({ TAILOR_BUNDLE_REFRESH_MS: "0" });
after(() => w.dispose());

const retail = buildBundle("rules/retail");
const retailHash = JSON.parse(retail).content_hash;
const retail2 = retailVariant((t) => t.replace(/^version = ".*"$/m, 'version = "2.0.0-test"').replace(
  /^description = ".*"$/m, 'description = "second deployment"'));
const retail2Hash = JSON.parse(retail2).content_hash;
const seoul = JSON.parse(readFileSync(join(root, "rules/retail/examples/seoul-mobile.request.json"), "utf8"));
const bigSpender = JSON.parse(readFileSync(join(root, "rules/retail/examples/big-spender.profile.json"), "utf8"));
delete bigSpender.visitor_id;

const json = async (r) => ({ status: r.status, body: await r.json(), headers: r.headers });
const decide = (req, init = {}) =>
  w.fetch("/v1/decide", { method: "POST", body: JSON.stringify(req), ...init }).then(json);
const put = (path, body, headers = admin()) =>
  w.fetch(path, { method: "PUT", body, headers }).then(json);
const post = (path, body, headers = admin()) =>
  w.fetch(path, { method: "POST", body: body === undefined ? undefined : JSON.stringify(body), headers }).then(json);

test("before any deploy: decide is 503 no_bundle, GET /v1/bundle 404, healthz says so", async () => {
  let r = await decide(seoul);
  assert.equal(r.status, 503);
  assert.equal(r.body.code, "no_bundle");
  r = await w.fetch("/v1/bundle", { headers: admin() }).then(json);
  assert.equal(r.status, 404);
  r = await w.fetch("/healthz").then(json);
  assert.equal(r.body.status, "no_bundle");
});

test("auth: admin routes need the bearer token; wrong token 403; no token 401", async () => {
  for (const [method, path] of [["PUT", "/v1/bundle"], ["GET", "/v1/bundle"], ["POST", "/v1/bundle/rollback"],
    ["PUT", "/v1/profiles/a"], ["GET", "/v1/profiles/a"], ["DELETE", "/v1/profiles/a"], ["POST", "/v1/events"]]) {
    let r = await w.fetch(path, { method, body: method === "GET" || method === "DELETE" ? undefined : "{}" });
    assert.equal(r.status, 401, `${method} ${path}`);
    assert.equal((await r.json()).code, "unauthorized");
    r = await w.fetch(path, { method, headers: { authorization: "Bearer nope" }, body: method === "GET" || method === "DELETE" ? undefined : "{}" });
    assert.equal(r.status, 403, `${method} ${path}`);
    assert.equal((await r.json()).code, "forbidden");
  }
  // Without a configured token the admin routes are off, whatever the caller sends.
  const bare = startWorker({ TAILOR_ADMIN_TOKEN: "" });
  try {
    const r = await bare.fetch("/v1/bundle", { method: "PUT", body: retail, headers: admin() });
    assert.equal(r.status, 403);
    assert.match((await r.json()).message, /disabled/);
  } finally {
    await bare.dispose();
  }
});

test("a bad bundle is refused with every error listed (422)", async () => {
  const bad = JSON.parse(retail);
  bad.definitions.placements[0].experiences[0].audience = "segment.no_such_segment && nope.x";
  const r = await put("/v1/bundle", JSON.stringify(bad));
  assert.equal(r.status, 422);
  assert.equal(r.body.code, "invalid_bundle");
  assert.ok(r.body.errors.length >= 1, JSON.stringify(r.body));
  const n = await put("/v1/bundle", "not json at all");
  assert.equal(n.status, 422);
  assert.equal(await w.kv("TAILOR_BUNDLES").then((kv) => kv.get("active")), null);
});

test("deploy, decide, GET /v1/bundle, healthz; versioned keys plus an active pointer in KV", async () => {
  const d = await put("/v1/bundle", retail);
  assert.equal(d.status, 200, JSON.stringify(d.body));
  assert.equal(d.body.hash, retailHash);
  assert.equal(d.body.deployment, 1);
  assert.equal(d.body.signature_verified, false);
  const r = await decide(seoul);
  assert.equal(r.status, 200);
  assert.equal(r.body.bundle.hash, retailHash);
  assert.equal(r.body.decisions[0].placement, "home_hero");
  assert.equal(r.body.decisions[0].experience, "gangnam-store");
  const g = await w.fetch("/v1/bundle", { headers: admin() }).then(json);
  assert.deepEqual(g.body, d.body);
  const h = await w.fetch("/healthz").then(json);
  assert.equal(h.body.status, "ok");
  const kv = await w.kv("TAILOR_BUNDLES");
  assert.equal(JSON.parse(await kv.get("active")).current.hash, retailHash);
  assert.equal(JSON.parse(await kv.get(`bundles/${retailHash}`)).content_hash, retailHash);
});

test("a bad deploy leaves the serving bundle alone", async () => {
  const r = await put("/v1/bundle", '{"format":1}');
  assert.equal(r.status, 422);
  assert.equal((await decide(seoul)).body.bundle.hash, retailHash);
});

test("atomic swap: decisions in flight during a deploy come wholly from one bundle", async () => {
  const inflight = Array.from({ length: 40 }, () => decide(seoul));
  const d = put("/v1/bundle", retail2);
  const more = Array.from({ length: 40 }, () => decide(seoul));
  const all = await Promise.all([...inflight, ...more]);
  assert.equal((await d).status, 200);
  for (const r of all) {
    assert.equal(r.status, 200);
    assert.ok([retailHash, retail2Hash].includes(r.body.bundle.hash));
    assert.equal(r.body.bundle.version, r.body.bundle.hash === retailHash ? JSON.parse(retail).version : "2.0.0-test");
  }
  const after = await decide(seoul);
  assert.equal(after.body.bundle.hash, retail2Hash);
  assert.equal(after.body.bundle.version, "2.0.0-test");
  const g = await w.fetch("/v1/bundle", { headers: admin() }).then(json);
  assert.equal(g.body.deployment, 2);
});

test("rollback activates the previous deployment; with none left it is 409", async () => {
  const r = await post("/v1/bundle/rollback");
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.hash, retailHash);
  assert.equal(r.body.deployment, 1);
  assert.equal((await decide(seoul)).body.bundle.hash, retailHash);
  const again = await post("/v1/bundle/rollback");
  assert.equal(again.status, 409);
  assert.equal(again.body.code, "no_previous_bundle");
});

test("KV failure: an unreadable pointer or missing artifact keeps the last good bundle serving", async () => {
  const kv = await w.kv("TAILOR_BUNDLES");
  const good = await kv.get("active");
  try {
    await kv.put("active", "{ this is not a pointer");
    let r = await decide(seoul);
    assert.equal(r.status, 200);
    assert.equal(r.body.bundle.hash, retailHash);
    let h = await w.fetch("/healthz").then(json);
    assert.equal(h.body.status, "degraded");
    assert.match(h.body.stale, /pointer/);
    const p = JSON.parse(good);
    p.current.hash = "sha256:" + "0".repeat(64);
    await kv.put("active", JSON.stringify(p));
    r = await decide(seoul);
    assert.equal(r.status, 200);
    assert.equal(r.body.bundle.hash, retailHash);
    h = await w.fetch("/healthz").then(json);
    assert.match(h.body.stale, /missing/);
  } finally {
    await kv.put("active", good);
  }
  assert.equal((await w.fetch("/healthz").then(json)).body.status, "ok");
  // A fresh isolate with nothing good to fall back on says so instead of guessing.
  const cold = startWorker();
  try {
    await (await cold.kv("TAILOR_BUNDLES")).put("active", "garbage");
    const r = await cold.fetch("/v1/decide", { method: "POST", body: JSON.stringify(seoul) }).then(json);
    assert.equal(r.status, 503);
    assert.equal(r.body.code, "unavailable");
  } finally {
    await cold.dispose();
  }
});

test("profiles: PUT, GET, decide reads it, events append, DELETE erases (KV envelope and object)", async () => {
  const id = "v-20261124-0042";
  let r = await put(`/v1/profiles/${id}`, JSON.stringify(bigSpender));
  assert.equal(r.status, 200, JSON.stringify(r.body));
  r = await w.fetch(`/v1/profiles/${id}`, { headers: admin() }).then(json);
  assert.equal(r.status, 200);
  assert.equal(r.body.visitor_id, id);
  assert.deepEqual(r.body.traits, bigSpender.traits);
  const kv = await w.kv("TAILOR_PROFILES");
  assert.equal(JSON.parse(await kv.get(`v/${id}`)).snapshot.visitor_id, id);

  const hero = async () => (await decide({ ...seoul, explain: true })).body.decisions[0];
  assert.equal((await hero()).experience, "vip-welcome-back");

  // A visitor without history is not a VIP; three purchases worth $600 later the rules say they are.
  const fresh = "v-new-buyer";
  const vip = async () =>
    (await decide({ ...seoul, visitor_id: fresh, consent: { personalization: true } })).body.decisions[0].experience;
  assert.equal(await vip(), "gangnam-store");
  const buy = (day, price) => ({ visitor_id: fresh, type: "purchase", at: `2026-11-${day}T10:00:00Z`, product_id: `sku-${day}`, category: "shoes", price, quantity: 1 });
  r = await post("/v1/events", {
    events: [buy("01", 250), buy("10", 200), { visitor_id: "someone-else", type: "view", product_id: "sku-9" }, buy("05", 150)],
  });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.deepEqual(r.body, { accepted: 4, visitors: 2 });
  const stored = (await w.fetch(`/v1/profiles/${fresh}`, { headers: admin() }).then(json)).body;
  // Kept oldest first, whatever the arrival order.
  assert.deepEqual(stored.events.purchases.map((p) => p.price), [250, 150, 200]);
  assert.equal(stored.events.purchases[0].at, "2026-11-01T10:00:00Z");
  const other = (await w.fetch("/v1/profiles/someone-else", { headers: admin() }).then(json)).body;
  assert.equal(other.events.views.length, 1);
  assert.equal(other.events.purchases, undefined);
  // Read-your-writes in this isolate: the very next decide sees the purchases.
  assert.equal(await vip(), "vip-welcome-back");

  r = await w.fetch(`/v1/profiles/${id}`, { method: "DELETE", headers: admin() }).then(json);
  assert.deepEqual(r.body, { visitor_id: id, deleted: true });
  assert.equal(await kv.get(`v/${id}`), null);
  r = await w.fetch(`/v1/profiles/${id}`, { headers: admin() }).then(json);
  assert.equal(r.status, 404);
  assert.notEqual((await hero()).experience, "vip-welcome-back");
});

test("profile and event validation: 400 and 413, nothing written", async () => {
  let r = await put("/v1/profiles/x1", JSON.stringify({ visitor_id: "someone-else" }));
  assert.equal(r.status, 400);
  assert.equal(r.body.code, "invalid_profile");
  r = await put("/v1/profiles/x1", JSON.stringify({ traits: { note: "y".repeat(70_000) } }));
  assert.equal(r.status, 413);
  r = await post("/v1/events", { events: [{ visitor_id: "x1", type: "view" }, { type: "purchase" }] });
  assert.equal(r.status, 400);
  assert.equal(r.body.code, "invalid_event");
  assert.match(r.body.message, /event 1/);
  assert.equal((await w.fetch("/v1/profiles/x1", { headers: admin() })).status, 404);
  r = await post("/v1/events", { events: Array.from({ length: 1001 }, () => ({ visitor_id: "x1", type: "view" })) });
  assert.equal(r.status, 413);
  const big = await w.fetch("/v1/decide", { method: "POST", body: "x".repeat((1 << 20) + 1) });
  assert.equal(big.status, 413);
  const bad = await decide({ placements: ["home_hero"], bogus: 1 });
  assert.equal(bad.status, 400);
  assert.equal(bad.body.code, "invalid_request");
});

test("an unreadable stored profile gives a context-only decision that says so", async () => {
  const kv = await w.kv("TAILOR_PROFILES");
  await kv.put("v/v-broken", "{not an envelope");
  const r = await decide({ ...seoul, visitor_id: "v-broken" });
  assert.equal(r.status, 200);
  assert.equal(r.body.decisions[0].experience, "gangnam-store");
  assert.ok(r.body.notes.some((n) => /not readable.*context-only/.test(n)), JSON.stringify(r.body.notes));
});

test("a profile store slower than TAILOR_PROFILE_TIMEOUT_MS gives a context-only decision", async () => {
  const slow = startWorker({ TAILOR_PROFILE_TIMEOUT_MS: "50" }, { profileDelayMs: 400 });
  try {
    assert.equal((await slow.fetch("/v1/bundle", { method: "PUT", body: retail, headers: admin() })).status, 200);
    assert.equal((await slow.fetch(`/v1/profiles/${seoul.visitor_id}`, { method: "PUT", body: JSON.stringify(bigSpender), headers: admin() })).status, 200);
    // The writing isolate has the profile in its cache; a cold read elsewhere waits for the store.
    const cold = { ...seoul, visitor_id: "v-cold" };
    const t0 = Date.now();
    const r = await slow.fetch("/v1/decide", { method: "POST", body: JSON.stringify({ ...cold, explain: true }) }).then(json);
    assert.ok(Date.now() - t0 < 400, "decide waited for the slow store");
    // The trace of each decision says so too.
    assert.match(r.body.decisions[0].trace.summary, /Note: the profile store did not answer within 50 ms/);
    assert.equal(r.status, 200);
    assert.equal(r.body.decisions[0].experience, "gangnam-store");
    assert.ok((r.body.notes ?? []).some((n) => /did not answer within 50 ms; decided with context-only rules/.test(n)),
      JSON.stringify(r.body.notes));
    // The warm visitor still decides with the profile.
    const warm = await slow.fetch("/v1/decide", { method: "POST", body: JSON.stringify(seoul) }).then(json);
    assert.equal(warm.body.decisions[0].experience, "vip-welcome-back");
  } finally {
    await slow.dispose();
  }
});

test("geo from request.cf and device from the User-Agent header", async () => {
  const req = { visitor_id: "v-cf", placements: ["home_hero", "app_banner"], explain: true };
  const iphone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1";
  const cf = { country: "KR", regionCode: "11", city: "Seoul", latitude: "37.4985", longitude: "127.0280", timezone: "Asia/Seoul", continent: "AS" };
  let r = await decide(req, { cf, headers: { "user-agent": iphone } });
  assert.equal(r.status, 200);
  assert.equal(r.body.decisions[0].experience, "gangnam-store");
  // The same visitor from Osaka on the same phone.
  r = await decide(req, { cf: { ...cf, country: "JP", regionCode: "27", city: "Osaka", latitude: "34.69", longitude: "135.50", timezone: "Asia/Tokyo" }, headers: { "user-agent": iphone } });
  assert.equal(r.body.decisions[0].experience, "osaka-hero");
  // Body geo wins over request.cf (a caller that already knows the location).
  r = await decide({ ...req, context: { geo: { country: "JP", city: "Osaka" } } }, { cf });
  assert.equal(r.body.decisions[0].experience, "osaka-hero");
  // Device detection feeds device.* rules: the app banner targets mobile visitors.
  const desktop = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";
  const onPhone = await decide(req, { cf, headers: { "user-agent": iphone } });
  const onDesk = await decide(req, { cf, headers: { "user-agent": desktop } });
  assert.notDeepEqual(onPhone.body.decisions[1], onDesk.body.decisions[1]);
});

test("frequency caps are counted per visitor, in the isolate and durably in the visitor object", async () => {
  const id = "v-capped";
  assert.equal((await put(`/v1/profiles/${id}`, JSON.stringify(bigSpender))).status, 200);
  const req = { ...seoul, visitor_id: id, placements: ["home_hero"] };
  // The snapshot already counts bigSpender.exposures["vip-welcome-back"] serves elsewhere; the cap is 20.
  const left = 20 - bigSpender.exposures["vip-welcome-back"];
  assert.ok(left > 1);
  for (let i = 0; i < left; i++) {
    assert.equal((await decide(req)).body.decisions[0].experience, "vip-welcome-back", `serve ${i + 1}`);
  }
  const capped = await decide({ ...req, explain: true });
  assert.equal(capped.body.decisions[0].experience, "gangnam-store");
  assert.equal(capped.body.decisions[0].trace.experiences[0].outcome, "frequency_capped");
  // Persisted after the responses (waitUntil): the envelope in KV carries the count.
  let counts;
  for (let i = 0; i < 50; i++) {
    counts = JSON.parse(await (await w.kv("TAILOR_PROFILES")).get(`v/${id}`)).counts;
    if (counts["vip-welcome-back"] >= left) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.equal(counts["vip-welcome-back"], left, JSON.stringify(counts));
  // A snapshot upsert from a CDP keeps the counts (they live beside the snapshot).
  assert.equal((await put(`/v1/profiles/${id}`, JSON.stringify(bigSpender))).status, 200);
  assert.equal((await decide(req)).body.decisions[0].experience, "gangnam-store");
});

test("preview time needs the admin token and has no side effects", async () => {
  const r = await decide(seoul, { headers: { "x-tailor-preview-at": "2027-01-01T00:00:00Z" } });
  assert.equal(r.status, 403);
  const bad = await decide(seoul, { headers: admin({ "x-tailor-preview-at": "tomorrow" }) });
  assert.equal(bad.status, 400);
  const ok = await decide(seoul, { headers: admin({ "x-tailor-preview-at": "2026-12-03T10:00:00Z" }) });
  assert.equal(ok.status, 200);
});

test("unknown routes 404, wrong methods 405", async () => {
  assert.equal((await w.fetch("/nope")).status, 404);
  const r = await w.fetch("/v1/decide");
  assert.equal(r.status, 405);
  assert.equal((await r.json()).code, "method_not_allowed");
});

test("the isolate's profile cache stays within TAILOR_PROFILE_CACHE_BYTES", async () => {
  const small = startWorker({ TAILOR_PROFILE_CACHE_BYTES: "30000" });
  try {
    assert.equal((await small.fetch("/v1/bundle", { method: "PUT", body: retail, headers: admin() })).status, 200);
    for (let i = 0; i < 8; i++) {
      const r = await small.fetch(`/v1/profiles/v-${i}`, { method: "PUT", body: JSON.stringify(bigSpender), headers: admin() });
      assert.equal(r.status, 200);
    }
    const h = await small.fetch("/healthz").then(json);
    assert.ok(h.body.profiles_cached >= 1 && h.body.profiles_cached < 8, JSON.stringify(h.body));
    assert.ok(h.body.profiles_cached_bytes <= 30000, JSON.stringify(h.body));
    // Evicted visitors are read back from KV.
    const r = await small.fetch("/v1/decide", { method: "POST", body: JSON.stringify({ ...seoul, visitor_id: "v-0" }) }).then(json);
    assert.equal(r.body.decisions[0].experience, "vip-welcome-back");
  } finally {
    await small.dispose();
  }
});

test("CORS: allowed origins get the headers and preflights, others nothing", async () => {
  const c = startWorker({ TAILOR_CORS_ORIGINS: "https://shop.example" });
  try {
    const pre = (origin) => c.fetch("/v1/decide", {
      method: "OPTIONS",
      headers: { origin, "access-control-request-method": "POST", "access-control-request-headers": "content-type" },
    });
    const ok = await pre("https://shop.example");
    assert.equal(ok.status, 204);
    assert.equal(ok.headers.get("access-control-allow-origin"), "https://shop.example");
    assert.match(ok.headers.get("access-control-allow-methods"), /POST/);
    const no = await pre("https://evil.example");
    assert.equal(no.headers.get("access-control-allow-origin"), null);
    const r = await c.fetch("/healthz", { headers: { origin: "https://shop.example" } });
    assert.equal(r.headers.get("access-control-allow-origin"), "https://shop.example");
    assert.equal(r.headers.get("content-type"), "application/json");
    await r.arrayBuffer();
  } finally {
    await c.dispose();
  }
});

test("a deploy over an unparseable pointer starts a fresh history", async () => {
  const f = startWorker();
  try {
    await (await f.kv("TAILOR_BUNDLES")).put("active", "{ broken");
    const d = await f.fetch("/v1/bundle", { method: "PUT", body: retail, headers: admin() }).then(json);
    assert.equal(d.status, 200, JSON.stringify(d.body));
    assert.equal(d.body.deployment, 1);
    const r = await f.fetch("/v1/bundle/rollback", { method: "POST", headers: admin() }).then(json);
    assert.equal(r.status, 409);
  } finally {
    await f.dispose();
  }
});
