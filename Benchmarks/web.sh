#!/usr/bin/env bash
# wrk against web-bench (Benchmarks/Sources/WebBench): the same Hummingbird route without and
# with the session middleware, on the memory store and on Redis, in one run.
#
#   Benchmarks/web.sh [SECONDS] [ROUNDS]
#
# Each round runs the three routes one after the other for SECONDS each (default 10), ROUNDS
# times (default 3); the table shows each route's median req/s (on this shared machine one run
# of a route moves by ±15 %, more than what is measured), and the costs from those medians.
#
# GET /plain has no middleware; GET /lazy has it but never uses its session; GET /session
# carries a session cookie made by GET /login, and
# its handler opens the session (store read + decryption + MAC check) and reads the subject;
# refresh runs after it. The server is pinned to core 0 (`taskset -c 0`, like one nginx
# worker), wrk -t2 -c50 to core 1. Uses the Redis of $REDIS_PORT when set (scripts/services.sh),
# else starts the test servers (SERVICES_PORT_BASE=19000 by default) and stops them at the end.
# Builds web-bench in release mode first; prints a markdown table. Never run in CI.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
seconds=${1:-10}
rounds=${2:-3}
port=${WEB_BENCH_PORT:-18090}
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
swift build -c release --product web-bench >&2
bin=.build/release/web-bench

if [[ -z ${REDIS_PORT:-} ]]; then
    export SERVICES_PORT_BASE=${SERVICES_PORT_BASE:-19000}
    eval "$(bash ../scripts/services.sh start)"
    trap 'bash ../scripts/services.sh stop "$SERVICES_ROOT" >/dev/null 2>&1 || true' EXIT
fi

rps() { awk '/Requests\/sec/ { print $2 }' <<<"$1"; }
p99() { awk '/ 99% / { print $2 }' <<<"$1"; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

bench() {
    local label=$1 storage=$2 pid cookie body
    taskset -c 0 "$bin" --storage "$storage" --port "$port" --threads "${WEB_BENCH_THREADS:-1}" &
    pid=$!
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/plain" >/dev/null && break; sleep 0.1; done
    cookie=$(curl -s -D - -o /dev/null "http://127.0.0.1:$port/login" | tr -d '\r' | sed -n 's/^[Ss]et-[Cc]ookie: \([^;]*\).*/\1/p' | head -1)
    body=$(curl -s -H "Cookie: $cookie" "http://127.0.0.1:$port/session")
    [[ $body == bench ]] || { echo "the session did not open ($body)" >&2; kill "$pid"; exit 1; }
    taskset -c 1 wrk -t2 -c50 -d2s "http://127.0.0.1:$port/plain" >/dev/null   # warm-up
    taskset -c 1 wrk -t2 -c50 -d2s -H "Cookie: $cookie" "http://127.0.0.1:$port/session" >/dev/null
    local plains=() lazies=() sessions=() plain lazy session
    for _ in $(seq "$rounds"); do
        plain=$(taskset -c 1 wrk -t2 -c50 -d"${seconds}s" --latency "http://127.0.0.1:$port/plain")
        lazy=$(taskset -c 1 wrk -t2 -c50 -d"${seconds}s" --latency -H "Cookie: $cookie" "http://127.0.0.1:$port/lazy")
        session=$(taskset -c 1 wrk -t2 -c50 -d"${seconds}s" --latency -H "Cookie: $cookie" "http://127.0.0.1:$port/session")
        echo "$plain" >&2
        echo "$lazy" >&2
        echo "$session" >&2
        plains+=("$(rps "$plain")")
        lazies+=("$(rps "$lazy")")
        sessions+=("$(rps "$session")")
        echo "[$label] round: plain $(rps "$plain") lazy $(rps "$lazy") session $(rps "$session")" >&2
    done
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    awk -v l="$label" -v a="$(median "${plains[@]}")" -v z="$(median "${lazies[@]}")" -v b="$(median "${sessions[@]}")" -v pa="$(p99 "$plain")" -v pb="$(p99 "$session")" \
        'BEGIN { printf "| %s | %.0f | %.0f (%.1f%%) | %.0f (%.1f%%) | %s | %s |\n", l, a, z, (1 - z / a) * 100, b, (1 - b / a) * 100, pa, pb }'
}

echo "| storage | /plain req/s (no middleware) | /lazy req/s (middleware, session unused; cost) | /session req/s (middleware, session opened; cost) | /plain p99 (last round) | /session p99 (last round) |"
echo "| --- | --- | --- | --- | --- | --- |"
bench "memory" "memory://web-bench"
bench "Redis" "redis://${REDIS_HOST:-127.0.0.1}:$REDIS_PORT/0?prefix=web-bench-$$"
