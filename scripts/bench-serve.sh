#!/usr/bin/env bash
# Load benchmark of `tailor serve` on loopback with wrk (Debian package `wrk`).
#
#   scripts/bench-serve.sh            decide vs a static JSON route on the same server, same run
#   scripts/bench-serve.sh --million  memory with 1,000,000 stored profiles and a bounded cache
#   scripts/bench-serve.sh --ab OLD   this tree's server against another build (OLD: a `tailor` binary),
#                                     alternating, three rounds of decide then static, each server on a
#                                     fresh copy of the same data
#   scripts/bench-serve.sh --pairs N  N alternating pairs of decide and static runs (DURATION each) on
#                                     one server: each pair's ratio, the median ratio and p99s
#
# Env: DURATION (default 20s), CONNECTIONS (64), THREADS (2); PIN=1 pins the server to CPU 0 and wrk to
# CPU 1 (one wrk thread), so the two do not compete for the same core. SERVER_BIN: another `tailor`
# binary to measure instead of this tree's release build.
# LOADGEN_POLICY (default batch): the scheduling policy wrk runs under. `batch` (chrt -b 0, SCHED_BATCH)
# keeps the load generator from preempting the server each time an answer wakes one of its threads;
# `normal` is the default policy. On this loopback set-up the two share two cores, and under `normal` a
# woken wrk thread preempts the server worker that just wrote (perf: ~15 % of server samples in the
# context switch after writev, ~13 % in the wake-up), so the server answers one connection per time slice
# instead of every ready one; a load generator on another machine cannot do that. BENCHMARKS.md has
# both policies side by side.
set -euo pipefail
cd "$(dirname "$0")/.."
type -P wrk >/dev/null || { echo "wrk is required: apt-get install wrk" >&2; exit 1; }
DURATION=${DURATION:-20s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
SRV=(); GEN=()
if [[ ${PIN:-0} == 1 ]]; then SRV=(taskset -c 0); GEN=(taskset -c 1); THREADS=1; fi
LOADGEN_POLICY=${LOADGEN_POLICY:-batch}
case $LOADGEN_POLICY in
  batch) GEN=(chrt -b 0 "${GEN[@]}") ;;
  normal) ;;
  *) echo "LOADGEN_POLICY must be batch or normal" >&2; exit 1 ;;
esac
WRK=$(type -P wrk)
wrk() { "${GEN[@]}" "$WRK" "$@"; }
cargo build -q --release -p tailor-cli
BIN=${SERVER_BIN:-./target/release/tailor}
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

