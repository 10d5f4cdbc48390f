// The tailor-wasm API over the raw wasm-bindgen bindings (shared by the Node and browser entry points).
//
// Plain objects in, plain objects out, the same JSON as the native server. The bundle is compiled once
// and a profile snapshot can be decoded once (`engine.loadProfile`) and reused for every decision.

const encoder = new TextEncoder();

/** An error answered by the engine: `code`, `message` and, for bundles, every diagnostic in `errors`. */
export class TailorError extends Error {
  constructor(body) {
    super(body.message);
    this.name = "TailorError";
    this.code = body.code;
    this.errors = body.errors ?? [];
  }
}

function rethrow(e) {
  if (typeof e === "string") {
    let body;
    try {
      body = JSON.parse(e);
    } catch {
      body = { code: "internal", message: e };
    }
    throw new TailorError(body);
  }
  throw e;
}

function call(f) {
  try {
    return f();
  } catch (e) {
    return rethrow(e);
  }
}

export function wrap(b) {
  /** A profile snapshot decoded for one engine; pass it to `decide` as often as needed. */
  class Profile {
    constructor(handle) {
      this.handle = handle;
    }
    /** Release the wasm memory now (otherwise the garbage collector does it eventually). */
    free() {
      this.handle?.free();
      this.handle = undefined;
    }
  }

  class Engine {
    constructor(handle) {
      this.handle = handle;
      this.bundle = JSON.parse(handle.bundleJson());
    }

    /** Compile a bundle artifact from `tailor build`: JSON text, bytes, or the parsed object. */
    static fromBundle(bundle) {
      let bytes;
      if (bundle instanceof Uint8Array) bytes = bundle;
      else if (bundle instanceof ArrayBuffer) bytes = new Uint8Array(bundle);
      else if (typeof bundle === "string") bytes = encoder.encode(bundle);
      else bytes = encoder.encode(JSON.stringify(bundle));
      return new Engine(call(() => b.Engine.fromBytes(bytes)));
    }

    /** Placement ids in bundle order. */
    placements() {
      return JSON.parse(this.handle.placementsJson());
    }

    /** Decode a profile snapshot (object or JSON text) once, for many decisions. */
    loadProfile(snapshot) {
      const text = typeof snapshot === "string" ? snapshot : JSON.stringify(snapshot);
      return new Profile(call(() => this.handle.decodeProfile(text)));
    }

    /**
     * Decide. `profile`: a `Profile` from `loadProfile`, a snapshot object or JSON text, or nothing.
     * `now`: a Date or Unix milliseconds (default: the current time).
     */
    decide(request, profile, now) {
      const text = typeof request === "string" ? request : JSON.stringify(request);
      const ms = now === undefined ? Date.now() : now instanceof Date ? now.getTime() : Number(now);
      if (profile === undefined || profile === null) {
        return JSON.parse(call(() => this.handle.decideJson(text, ms)));
      }
      if (profile instanceof Profile) {
        return JSON.parse(call(() => this.handle.decideWith(text, profile.handle, ms)));
      }
      const p = this.loadProfile(profile);
      try {
        return JSON.parse(call(() => this.handle.decideWith(text, p.handle, ms)));
      } finally {
        p.free();
      }
    }

    /**
     * Allocation preview: the share of `visitors` synthetic visitors per placement, experience and variant,
     * with this request's context and an optional profile snapshot (object or JSON text).
     */
    simulate(request, profile, visitors = 10000, now) {
      const text = typeof request === "string" ? request : JSON.stringify(request);
      const ms = now === undefined ? Date.now() : now instanceof Date ? now.getTime() : Number(now);
      const p = profile === undefined || profile === null ? undefined : this.loadProfile(profile).handle;
      return JSON.parse(call(() => this.handle.simulateJson(text, p, visitors, ms)));
    }

    /** Release the wasm memory now. */
    free() {
      this.handle?.free();
      this.handle = undefined;
    }
  }

  /** The wire `device` object for a User-Agent and optional Client Hints headers. */
  function detectDevice(userAgent, headers = {}) {
    // No headers: skip serializing and parsing an empty object (the common call).
    let h = "";
    for (const _ in headers) {
      h = JSON.stringify(headers);
      break;
    }
    return JSON.parse(call(() => b.detectDeviceJson(userAgent, h)));
  }

  /** A MaxMind DB (City/Country, GeoLite2, DB-IP) from its bytes; `lookup(ip)` gives the wire `geo` or null. */
  class GeoDb {
    constructor(handle) {
      this.handle = handle;
    }
    static fromBytes(bytes) {
      return new GeoDb(b.GeoDb.fromBytes(bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes)));
    }
    lookup(ip) {
      return JSON.parse(this.handle.lookupJson(ip));
    }
    free() {
      this.handle?.free();
      this.handle = undefined;
    }
  }

  return { Engine, Profile, TailorError, GeoDb, detectDevice };
}
