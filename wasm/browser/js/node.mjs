// Node entry point: the wasm-bindgen `nodejs` build, loaded synchronously.
import { createRequire } from "node:module";
import { wrap } from "./tailor.mjs";

const require = createRequire(import.meta.url);
const bindings = require("../pkg/node/tailor_wasm.js");

export const { Engine, Profile, TailorError, GeoDb, detectDevice } = wrap(bindings);