start() { # start DATA_DIR extra-args… ; sets PID and URL
  local data=$1; shift
  TAILOR_ADMIN_TOKEN=bench-token-0123456789 TAILOR_LOG=warn \
    "${SRV[@]}" "$BIN" serve --listen 127.0.0.1:0 --data "$data" --bundle rules/retail \
    --geoip-db tests/data/maxmind/test-data/GeoIP2-City-Test.mmdb "$@" >"$WORK/out" 2>"$WORK/err" &
  PID=$!
  for _ in $(seq 100); do grep -q listening "$WORK/out" 2>/dev/null && break; sleep 0.1; done
  URL=$(sed -n 's/^listening on //p' "$WORK/out")
}
rss() { awk '/VmRSS|VmHWM/ {printf "%s %d MiB  ", $1, $2/1024}' /proc/$1/status; echo; }
# Server CPU (user, system) in clock ticks and involuntary context switches over all its threads.
cpu() {
  echo "$(awk '{print $14, $15}' /proc/$1/stat) $(cat /proc/$1/task/*/status | awk '/^nonvoluntary_ctxt/ {n += $2} END {print n}')"
}
# per_request BEFORE AFTER REQUESTS: the server's CPU per request between two `cpu` readings.
per_request() {
  python3 - "$1" "$2" "$3" "$(getconf CLK_TCK)" <<'PY'
import sys
(u0, s0, c0), (u1, s1, c1) = (map(int, a.split()) for a in sys.argv[1:3])
n, tick = int(sys.argv[3]), int(sys.argv[4])
print(f"server CPU per request: user {(u1 - u0) / tick / n * 1e6:.1f} us, system {(s1 - s0) / tick / n * 1e6:.1f} us, "
      f"involuntary context switches {(c1 - c0) / n:.3f}")
PY
}
# load TARGET OUTFILE: one measured wrk run against TARGET, with the server's CPU per request.
load() {
  local before; before=$(cpu $PID)
  TARGET=$1 VISITORS=10000 wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s scripts/bench/wrk-decide.lua "$URL" | tee "$2"
  per_request "$before" "$(cpu $PID)" "$(awk '/requests in/ {print $1}' "$2")"
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(uname -sr)"
echo "load generator: wrk, $THREADS threads, $CONNECTIONS connections, scheduling policy $LOADGEN_POLICY"
if [[ ${1:-} == --million ]]; then
  N=1000000
  echo "== importing $N profiles (5 purchases each)"
  python3 scripts/bench/profiles.py $N 5 > "$WORK/profiles.jsonl"
  /usr/bin/time -f "import: %e s, max RSS %M KiB" "$BIN" import --data "$WORK/data" "$WORK/profiles.jsonl"
  rm "$WORK/profiles.jsonl"
  du -sh "$WORK/data"
  for mb in 16 64; do
    start "$WORK/data" --cache-mb $mb
    echo "== --cache-mb $mb: decide for random visitors among $N"
    echo -n "after start: "; rss $PID
    VISITORS=$N wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s scripts/bench/wrk-decide.lua "$URL" | grep -E "Requests/sec|99%|50%"
    echo -n "after load:  "; rss $PID
    curl -s "$URL/metrics" | grep -E "^tailor_profile_cache_(entries|bytes|hit_ratio)"
    kill $PID; wait $PID 2>/dev/null || true
  done
  exit 0
fi

if [[ ${1:-} == --ab ]]; then
  OLD=${2:?usage: bench-serve.sh --ab OLD_TAILOR_BINARY}
  python3 scripts/bench/profiles.py 10000 30 > "$WORK/profiles.jsonl"
  "$BIN" import --data "$WORK/seed" "$WORK/profiles.jsonl" >/dev/null
  # Both binaries run from fresh copies side by side: the same binary run from the build directory
  # measured 3-7 % slower than a copy of it, every round.
  cp "$OLD" "$WORK/old"; cp "$BIN" "$WORK/new"; OLD=$WORK/old; NEW=$WORK/new
  # Each server starts from a fresh copy of the imported data (not the exposure log and cap counts the
  # previous server left), and the order alternates, so neither binary always runs second.
  for round in 1 2 3; do
    order=("$OLD" "$NEW"); (( round % 2 == 0 )) && order=("$NEW" "$OLD")
    for b in "${order[@]}"; do
      rm -rf "$WORK/data"; cp -r "$WORK/seed" "$WORK/data"
      BIN=$b start "$WORK/data"
      VISITORS=10000 wrk -t"$THREADS" -c"$CONNECTIONS" -d5s -s scripts/bench/wrk-decide.lua "$URL" >/dev/null
      line="round $round $([[ $b == "$OLD" ]] && echo old || echo new):"
      for t in /v1/decide /static; do
        before=$(cpu $PID)
        TARGET=$t VISITORS=10000 wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}" --latency -s scripts/bench/wrk-decide.lua "$URL" >"$WORK/ab"
        line="$line $t $(awk '/Requests\/sec/ {print $2}' "$WORK/ab") req/s, p99 $(awk '$1 == "99%" {print $2}' "$WORK/ab"), $(per_request "$before" "$(cpu $PID)" "$(awk '/requests in/ {print $1}' "$WORK/ab")");"
      done
      echo "$line"
      kill $PID; wait $PID 2>/dev/null || true
    done
  done
  exit 0
