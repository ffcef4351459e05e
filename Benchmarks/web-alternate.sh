#!/usr/bin/env bash
# The session middleware's cost measured in alternated pairs: one web-bench server (pinned to
# core 0), wrk (core 1) on GET /plain and GET /session in turn, PAIRS times, SECONDS each, the
# order flipped every pair. Prints each pair's server CPU per request and the session's share of
# /session's CPU, then the median share and the share from each route's least disturbed run.
# On a shared machine whose speed drifts by ±20 % within minutes, runs taken seconds apart and
# paired compare better than medians of longer runs taken one after the other (web.sh).
#
#   Benchmarks/web-alternate.sh [STORAGE-URL] [PAIRS] [SECONDS]     # default: memory://alt 16 3
#
# Both requests carry the same session cookie (a fresh login before each pair, so no run touches
# an old session). Builds web-bench in release mode first. Never run in CI.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
storage=${1:-memory://alt}
pairs=${2:-16}
seconds=${3:-3}
port=${WEB_BENCH_PORT:-18130}
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
swift build -c release --product web-bench >&2
taskset -c 0 .build/release/web-bench --storage "$storage" --port "$port" >/dev/null 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true' EXIT
# shellcheck source=web-common.sh
source ./web-common.sh
cookie=""
first_session || exit 1
# server CPU µs per request of one wrk run on ROUTE
run() {
    local t0 t1 out
    t0=$(ticks "$pid")
    out=$(taskset -c 1 wrk -t2 -c50 -d"${seconds}s" -H "Cookie: $cookie" "http://127.0.0.1:$port/$1")
    t1=$(ticks "$pid")
    cpu_us "$t0" "$t1" "$out"
}
taskset -c 1 wrk -t2 -c50 -d2s -H "Cookie: $cookie" "http://127.0.0.1:$port/session" >/dev/null   # warm-up
plains=() sessions=() shares=()
for i in $(seq "$pairs"); do
    cookie=$(login)
    if ((i % 2)); then plain=$(run plain); session=$(run session); else session=$(run session); plain=$(run plain); fi
    share=$(awk -v p="$plain" -v s="$session" 'BEGIN { printf "%.1f", (1 - p / s) * 100 }')
    plains+=("$plain") sessions+=("$session") shares+=("$share")
    echo "pair $i: /plain $plain µs, /session $session µs per request: the session's share $share %"
done
min() { printf '%s\n' "$@" | sort -g | head -1; }
echo "median share $(median "${shares[@]}") % over $pairs pairs (range $(min "${shares[@]}") … $(printf '%s\n' "${shares[@]}" | sort -g | tail -1) %);" \
    "least disturbed runs: /plain $(min "${plains[@]}") µs, /session $(min "${sessions[@]}") µs, share" \
    "$(awk -v p="$(min "${plains[@]}")" -v s="$(min "${sessions[@]}")" 'BEGIN { printf "%.1f", (1 - p / s) * 100 }') %"
