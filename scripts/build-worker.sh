#!/usr/bin/env bash
# Build the Cloudflare Worker (wasm/worker) into wasm/worker/build with worker-build, offline: the pinned
# wasm-bindgen CLI, wasm-opt from npm binaryen and esbuild from npm, so worker-build downloads nothing.
# Installs worker-build, wasm-bindgen and the npm tools (wrangler, Miniflare, Node 22) when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
WB_VERSION=0.2.130
WORKER_BUILD_VERSION=0.8.7
rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
if [[ "$(wasm-bindgen --version 2>/dev/null || true)" != "wasm-bindgen $WB_VERSION" ]]; then
  # No --locked: the CLI's lockfile pins a crate version the registry does not serve.
  cargo install -q wasm-bindgen-cli --version "$WB_VERSION"
fi
if [[ "$(worker-build --version 2>/dev/null || true)" != *"$WORKER_BUILD_VERSION"* ]]; then
  cargo install -q worker-build --version "$WORKER_BUILD_VERSION" --locked
fi
[[ -x node_modules/.bin/wrangler && -x node_modules/.bin/wasm-opt ]] || npm ci --no-audit --no-fund --silent
export WASM_BINDGEN_BIN="$(command -v wasm-bindgen)"
export WASM_OPT_BIN="$PWD/node_modules/.bin/wasm-opt"
export ESBUILD_BIN="$PWD/node_modules/.bin/esbuild"
(cd wasm/worker && worker-build --release)
wasm=wasm/worker/build/index_bg.wasm
ls -l "$wasm" | awk '{printf "worker wasm: %d bytes", $5}'
gzip -9 -c "$wasm" | wc -c | awk '{printf ", %d gzipped\n", $1}'
