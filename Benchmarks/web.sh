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
# opens the session. All three requests carry the same session cookie (made by GET /login), as a
# browser sends it to every route under the cookie's path: the framework's own work on the
# Cookie header (HTTPTypes splits it into fields) is then in every route, and the difference
# between the routes is the middleware's. /session's handler opens the session (store read + decryption + MAC check) and reads the subject;
# refresh runs after it (each /session run gets a fresh cookie from /login, so no run replays a
# cookie old enough to be touched on every request). The server's CPU time per request is read
# from /proc around each run: with the server pinned to one core, it is steadier than req/s
# (wrk shares the machine). The server is pinned to core 0 (`taskset -c 0`, like one nginx
# worker), wrk -t2 -c50 to core 1. Uses the Redis of $REDIS_PORT when set (scripts/services.sh),
# else starts the test servers (SERVICES_PORT_BASE=19000 by default) and stops them at the end.
# Builds web-bench (or $WEB_BENCH_APP, e.g. vapor-web-bench) in release mode first; prints a
# markdown table. Never run in CI.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
seconds=${1:-10}
rounds=${2:-3}
port=${WEB_BENCH_PORT:-18090}
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
# WEB_BENCH_APP=vapor-web-bench: the same routes on Vapor (Sources/VaporWebBench)
app=${WEB_BENCH_APP:-web-bench}
swift build -c release --product "$app" >&2
bin=.build/release/$app

if [[ -z ${REDIS_PORT:-} ]]; then
    export SERVICES_PORT_BASE=${SERVICES_PORT_BASE:-19000}
    eval "$(bash ../scripts/services.sh start)"
    trap 'bash ../scripts/services.sh stop "$SERVICES_ROOT" >/dev/null 2>&1 || true' EXIT
fi

# shellcheck source=web-common.sh
source ./web-common.sh

bench() {
    local label=$1 storage=$2 pid cookie
    taskset -c 0 "$bin" --storage "$storage" --port "$port" --threads "${WEB_BENCH_THREADS:-1}" &
    pid=$!
    first_session || { kill "$pid"; exit 1; }
    taskset -c 1 wrk -t2 -c50 -d2s -H "Cookie: $cookie" "http://127.0.0.1:$port/plain" >/dev/null   # warm-up
    taskset -c 1 wrk -t2 -c50 -d2s -H "Cookie: $cookie" "http://127.0.0.1:$port/session" >/dev/null
    local plains=() lazies=() sessions=() plain lazy session t0 t1 t2 t3
    local plaincpus=() lazycpus=() sessioncpus=()
    for _ in $(seq "$rounds"); do
        t0=$(ticks "$pid")
        plain=$(taskset -c 1 wrk -t2 -c50 -d"${seconds}s" --latency -H "Cookie: $cookie" "http://127.0.0.1:$port/plain")
        t1=$(ticks "$pid")
        lazy=$(taskset -c 1 wrk -t2 -c50 -d"${seconds}s" --latency -H "Cookie: $cookie" "http://127.0.0.1:$port/lazy")
        # a fresh session for each run: wrk replays one cookie, and a cookie older than the
        # touch threshold (60 s) would be touched (MAC, Set-Cookie) on every request, which a
        # browser following Set-Cookie pays at most once a minute
        cookie=$(login)
        t2=$(ticks "$pid")
        session=$(taskset -c 1 wrk -t2 -c50 -d"${seconds}s" --latency -H "Cookie: $cookie" "http://127.0.0.1:$port/session")
        t3=$(ticks "$pid")
        plaincpus+=("$(cpu_us "$t0" "$t1" "$plain")")
        lazycpus+=("$(cpu_us "$t1" "$t2" "$lazy")")
        sessioncpus+=("$(cpu_us "$t2" "$t3" "$session")")
        echo "$plain" >&2
        echo "$lazy" >&2
        echo "$session" >&2
        plains+=("$(rps "$plain")")
        lazies+=("$(rps "$lazy")")
        sessions+=("$(rps "$session")")
        echo "[$label] round: req/s plain $(rps "$plain") lazy $(rps "$lazy") session $(rps "$session"); server CPU µs/request plain ${plaincpus[-1]} lazy ${lazycpus[-1]} session ${sessioncpus[-1]}" >&2
    done
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    awk -v l="$label" -v a="$(median "${plains[@]}")" -v z="$(median "${lazies[@]}")" -v b="$(median "${sessions[@]}")" -v pa="$(p99 "$plain")" -v pb="$(p99 "$session")" \
        -v ca="$(median "${plaincpus[@]}")" -v cz="$(median "${lazycpus[@]}")" -v cb="$(median "${sessioncpus[@]}")" \
        'BEGIN { printf "| %s | %.0f | %.0f (%.1f%%) | %.0f (%.1f%%) | %.1f | %.1f (%.1f%%) | %.1f (%.1f%%) | %s | %s |\n", l, a, z, (1 - z / a) * 100, b, (1 - b / a) * 100, ca, cz, (1 - ca / cz) * 100, cb, (1 - ca / cb) * 100, pa, pb }'
}

echo "| storage | /plain req/s (no middleware, same cookie) | /lazy req/s (middleware, session unused; cost) | /session req/s (middleware, session opened; cost) | /plain server CPU µs/request | /lazy CPU µs/request (cost) | /session CPU µs/request (cost) | /plain p99 (last round) | /session p99 (last round) |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
bench "memory" "memory://web-bench"
bench "Redis" "redis://${REDIS_HOST:-127.0.0.1}:$REDIS_PORT/0?prefix=web-bench-$$"
