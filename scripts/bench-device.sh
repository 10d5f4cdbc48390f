#!/usr/bin/env bash
# Device-detection benchmark on a real traffic mix: installs npm `user-agents` (10,000 real User-Agents with
# market-share weights, BSD-2-Clause) under target/bench-data and runs `cargo bench --bench device`.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=target/bench-data/uas
if [ ! -f "$dir/node_modules/user-agents/dist/user-agents.json" ]; then
  mkdir -p "$dir"
  (cd "$dir" && npm install --no-audit --no-fund --silent user-agents@2.1.198)
fi
TAILOR_UA_MIX="$dir/node_modules/user-agents/dist/user-agents.json" cargo bench --bench device -- "$@"
