#!/usr/bin/env bash
# tailor-wasm in Node vs the native core, device detection in wasm, module size (see wasm/browser/bench).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build-wasm.sh
cargo build -q --release -p tailor-cli && cargo build -q --release -p tailor --example native_decide
source scripts/bench-data.sh
UA_MIX=$(ua_mix)
GEO_DB=$(geolite2_city)
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), node $(node --version)"
TAILOR_GEOIP_DB="$GEO_DB" TAILOR_UA_MIX="$UA_MIX" node wasm/browser/bench/bench.mjs
