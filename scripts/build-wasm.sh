#!/usr/bin/env bash
# Build the tailor-wasm package (wasm/browser): the core for wasm32, wasm-bindgen glue for Node and the
# browser, wasm-opt -Oz. Installs the exact wasm-bindgen CLI the crate pins and binaryen from npm if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
WB_VERSION=0.2.130
rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
if [[ "$(wasm-bindgen --version 2>/dev/null || true)" != "wasm-bindgen $WB_VERSION" ]]; then
  # No --locked: the CLI's lockfile pins a crate version the registry does not serve.
  cargo install -q wasm-bindgen-cli --version "$WB_VERSION"
fi
(cd wasm/browser && { [[ -x node_modules/.bin/wasm-opt ]] || npm ci --no-audit --no-fund --silent; })
cargo build -q --release --target wasm32-unknown-unknown -p tailor-wasm
WASM=target/wasm32-unknown-unknown/release/tailor_wasm.wasm
for target in nodejs web; do
  out=wasm/browser/pkg/${target/nodejs/node}
  rm -rf "$out"
  wasm-bindgen --target "$target" --weak-refs --out-dir "$out" "$WASM"
  wasm/browser/node_modules/.bin/wasm-opt -Oz --enable-bulk-memory --enable-nontrapping-float-to-int \
    --enable-sign-ext --enable-mutable-globals --enable-reference-types --enable-multivalue \
    "$out/tailor_wasm_bg.wasm" -o "$out/tailor_wasm_bg.wasm"
done
# The nodejs glue is CommonJS inside a "type": "module" package.
echo '{"type": "commonjs"}' > wasm/browser/pkg/node/package.json
ls -l wasm/browser/pkg/node/tailor_wasm_bg.wasm | awk '{printf "tailor_wasm_bg.wasm: %d bytes", $5}'
gzip -9 -c wasm/browser/pkg/node/tailor_wasm_bg.wasm | wc -c | awk '{printf ", %d gzipped\n", $1}'
