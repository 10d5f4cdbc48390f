// The marketer's playground: every decision is computed in this page by tailor-wasm, from the bundle
// artifact at ../bundle.json (served by `tailor serve --playground`) or a file the marketer picks.
import { load } from "../js/web.mjs";

const $ = (id) => document.getElementById(id);
const DAY = 86_400_000;

// Purchase histories are relative to the chosen `now`, so the presets mean the same thing on any day.
function purchases(now, rows) {
  return rows.map(([daysAgo, category, price, discounted]) => ({
    at: new Date(now - daysAgo * DAY).toISOString(),
    product_id: `sku-${category}-${daysAgo}`,
    category,
    price,
    discounted,
    quantity: 1,
  }));
}

const iphone = { type: "mobile", os: "iOS", os_version: "17.4", browser: "Mobile Safari", browser_version: "17.4", brand: "Apple", model: "iPhone" };
const desktop = { type: "desktop", os: "Windows", os_version: "10", browser: "Chrome", browser_version: "120.0.0" };

const PRESETS = {
  "Mobile visitor in Seoul": (now) => ({
    request: {
      visitor_id: "v-seoul-1",
      context: {
        url: "https://shop.example/",
        headers: { "accept-language": "ko-KR,ko;q=0.9" },
        geo: { country: "KR", region: "11", city: "Seoul", latitude: 37.5665, longitude: 126.978, time_zone: "Asia/Seoul", continent: "AS" },
        device: iphone,
        attributes: { page_type: "home", cart_value: 0 },
      },
    },
    profile: null,
  }),
  "Returning big spender": (now) => ({
    request: {
      visitor_id: "v-big-spender",
      context: {
        url: "https://shop.example/",
        geo: { country: "US", region: "NY", city: "New York", time_zone: "America/New_York", continent: "NA" },
        device: desktop,
        returning: true,
        attributes: { page_type: "home", cart_value: 0 },
      },
    },
    profile: {
      traits: { tier: "gold", lifetime_value: 4210.5 },
      consent: { personalization: true },
      events: { purchases: purchases(now, [[200, "outerwear", 320, false], [90, "shoes", 180, false], [40, "coffee", 24, false], [12, "shoes", 140, false]]) },
    },
  }),
  "Price-sensitive shopper": (now) => ({
    request: {
      visitor_id: "v-bargain",
      context: {
        url: "https://shop.example/",
        geo: { country: "GB", city: "London", time_zone: "Europe/London", continent: "EU" },
        device: desktop,
        attributes: { page_type: "home", cart_value: 0 },
      },
    },
    profile: {
      traits: { tier: "bronze" },
      consent: { personalization: true },
      events: { purchases: purchases(now, [[150, "accessories", 12, true], [80, "shoes", 45, true], [30, "outerwear", 60, true], [5, "coffee", 9, false]]) },
    },
  }),
  "Visitor without consent": (now) => ({
    request: {
      visitor_id: "v-no-consent",
      consent: { personalization: false },
      context: {
        url: "https://shop.example/",
        geo: { country: "DE", city: "Berlin", time_zone: "Europe/Berlin", continent: "EU" },
        device: iphone,
        attributes: { page_type: "home", cart_value: 0 },
      },
    },
    profile: {
      traits: { tier: "gold", lifetime_value: 4210.5 },
      consent: { personalization: false },
      events: { purchases: purchases(now, [[200, "outerwear", 320, false], [90, "shoes", 180, false], [12, "shoes", 140, false]]) },
    },
  }),
};

let api;
let engine;

function nowMs() {
  const v = $("now").value;
  return v ? new Date(v).getTime() : Date.now();
}

function setNow(ms) {
  const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60_000);
  $("now").value = d.toISOString().slice(0, 19);
}

function applyPreset(name) {
  const p = PRESETS[name](nowMs());
  p.request.placements = engine.placements();
  p.request.explain = true;
  $("request").value = JSON.stringify(p.request, null, 2);
  $("profile").value = p.profile ? JSON.stringify(p.profile, null, 2) : "";
  for (const b of $("presets").children) b.setAttribute("aria-pressed", String(b.textContent === name));
  run();
}

function text(tag, content, cls) {
  const el = document.createElement(tag);
  el.textContent = content;
  if (cls) el.className = cls;
  return el;
}

