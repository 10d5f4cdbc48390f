#!/usr/bin/env bash
# The Worker's size, cold start and CPU time per decide in workerd (Miniflare 4), against the native core
# in the same run (see wasm/worker/bench/bench.mjs; figures in BENCHMARKS.md).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build-worker.sh
cargo build -q --release -p tailor-cli && cargo build -q --release -p tailor --example native_decide
export PATH="$PWD/node_modules/.bin:$PATH" WRANGLER_SEND_METRICS=false CLOUDFLARE_CF_FETCH_ENABLED=false
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), node $(node --version)"
node wasm/worker/bench/bench.mjs
