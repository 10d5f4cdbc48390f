#!/usr/bin/env bash
# tailor-wasm in Node vs the native core, device detection in wasm, module size (see wasm/browser/bench).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build-wasm.sh
cargo build -q --release -p tailor-cli && cargo build -q --release -p tailor --example native_decide
dir=target/bench-data/uas
if [ ! -f "$dir/node_modules/user-agents/dist/user-agents.json" ]; then
  mkdir -p "$dir"
  (cd "$dir" && npm install --no-audit --no-fund --silent user-agents@2.1.198)
fi
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), node $(node --version)"
TAILOR_UA_MIX="$dir/node_modules/user-agents/dist/user-agents.json" node wasm/browser/bench/bench.mjs
