// The playground end to end: `tailor serve --playground` on loopback, the page in headless Chromium
// (Debian's `chromium`, driven by playwright-core), decisions computed in the page by tailor-wasm.
// A missing Chromium fails this test: CI must install it (scripts/test.sh does).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const root = join(dirname(fileURLToPath(import.meta.url)), "../../..");
let server;
let base;
let browser;
let page;

function chromiumPath() {
  if (process.env.CHROMIUM) return process.env.CHROMIUM;
  try {
    return execFileSync("sh", ["-c", "command -v chromium || command -v chromium-browser"], { encoding: "utf8" }).trim();
  } catch {
    throw new Error("Chromium is required for the playground test (apt-get install chromium)");
  }
}

before(async () => {
  const data = mkdtempSync(join(tmpdir(), "tailor-playground-"));
  server = spawn(join(root, "target/release/tailor"), [
    "serve", "--listen", "127.0.0.1:0", "--data", data, "--bundle", "rules/retail",
    "--playground", "wasm/browser",
  ], { cwd: root, stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, TAILOR_LOG: "warn" } });
  const line = await new Promise((resolve, reject) => {
    createInterface({ input: server.stdout }).once("line", resolve);
    server.once("exit", (code) => reject(new Error(`server exited ${code}`)));
  });
  base = line.replace("listening on ", "").trim();
  browser = await chromium.launch({
    executablePath: chromiumPath(),
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"],
  });
  page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  page.on("pageerror", (e) => console.error("page error:", e));
  await page.goto(`${base}/`);
  await page.waitForSelector("body[data-ready=true]", { timeout: 30_000 });
});

after(async () => {
  await browser?.close();
  server?.kill();
});

async function winner(placement) {
  return page.locator(`.card[data-placement="${placement}"] .winner`).textContent();
}

async function preset(name) {
  await page.getByRole("button", { name }).click();
  await page.waitForFunction((n) => [...document.querySelectorAll("#presets button")].some((b) => b.textContent === n && b.getAttribute("aria-pressed") === "true"), name);
}

test("the page loads the served bundle and decides in the browser", async () => {
  assert.match(await page.locator("#bundle-info").textContent(), /bundle retail 2026\.11\.1/);
  assert.equal(await page.locator(".card").count(), 5);
});

test("presets give the decisions the rules say", async () => {
  await preset("Mobile visitor in Seoul");
  assert.equal(await winner("app_banner"), "app-download-kr-jp / main");
  await preset("Returning big spender");
  assert.equal(await winner("home_hero"), "vip-welcome-back / main");
  await preset("Price-sensitive shopper");
  assert.equal(await winner("promo_strip"), "price-sensitive-coupon / main");
  await preset("Visitor without consent");
  assert.notEqual(await winner("home_hero"), "vip-welcome-back / main");
  const trace = await page.locator('.card[data-placement="home_hero"] details').textContent();
  assert.match(trace, /vip-welcome-back: consent_required/);
  // The content preview renders the variant's content.
  await preset("Returning big spender");
  assert.match(await page.locator('.card[data-placement="home_hero"] .preview').textContent(), /VIP early access/);
});

test("editing the profile re-decides; invalid JSON shows an error and keeps the last decisions", async () => {
  await preset("Returning big spender");
  await page.locator("#profile").fill("");
  await page.locator("#profile").dispatchEvent("input");
  assert.notEqual(await winner("home_hero"), "vip-welcome-back / main");
  await page.locator("#request").fill("{ not json");
  await page.locator("#request").dispatchEvent("input");
  assert.equal(await page.locator("#input-error").isVisible(), true);
  await preset("Returning big spender");
  assert.equal(await page.locator("#input-error").isVisible(), false);
});

test("the allocation preview shows the A/B split", async () => {
  await preset("Mobile visitor in Seoul");
  await page.getByRole("button", { name: "Simulate" }).click();
  const rows = page.locator("#simulation tbody tr");
  await rows.first().waitFor();
  const text = await page.locator("#simulation").textContent();
  assert.match(text, /recs-layout-test/);
  const shares = await page.locator("#simulation tbody tr").evaluateAll((trs) =>
    trs.filter((tr) => tr.children[0].textContent === "product_recs").map((tr) => parseFloat(tr.children[3].textContent)));
  const total = shares.reduce((a, b) => a + b, 0);
  assert.ok(Math.abs(total - 100) < 0.5, `product_recs shares sum to ${total}`);
  mkdirSync(join(root, "target"), { recursive: true });
  await page.screenshot({ path: join(root, "target/playground.png"), fullPage: true });
});
