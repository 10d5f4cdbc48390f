#!/usr/bin/env bash
# Device-detection benchmark on a real traffic mix: installs npm `user-agents` (10,000 real User-Agents with
# market-share weights, BSD-2-Clause) under target/bench-data and runs `cargo bench --bench device`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-data.sh
TAILOR_UA_MIX="$(ua_mix)" cargo bench --bench device -- "$@"
