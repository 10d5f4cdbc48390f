// tailor-wasm in Node against the native CLI: the conformance corpus must give the same JSON in both
// runtimes, and meet the corpus's own expectations.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { Engine, TailorError, GeoDb, detectDevice } from "../js/node.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "../../..");
const cli = join(root, "target/release/tailor");
const work = mkdtempSync(join(tmpdir(), "tailor-wasm-"));

function build(bundleDir) {
  const out = join(work, bundleDir.replaceAll("/", "_") + ".json");
  execFileSync(cli, ["build", join(root, bundleDir), "-o", out], { stdio: "pipe" });
  return out;
}

function native(artifact, request, profile, now) {
  const req = join(work, "req.json");
  writeFileSync(req, JSON.stringify(request));
  const args = ["decide", "--bundle", artifact, "--request", req, "--now", now];
  if (profile !== undefined) {
    const p = join(work, "profile.json");
    writeFileSync(p, JSON.stringify(profile));
    args.push("--profile", p);
  }
  return JSON.parse(execFileSync(cli, args, { encoding: "utf8" }));
}

const corpus = readdirSync(join(root, "tests/conformance"))
  .filter((f) => f.endsWith(".json"))
  .map((f) => [f, JSON.parse(readFileSync(join(root, "tests/conformance", f), "utf8"))]);

for (const [file, suite] of corpus) {
  test(`conformance ${file}: wasm = native, and expectations hold`, () => {
    const artifact = build(suite.bundle);
    const engine = Engine.fromBundle(readFileSync(artifact));
    let n = 0;
    for (const c of suite.cases) {
      const request = structuredClone(c.request);
      request.placements ??= Object.keys(c.expect);
      for (const explain of [false, true]) {
        request.explain = explain;
        const now = Date.parse(c.now);
        const wasm = engine.decide(request, c.profile, now);
        assert.deepEqual(wasm, native(artifact, request, c.profile, c.now), `${c.name} (explain ${explain})`);
        for (const [placement, want] of Object.entries(c.expect)) {
          const d = wasm.decisions.find((x) => x.placement === placement);
          if (want === null) assert.equal(d.reason, "default", `${c.name}: ${placement}`);
          else if (typeof want === "string") assert.equal(d.experience, want, `${c.name}: ${placement}`);
          else for (const [k, v] of Object.entries(want)) assert.deepEqual(d[k], v, `${c.name}: ${placement}.${k}`);
        }
        n++;
      }
    }
    assert.ok(n > 0);
  });
}

test("a decoded profile handle gives the same answers as a snapshot object", () => {
  const engine = Engine.fromBundle(readFileSync(build("rules/retail")));
  const request = JSON.parse(readFileSync(join(root, "rules/retail/examples/seoul-mobile.request.json"), "utf8"));
  const snapshot = JSON.parse(readFileSync(join(root, "rules/retail/examples/big-spender.profile.json"), "utf8"));
  const handle = engine.loadProfile(snapshot);
  const now = new Date("2026-12-03T10:00:00Z");
  const a = engine.decide(request, handle, now);
  const b = engine.decide(request, snapshot, now);
  assert.deepEqual(a, b);
  assert.equal(a.decisions[0].experience, "vip-welcome-back");
  // Without the profile the VIP experience cannot match.
  assert.notEqual(engine.decide(request, null, now).decisions[0].experience, "vip-welcome-back");
  handle.free();
  const artifact = JSON.parse(readFileSync(build("rules/retail"), "utf8"));
  assert.deepEqual(engine.placements(), artifact.definitions.placements.map((p) => p.id));
  assert.ok(engine.placements().includes("home_hero"));
  assert.equal(engine.bundle.id, "retail");
});

test("errors are TailorError with codes and every diagnostic", () => {
  assert.throws(() => Engine.fromBundle("{}"), (e) => e instanceof TailorError && e.code === "invalid_bundle" && e.errors.length > 0);
  const artifact = JSON.parse(readFileSync(build("rules/retail"), "utf8"));
  artifact.definitions.segments[0].when = "geo.contry == 1";
  assert.throws(() => Engine.fromBundle(artifact), (e) => e.code === "invalid_bundle" && e.errors.some((d) => d.code === "hash-mismatch"));
  const engine = Engine.fromBundle(readFileSync(build("rules/retail")));
  assert.throws(() => engine.decide("{not json"), (e) => e instanceof TailorError && e.code === "invalid_request");
  assert.throws(() => engine.decide({ placements: [], bogus: 1 }), (e) => e.code === "invalid_request");
  assert.throws(() => engine.loadProfile("[1,2]"), (e) => e.code === "invalid_profile");
});

test("device detection in wasm matches the native CLI", () => {
  const uas = [
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
  ];
  for (const ua of uas) {
    // `tailor device --json` prints the detailed record; `detectDevice` returns the wire form rules see.
    const line = execFileSync(cli, ["device", "--json"], { input: JSON.stringify({ user_agent: ua }) + "\n", encoding: "utf8" });
    const full = JSON.parse(line);
    const d = detectDevice(ua);
    assert.equal(d.type, full.type, ua);
    assert.equal(d.is_bot, full.is_bot, ua);
    if (full.os.family !== "Other") assert.equal(d.os, full.os.family, ua);
    if (full.browser.family !== "Other") assert.equal(d.browser, full.browser.family, ua);
  }
  assert.equal(detectDevice(uas[0]).os, "iOS");
});

test("GeoIP in wasm matches the native CLI on MaxMind's test City database", () => {
  const dbPath = join(root, "tests/data/maxmind/test-data/GeoIP2-City-Test.mmdb");
  const db = GeoDb.fromBytes(readFileSync(dbPath));
  const ips = ["81.2.69.142", "175.16.199.0", "2001:218::", "216.160.83.56", "10.0.0.1"];
  const lines = execFileSync(cli, ["geo", "--db", dbPath], { input: ips.join("\n") + "\n", encoding: "utf8" })
    .trim().split("\n").map((l) => JSON.parse(l));
  let found = 0;
  ips.forEach((ip, i) => {
    const w = db.lookup(ip);
    const n = lines[i];
    if (n.found === false) assert.equal(w, null, ip);
    else {
      delete n.ip;
      assert.deepEqual(w, n, ip);
      found++;
    }
  });
  assert.ok(found >= 3, `${found}`);
  assert.equal(db.lookup("81.2.69.142").city, "London");
  assert.throws(() => db.lookup("not an ip"));
  assert.throws(() => GeoDb.fromBytes(new Uint8Array([1, 2, 3])));
});
