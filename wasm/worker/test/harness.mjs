// Shared set-up for the Worker tests: the built Worker in Miniflare 4 (the real workerd runtime), the
// native `tailor` binary, and bundles built from the repository's sources.
import { Miniflare } from "miniflare";
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync, cpSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

export const root = join(dirname(fileURLToPath(import.meta.url)), "../../..");
export const cli = join(root, "target/release/tailor");
export const work = mkdtempSync(join(tmpdir(), "tailor-worker-"));
export const TOKEN = "test-admin-token-0123456789";
const build = join(root, "wasm/worker/build");

/** A Worker in workerd with fresh KV and Durable Object storage. `vars` override Worker vars.
 * `profileDelayMs` puts workers KV for profiles behind a wrapper that answers reads that much later:
 * a slow store, for the timeout path (the data still comes from real workers KV). */
export function startWorker(vars = {}, { profileDelayMs } = {}) {
  const tailor = {
    name: "tailor",
    modules: true,
    modulesRoot: build,
    scriptPath: join(build, "index.js"),
    modulesRules: [{ type: "CompiledWasm", include: ["**/*.wasm"], fallthrough: true }],
    compatibilityDate: "2026-07-30",
    kvNamespaces: ["TAILOR_BUNDLES", "TAILOR_PROFILES"],
    durableObjects: { TAILOR_VISITORS: "VisitorObject" },
    bindings: { TAILOR_ADMIN_TOKEN: TOKEN, ...vars },
  };
  const workers = [tailor];
  if (profileDelayMs !== undefined) {
    tailor.kvNamespaces = ["TAILOR_BUNDLES"];
    tailor.wrappedBindings = { TAILOR_PROFILES: { scriptName: "slow-kv" } };
    workers.push({
      name: "slow-kv",
      modules: true,
      kvNamespaces: { KV: "TAILOR_PROFILES" },
      script: `
        const pause = () => new Promise((r) => setTimeout(r, ${Number(profileDelayMs)}));
        class SlowKv {
          constructor(kv) { this.kv = kv; }
          async get(k, o) { await pause(); return this.kv.get(k, o); }
          async getWithMetadata(k, o) { await pause(); return this.kv.getWithMetadata(k, o); }
          put(k, v, o) { return this.kv.put(k, v, o); }
          delete(k) { return this.kv.delete(k); }
          list(o) { return this.kv.list(o); }
        }
        export default function (env) { return new SlowKv(env.KV); }`,
    });
  }
  const mf = new Miniflare({ workers, cf: false });
  return {
    mf,
    /** fetch against the Worker; `init.cf` sets `request.cf`. */
    async fetch(path, init = {}) {
      return mf.dispatchFetch(`http://tailor.test${path}`, init);
    },
    kv: (name) => mf.getKVNamespace(name),
    dispose: () => mf.dispose(),
  };
}

/** Build a bundle directory (relative to the repository) into an artifact; returns its bytes. */
export function buildBundle(dir, extra = []) {
  const out = join(work, `${dir.replaceAll("/", "_")}-${Math.random().toString(36).slice(2)}.json`);
  execFileSync(cli, ["build", join(root, dir), "-o", out, ...extra], { stdio: "pipe" });
  return readFileSync(out);
}

/** A copy of rules/retail with one edit to `bundle.toml` (e.g. a new version), built. */
export function retailVariant(edit) {
  const dir = mkdtempSync(join(work, "retail-"));
  cpSync(join(root, "rules/retail"), dir, { recursive: true });
  const meta = join(dir, "bundle.toml");
  writeFileSync(meta, edit(readFileSync(meta, "utf8")));
  const out = join(dir, "artifact.json");
  execFileSync(cli, ["build", dir, "-o", out], { stdio: "pipe" });
  return readFileSync(out);
}

export const admin = (extra = {}) => ({ authorization: `Bearer ${TOKEN}`, ...extra });

/** The native server on a free loopback port, with its own data directory. */
export async function startNative() {
  const data = mkdtempSync(join(work, "data-"));
  const child = spawn(cli, ["serve", "--listen", "127.0.0.1:0", "--data", data, "--admin-token", TOKEN], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  const addr = await new Promise((resolve, reject) => {
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => {
      out += d;
      const m = out.match(/listening on (http:\/\/\S+)/);
      if (m) resolve(m[1]);
    });
    child.stderr.on("data", (d) => (err += d));
    child.on("exit", (code) => reject(new Error(`tailor serve exited ${code}: ${err}`)));
  });
  return {
    async fetch(path, init = {}) {
      return fetch(addr + path, init);
    },
    stop: () => child.kill("SIGTERM"),
  };
}
