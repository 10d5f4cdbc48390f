// tailor-wasm in Node against the native core, in one run (numbers go to BENCHMARKS.md):
// - one decision (retail, one placement, decoded profile handle): wasm calls/s vs native, as a ratio;
// - the boundary alone: a request with no placements (JSON in, JSON out, nothing decided);
// - device detection: rule loading (first call), then the median per User-Agent over the npm
//   `user-agents` mix when TAILOR_UA_MIX points at it (scripts/bench-wasm.sh installs it);
// - module size, raw and gzipped.
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync, mkdtempSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { performance } from "node:perf_hooks";

const root = join(dirname(fileURLToPath(import.meta.url)), "../../..");
const work = mkdtempSync(join(tmpdir(), "tailor-bench-"));
const artifact = join(work, "retail.json");
execFileSync(join(root, "target/release/tailor"), ["build", join(root, "rules/retail"), "-o", artifact], { stdio: "pipe" });

const t0 = performance.now();
const { Engine, GeoDb, detectDevice } = await import("../js/node.mjs");
const loadMs = performance.now() - t0;

const request = JSON.parse(readFileSync(join(root, "rules/retail/examples/seoul-mobile.request.json"), "utf8"));
request.placements = ["home_hero"];
const requestText = JSON.stringify(request);
const requestFile = join(work, "request.json");
writeFileSync(requestFile, requestText);
const profileFile = join(root, "rules/retail/examples/big-spender.profile.json");
const now = Date.parse("2026-12-03T10:00:00Z");

const t1 = performance.now();
const engine = Engine.fromBundle(readFileSync(artifact));
const compileMs = performance.now() - t1;
const profile = engine.loadProfile(readFileSync(profileFile, "utf8"));

function best(n, f) {
  for (let i = 0; i < n / 10; i++) f();
  let b = Infinity;
  for (let r = 0; r < 5; r++) {
    const t = process.hrtime.bigint();
    for (let i = 0; i < n; i++) f();
    b = Math.min(b, Number(process.hrtime.bigint() - t) / n);
  }
  return b;
}

const N = 100_000;
const wasmNs = best(N, () => engine.decide(requestText, profile, now));
const rawNs = best(N, () => engine.handle.decideWith(requestText, profile.handle, now));
const empty = JSON.stringify({ placements: [] });
const boundaryNs = best(N, () => engine.handle.decideJson(empty, now));
const native = JSON.parse(
  execFileSync("cargo", ["run", "-q", "--release", "--example", "native_decide", "--", artifact, requestFile, profileFile, String(now), String(N)], { cwd: root, encoding: "utf8" }),
);

const wasmFile = join(root, "wasm/browser/pkg/node/tailor_wasm_bg.wasm");
const bytes = readFileSync(wasmFile);
const out = {
  module_load_ms: +loadMs.toFixed(1),
  compile_retail_ms: +compileMs.toFixed(2),
  decide_one_placement: {
    wasm_ns: +wasmNs.toFixed(0),
    wasm_raw_strings_ns: +rawNs.toFixed(0),
    native_ns: native.ns_per_call,
    wasm_decisions_per_s: Math.round(1e9 / wasmNs),
    native_decisions_per_s: Math.round(1e9 / native.ns_per_call),
    native_over_wasm: +(wasmNs / native.ns_per_call).toFixed(2),
  },
  boundary_empty_request_ns: +boundaryNs.toFixed(0),
  wasm_bytes: bytes.length,
  wasm_gzip_bytes: gzipSync(bytes, { level: 9 }).length,
};

const ua0 = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1";
const t2 = performance.now();
detectDevice(ua0);
out.device_first_call_ms = +(performance.now() - t2).toFixed(1);
// Cold: a fresh Node process per run (module instantiated, nothing else done), first a common UA, then a
// UA outside the fast path's shapes (loads the uap-core rules and compiles the rules it reaches).
{
  const script = `
    const { performance } = require("node:perf_hooks");
    import(${JSON.stringify(join(root, "wasm/browser/js/node.mjs"))}).then(({ detectDevice }) => {
      let t = performance.now();
      detectDevice(${JSON.stringify(ua0)});
      const fast = performance.now() - t;
      t = performance.now();
      detectDevice("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0");
      console.log(JSON.stringify([fast, performance.now() - t]));
    });`;
  const runs = Array.from({ length: 7 }, () => JSON.parse(execFileSync(process.execPath, ["-e", script], { encoding: "utf8" })));
  const med = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  out.device_cold_process_first_common_ua_ms = +med(runs.map((r) => r[0])).toFixed(1);
  out.device_cold_process_first_uncommon_ua_ms = +med(runs.map((r) => r[1])).toFixed(1);
}
// A UA outside the fast path's shapes: the first one loads the uap-core rules.
const t3 = performance.now();
detectDevice("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0");
out.device_rules_load_first_uncommon_ua_ms = +(performance.now() - t3).toFixed(1);
if (process.env.TAILOR_UA_MIX) {
  // Expanded by weight into a ~10,000-UA sample exactly as benches/device.rs does natively.
  const list = JSON.parse(readFileSync(process.env.TAILOR_UA_MIX, "utf8"));
  const total = list.reduce((a, x) => a + (x.weight ?? 0), 0);
  const mix = list.flatMap((x) => Array(Math.max(1, Math.round(((x.weight ?? 0) / total) * 10_000))).fill(x.userAgent));
  for (const ua of mix) detectDevice(ua); // first pass compiles the rules the mix reaches
  const times = mix.map((ua) => {
    const t = process.hrtime.bigint();
    detectDevice(ua);
    return Number(process.hrtime.bigint() - t);
  });
  times.sort((a, b) => a - b);
  out.device_uas = mix.length;
  out.device_median_ns = times[Math.floor(times.length / 2)];
  out.device_p90_ns = times[Math.floor(times.length * 0.9)];
}
if (process.env.TAILOR_GEOIP_DB) {
  // The native benchmark's address set (benches/geoip.rs): 1,024 addresses from a fixed LCG.
  const ips = [];
  let x = 0x12345678;
  for (let i = 0; i < 1024; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    const a = 1 + ((x >>> 24) % 222);
    const v = ((a << 24) | (x & 0x00ffffff)) >>> 0;
    ips.push([v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255].join("."));
  }
  const t = performance.now();
  const db = GeoDb.fromBytes(readFileSync(process.env.TAILOR_GEOIP_DB));
  out.geoip_open_ms = +(performance.now() - t).toFixed(1);
  let i = 0;
  out.geoip_lookup_ns = +best(200_000, () => db.lookup(ips[(i = (i + 1) % ips.length)])).toFixed(0);
  out.geoip_found = ips.filter((ip) => db.lookup(ip) !== null).length;
}
console.log(JSON.stringify(out, null, 2));
