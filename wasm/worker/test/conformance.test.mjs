// The conformance corpus through the Worker (workerd) and the native server (`tailor serve`) over HTTP:
// the same bundle, profile and request must give byte-identical decide responses. Both decide as of
// the case's `now` through the admin-only `X-Tailor-Preview-At` header.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { startWorker, startNative, buildBundle, admin, root } from "./harness.mjs";

const worker = startWorker();
const native = await startNative();
after(async () => {
  native.stop();
  await worker.dispose();
});

const UA = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36";

const NO_LOCATION = Object.fromEntries(
  ["country", "regionCode", "city", "postalCode", "latitude", "longitude", "timezone", "continent"].map((k) => [k, null]),
);

async function both(path, init) {
  // Miniflare merges placeholder request.cf values (a US location) into what it is given; the native
  // server has no GeoIP database here, so null them: neither runtime gets a location the request does
  // not state.
  const a = await worker.fetch(path, { ...init, cf: NO_LOCATION });
  const b = await native.fetch(path, init);
  return [{ status: a.status, text: await a.text() }, { status: b.status, text: await b.text() }];
}

const corpus = readdirSync(join(root, "tests/conformance"))
  .filter((f) => f.endsWith(".json"))
  .map((f) => [f, JSON.parse(readFileSync(join(root, "tests/conformance", f), "utf8"))]);

for (const [file, suite] of corpus) {
  test(`conformance ${file}: the Worker answers byte for byte what the native server does`, async () => {
    const artifact = buildBundle(suite.bundle);
    const [dw, dn] = await both("/v1/bundle", { method: "PUT", body: artifact, headers: admin() });
    assert.equal(dw.status, 200, dw.text);
    assert.equal(dn.status, 200, dn.text);
    assert.equal(JSON.parse(dw.text).hash, JSON.parse(dn.text).hash);
    let n = 0;
    for (const c of suite.cases) {
      const request = structuredClone(c.request);
      request.placements ??= Object.keys(c.expect);
      const id = request.visitor_id;
      if (id !== undefined) {
        // Each case states the visitor's whole profile (or none): store exactly that on both.
        if (c.profile !== undefined) {
          const snapshot = structuredClone(c.profile);
          delete snapshot.visitor_id;
          const [pw, pn] = await both(`/v1/profiles/${encodeURIComponent(id)}`, {
            method: "PUT",
            body: JSON.stringify(snapshot),
            headers: admin(),
          });
          assert.equal(pw.status, pn.status, `${c.name}: profile upsert ${pw.text} vs ${pn.text}`);
          assert.equal(pw.status, 200, `${c.name}: ${pw.text}`);
        } else {
          await both(`/v1/profiles/${encodeURIComponent(id)}`, { method: "DELETE", headers: admin() });
        }
      }
      for (const explain of [false, true]) {
        request.explain = explain;
        const [w, nat] = await both("/v1/decide", {
          method: "POST",
          body: JSON.stringify(request),
          headers: admin({ "x-tailor-preview-at": c.now, "user-agent": UA }),
        });
        assert.equal(nat.status, 200, `${c.name}: ${nat.text}`);
        assert.equal(w.status, 200, `${c.name}: ${w.text}`);
        assert.equal(w.text, nat.text, `${c.name} (explain ${explain})`);
        n++;
      }
    }
    assert.ok(n >= 2 * suite.cases.length);
  });
}

test("errors are the same JSON on both runtimes", async () => {
  for (const [path, init] of [
    ["/v1/decide", { method: "POST", body: "{not json" }],
    ["/v1/decide", { method: "POST", body: JSON.stringify({ placements: ["home_hero"], nope: true }) }],
    ["/v1/decide", { method: "POST", body: JSON.stringify({ placements: ["home_hero"] }), headers: { "x-tailor-preview-at": "2026-01-01T00:00:00Z" } }],
    ["/v1/bundle", { method: "PUT", body: "{}" }],
    ["/v1/bundle", { method: "PUT", body: "{}", headers: { authorization: "Bearer wrong" } }],
    ["/v1/profiles/abc", { method: "PUT", body: JSON.stringify({ visitor_id: "xyz" }), headers: admin() }],
    ["/v1/profiles/abc", { method: "PUT", body: JSON.stringify({ traits: [] }), headers: admin() }],
    ["/v1/events", { method: "POST", body: JSON.stringify({ events: [{ type: "purchase" }] }), headers: admin() }],
  ]) {
    const [w, n] = await both(path, init);
    assert.equal(w.status, n.status, `${init.method} ${path}: ${w.text} vs ${n.text}`);
    const [jw, jn] = [JSON.parse(w.text), JSON.parse(n.text)];
    assert.equal(jw.code, jn.code, `${init.method} ${path}`);
    // Parser messages come from the same serde code in the core.
    if (jw.code !== "invalid_request" || !/not valid/.test(jn.message)) assert.equal(jw.message, jn.message);
  }
});
