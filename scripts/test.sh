#!/usr/bin/env bash
# Sets up and runs every test: formatting, lints, unit/integration/property/conformance/server tests, the
# wasm32 build of the core with its purity guard, docs, `tailor check` on every bundle under rules/, the
# tailor-wasm package in Node and headless Chromium, the Cloudflare Worker in workerd, and the fuzz
# targets' build.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "toolchain"
rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt

step "format"
cargo fmt --all -- --check

step "lints (panic-freedom in library code is enforced here)"
cargo clippy --workspace --all-targets -q -- -D warnings

step "tests"
cargo test --workspace --all-targets
cargo test --workspace --doc -q

step "core builds for wasm32-unknown-unknown"
cargo build -q --release --target wasm32-unknown-unknown -p tailor

step "core purity guard: no host bindings, async runtime or randomness in the core's wasm32 tree"
tree=$(cargo tree -p tailor --target wasm32-unknown-unknown -e normal --prefix none)
for banned in wasm-bindgen js-sys web-sys tokio getrandom rand mio; do
  if grep -qE "^$banned v" <<<"$tree"; then
    echo "the core depends on $banned on wasm32; keep it in an adapter" >&2
    exit 1
  fi
done

step "docs"
RUSTDOCFLAGS="-D warnings" cargo doc -q --no-deps -p tailor

step "tailor check rules/*"
cargo build -q --release -p tailor-cli
for b in rules/*/; do
  ./target/release/tailor check "$b"
done

step "tailor-wasm: build for Node and the browser; conformance corpus in Node against the native CLI; the playground in headless Chromium"
bash scripts/build-wasm.sh
if ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null; then
  # The playground test needs a real browser; a missing one must fail CI, never skip the test.
  (apt-get update -q && apt-get install -y -q chromium) >/dev/null || echo "could not install chromium; the playground test will fail" >&2
fi
(cd wasm/browser && node --test test/*.test.mjs)

step "Cloudflare Worker: worker-build, then every route, KV failures and the conformance corpus against the native server, in workerd (Miniflare 4)"
bash scripts/build-worker.sh
# wrangler/Miniflare want Node >= 22: the npm `node` package provides it first on PATH.
(export PATH="$PWD/node_modules/.bin:$PATH" WRANGLER_SEND_METRICS=false CLOUDFLARE_CF_FETCH_ENABLED=false
 node --test wasm/worker/test/*.test.mjs)

step "fuzz targets compile"
cargo build -q --manifest-path fuzz/Cargo.toml --bins

echo
echo "all checks passed"
