// The Worker's budgets, measured in workerd through Miniflare 4 (numbers go to BENCHMARKS.md):
// - size of the worker wasm, raw and gzipped (budget: <= 1 MB gzipped);
// - cold start: workerd up with the module instantiated, then the first decide of a fresh isolate whose
//   bundle sits in KV (KV reads + compiling rules/retail), then the first decide that needs User-Agent
//   parsing (device rules built on first use);
// - CPU time per decide in workerd: `POST /bench/decide?n=N` runs N decides (parse, validate, decide with
//   the cached profile, serialize) inside one request; workerd freezes the clock during execution, so
//   the per-decide figure is (t(N) - t(0)) / N measured outside; the same work natively
//   (examples/native_decide.rs) in the same run gives the ratio.
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { startWorker, buildBundle, admin, root, work } from "../test/harness.mjs";

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const retail = buildBundle("rules/retail");
const request = JSON.parse(readFileSync(join(root, "rules/retail/examples/seoul-mobile.request.json"), "utf8"));
request.placements = ["home_hero"];
const body = JSON.stringify(request);
const profileText = readFileSync(join(root, "rules/retail/examples/big-spender.profile.json"), "utf8");
const snapshot = JSON.parse(profileText);
delete snapshot.visitor_id;
const now = Date.parse("2026-12-03T10:00:00Z");
const iphone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1";

// KV contents of a deployment, to seed cold isolates with.
const seed = startWorker();
await seed.fetch("/v1/bundle", { method: "PUT", body: retail, headers: admin() });
const seedKv = await seed.kv("TAILOR_BUNDLES");
const keys = (await seedKv.list()).keys.map((k) => k.name);
const kvBundles = await Promise.all(keys.map(async (k) => [k, await seedKv.get(k)]));
await seed.dispose();

const cold = { ready_ms: [], first_decide_ms: [], warm_decide_ms: [], first_ua_decide_ms: [] };
for (let r = 0; r < 7; r++) {
  const t0 = performance.now();
  const w = startWorker({ TAILOR_BENCH_ROUTES: "1" });
  await w.mf.ready;
  cold.ready_ms.push(performance.now() - t0);
  const kv = await w.kv("TAILOR_BUNDLES");
  for (const [k, v] of kvBundles) await kv.put(k, v);
  const decide = (init = {}) => w.fetch("/v1/decide", { method: "POST", body, ...init }).then((x) => x.text());
  let t = performance.now();
  await decide();
  cold.first_decide_ms.push(performance.now() - t);
  const warm = [];
  for (let i = 0; i < 50; i++) {
    t = performance.now();
    await decide();
    warm.push(performance.now() - t);
  }
  cold.warm_decide_ms.push(median(warm));
  const noDevice = JSON.stringify({ ...request, context: { ...request.context, device: undefined } });
  t = performance.now();
  await w.fetch("/v1/decide", { method: "POST", body: noDevice, headers: { "user-agent": iphone } }).then((x) => x.text());
  cold.first_ua_decide_ms.push(performance.now() - t);
  await w.dispose();
}

// CPU per decide inside workerd.
const w = startWorker({ TAILOR_BENCH_ROUTES: "1" });
await w.fetch("/v1/bundle", { method: "PUT", body: retail, headers: admin() });
await w.fetch(`/v1/profiles/${request.visitor_id}`, { method: "PUT", body: JSON.stringify(snapshot), headers: admin() });
const N = 20_000;
async function timed(n) {
  const t = performance.now();
  const r = await w.fetch(`/bench/decide?n=${n}&now=${now}`, { method: "POST", body, headers: admin() });
  const out = await r.json();
  if (out.n !== n) throw new Error(JSON.stringify(out));
  return performance.now() - t;
}
await timed(2_000);
const perDecide = [];
for (let r = 0; r < 9; r++) {
  const zero = await timed(0);
  const full = await timed(N);
  perDecide.push(((full - zero) * 1e6) / N);
}
await w.dispose();

const requestFile = join(work, "bench-request.json");
writeFileSync(requestFile, body);
const profileFile = join(work, "bench-profile.json");
writeFileSync(profileFile, JSON.stringify({ ...snapshot, visitor_id: request.visitor_id }));
const artifact = join(work, "bench-retail.json");
writeFileSync(artifact, retail);
const native = JSON.parse(
  execFileSync("cargo", ["run", "-q", "--release", "--example", "native_decide", "--", artifact, requestFile, profileFile, String(now), String(100_000)], { cwd: root, encoding: "utf8" }),
);

const wasm = readFileSync(join(root, "wasm/worker/build/index_bg.wasm"));
const workerdNs = median(perDecide);
const r1 = (x) => +x.toFixed(1);
console.log(JSON.stringify({
  worker_wasm_bytes: wasm.length,
  worker_wasm_gzip_bytes: gzipSync(wasm, { level: 9 }).length,
  cold_start_median_of_7: {
    workerd_ready_ms: r1(median(cold.ready_ms)),
    first_decide_ms: r1(median(cold.first_decide_ms)),
    warm_decide_round_trip_ms: +median(cold.warm_decide_ms).toFixed(2),
    first_decide_with_ua_parsing_ms: r1(median(cold.first_ua_decide_ms)),
  },
  cpu_per_decide: {
    workerd_ns: Math.round(workerdNs),
    native_ns: native.ns_per_call,
    workerd_over_native: +(workerdNs / native.ns_per_call).toFixed(2),
    rounds_ns: perDecide.map(Math.round),
  },
}, null, 2));