fi

if [[ ${1:-} == --pairs ]]; then
  # Decide and static in short alternating pairs on one server: this VM's speed drifts by ±20 % over
  # minutes, which moves a single long decide run against a single long static run; a pair's two runs
  # see the same speed, so each pair's ratio is comparable, and the median of them is the figure.
  PAIRS=${2:-8}
  python3 scripts/bench/profiles.py 10000 30 > "$WORK/profiles.jsonl"
  "$BIN" import --data "$WORK/data" "$WORK/profiles.jsonl" >/dev/null
  start "$WORK/data"
  VISITORS=10000 wrk -t"$THREADS" -c"$CONNECTIONS" -d5s -s scripts/bench/wrk-decide.lua "$URL" >/dev/null
  echo "== $PAIRS pairs of $DURATION runs, decide and static alternating first"
  for pair in $(seq "$PAIRS"); do
    order=(/v1/decide /static); (( pair % 2 == 0 )) && order=(/static /v1/decide)
    for t in "${order[@]}"; do
      TARGET=$t VISITORS=10000 wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s scripts/bench/wrk-decide.lua "$URL" >"$WORK/$(basename $t)"
    done
    echo "pair $pair: $(for t in decide static; do echo -n "$t $(awk '/Requests\/sec/ {print $2}' "$WORK/$t") req/s p50 $(awk '$1 == "50%" {print $2}' "$WORK/$t") p99 $(awk '$1 == "99%" {print $2}' "$WORK/$t"); "; done)"
  done | tee "$WORK/pairs"
  python3 - "$WORK/pairs" <<'PY'
import re, statistics, sys
def ms(v):
    n, u = re.match(r"([\d.]+)(us|ms|s)", v).groups()
    return float(n) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[u]
rows = [re.findall(r"(decide|static) ([\d.]+) req/s p50 (\S+) p99 (\S+)", l) for l in open(sys.argv[1])]
ratios = [float(r[0][1]) / float(r[1][1]) for r in rows if len(r) == 2]
for name, i in (("decide", 0), ("static", 1)):
    print(f"{name}: median {statistics.median(float(r[i][1]) for r in rows):.0f} req/s, "
          f"p99 median {statistics.median(ms(r[i][3]) for r in rows):.2f} ms "
          f"(range {min(ms(r[i][3]) for r in rows):.2f}-{max(ms(r[i][3]) for r in rows):.2f})")
print("decide/static ratio per pair: " + ", ".join(f"{x:.3f}" for x in ratios))
print(f"median ratio: {statistics.median(ratios):.3f}; pairs >= 0.7: {sum(x >= 0.7 for x in ratios)} of {len(ratios)}")
PY
  exit 0
fi

echo "== 10,000 stored profiles (30 purchases, ~3 KB each)"
python3 scripts/bench/profiles.py 10000 30 > "$WORK/profiles.jsonl"
"$BIN" import --data "$WORK/data" "$WORK/profiles.jsonl"
start "$WORK/data"
# Warm the profile and user-agent caches.
VISITORS=10000 wrk -t"$THREADS" -c"$CONNECTIONS" -d5s -s scripts/bench/wrk-decide.lua "$URL" >/dev/null
echo "== POST /v1/decide (4 placements, UA header, GeoIP lookup, stored profile)"
load /v1/decide "$WORK/decide"
echo "== POST /static (the same request bytes, answered with constant JSON by the same server)"
load /static "$WORK/static"
d=$(awk '/Requests\/sec/ {print $2}' "$WORK/decide")
s=$(awk '/Requests\/sec/ {print $2}' "$WORK/static")
echo "decide/static throughput ratio: $(python3 -c "print(round($d/$s, 3))")"
curl -s "$URL/metrics" | grep -E "^tailor_profile_cache_hit_ratio|^tailor_exposures_dropped"
echo -n "server memory: "; rss $PID