// A content preview from the common fields (title, text, image, cta); the raw JSON otherwise.
function preview(content) {
  const box = document.createElement("div");
  box.className = "preview";
  if (content && typeof content === "object") {
    if (content.image) {
      const img = document.createElement("img");
      img.alt = content.title ?? "";
      img.src = content.image;
      box.append(img);
    }
    for (const k of ["title", "text"]) if (content[k]) box.append(text("div", content[k], k));
    if (content.cta) box.append(text("div", `→ ${content.cta}`, "cta"));
  }
  box.append(text("code", JSON.stringify(content)));
  return box;
}

function renderDecisions(resp) {
  const out = $("decisions");
  out.replaceChildren();
  for (const d of resp.decisions) {
    const card = document.createElement("div");
    card.className = "card";
    card.dataset.placement = d.placement;
    const h = text("h3", d.placement);
    h.append(text("span", d.reason, `reason ${d.reason}`));
    card.append(h);
    const who = d.experience ? `${d.experience} / ${d.variant}` : "default content";
    card.append(text("div", who, "winner"));
    card.append(preview(d.content));
    if (d.trace) {
      const det = document.createElement("details");
      det.append(text("summary", d.trace.summary));
      const ul = document.createElement("ul");
      for (const h of d.trace.holdouts ?? []) ul.append(text("li", `holdout ${h.holdout}: bucket ${h.bucket ?? "–"}, ${h.held_out ? "held out" : "not held out"}`));
      for (const e of d.trace.experiences) {
        const li = text("li", `${e.experience}: `);
        li.append(text("span", e.outcome, "outcome"));
        if (e.detail) li.append(text("div", e.detail));
        ul.append(li);
      }
      det.append(ul);
      card.append(det);
    }
    out.append(card);
  }
  $("notes").textContent = (resp.notes ?? []).join("\n");
}

function inputs() {
  const request = JSON.parse($("request").value);
  const profileText = $("profile").value.trim();
  return { request, profile: profileText ? JSON.parse(profileText) : null };
}

function showError(e) {
  const msg = e.errors?.length ? `${e.message}\n${e.errors.map((d) => `- ${d.message}`).join("\n")}` : e.message;
  $("input-error").textContent = msg;
  $("input-error").hidden = false;
}

function run() {
  $("input-error").hidden = true;
  try {
    const { request, profile } = inputs();
    renderDecisions(engine.decide(request, profile, nowMs()));
    document.body.dataset.ready = "true";
  } catch (e) {
    showError(e);
  }
}

function simulate() {
  try {
    const { request, profile } = inputs();
    const sim = engine.simulate({ ...request, visitor_id: undefined, explain: false }, profile, 10000, nowMs());
    const body = $("simulation").querySelector("tbody");
    body.replaceChildren();
    for (const r of sim.rows) {
      const tr = document.createElement("tr");
      tr.append(text("td", r.placement), text("td", r.experience), text("td", r.variant), text("td", `${(r.share * 100).toFixed(1)} %`, "share"));
      body.append(tr);
    }
  } catch (e) {
    showError(e);
  }
}

function useEngine(e) {
  engine?.free();
  engine = e;
  const b = engine.bundle;
  $("bundle-info").textContent = `bundle ${b.id} ${b.version} (${b.hash.slice(0, 19)}…), placements: ${engine.placements().join(", ")}`;
}

async function main() {
  api = await load();
  setNow(Date.now());
  try {
    const res = await fetch("../bundle.json");
    if (!res.ok) throw new Error(`../bundle.json: HTTP ${res.status}`);
    useEngine(api.Engine.fromBundle(new Uint8Array(await res.arrayBuffer())));
  } catch (e) {
    $("bundle-info").textContent = `no bundle loaded (${e.message}); pick an artifact built with \`tailor build\``;
  }
  for (const name of Object.keys(PRESETS)) {
    const b = text("button", name);
    b.type = "button";
    b.setAttribute("aria-pressed", "false");
    b.addEventListener("click", () => engine && applyPreset(name));
    $("presets").append(b);
  }
  $("bundle-file").addEventListener("change", async (ev) => {
    const f = ev.target.files?.[0];
    if (!f) return;
    try {
      useEngine(api.Engine.fromBundle(new Uint8Array(await f.arrayBuffer())));
      applyPreset(Object.keys(PRESETS)[0]);
    } catch (e) {
      showError(e);
    }
  });
  for (const id of ["request", "profile", "now"]) $(id).addEventListener("input", run);
  $("simulate").addEventListener("click", simulate);
  if (engine) applyPreset(Object.keys(PRESETS)[0]);
}

main();
