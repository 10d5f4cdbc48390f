// Browser entry point: `await load()` fetches and instantiates the wasm once, then returns the API.
import init, * as bindings from "../pkg/web/tailor_wasm.js";
import { wrap } from "./tailor.mjs";

let api;

/** Load the module (optionally from a URL, Response or bytes) and return `{Engine, Profile, TailorError, GeoDb, detectDevice}`. */
export async function load(source) {
  if (!api) {
    await init(source === undefined ? undefined : { module_or_path: source });
    api = wrap(bindings);
  }
  return api;
}
