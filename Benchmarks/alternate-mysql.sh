#!/usr/bin/env bash
# Before/after comparisons of MySQL storage-bench binaries against sysbench, alternated: each
# round runs sysbench (the store's own statements, sysbench/sessions.lua) and then every binary
# with the same load, and prints one line with each one's ops/s, CPU per operation and write
# system calls per operation (`storage-bench`'s cpu_ns_per_op and writes_per_op).
#
#   Benchmarks/alternate-mysql.sh ROUNDS SECONDS BINARY...
#   OPS="get" Benchmarks/alternate-mysql.sh 8 4 /tmp/bench-before /tmp/bench-after
#
# Starts its own servers (scripts/services.sh, SERVICES_PORT_BASE=23000 unless set) and stops
# them at the end. 16 tasks / threads, 10 000 keys, as in `run.sh mysql`. Never run in CI.
set -uo pipefail
rounds=$1
seconds=$2
shift 2
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export SERVICES_PORT_BASE=${SERVICES_PORT_BASE:-23000}
eval "$(bash scripts/services.sh start)"
trap 'bash scripts/services.sh stop "$SERVICES_ROOT" >/dev/null 2>&1' EXIT
arguments=(--backend mysql --port "$MYSQL_PORT" --user "$MYSQL_USER" --password "$MYSQL_PASSWORD"
    --database "$MYSQL_DATABASE" --numeric-keys --tasks 16 --pool-size 16 --keys 10000)
# creates the tables and writes every key
"$1" "${arguments[@]}" --seconds 2 --mix set=100 >/dev/null
sysbench_rate() {
    SESS_OP=$1 SESS_KEYS=10000 sysbench Benchmarks/sysbench/sessions.lua --db-driver=mysql \
        --mysql-host=127.0.0.1 --mysql-port="$MYSQL_PORT" --mysql-user="$MYSQL_USER" \
        --mysql-password="$MYSQL_PASSWORD" --mysql-db="$MYSQL_DATABASE" --threads=16 \
        --time="$seconds" --warmup-time=1 run 2>&1 |
        sed -n 's/.*events\/s (eps): *\([0-9.]*\).*/\1/p; s/^ *transactions: *[0-9]* *(\([0-9.]*\) per sec.).*/\1/p' | head -1
}
for op in ${OPS:-get set}; do
    for round in $(seq "$rounds"); do
        line="$op round $round: sysbench=$(sysbench_rate "$op")"
        for binary in "$@"; do
            out=$("$binary" "${arguments[@]}" --seconds "$seconds" --mix "$op=100")
            line="$line $(basename "$binary")=$(sed -n 's/.*ops_per_sec=\([0-9]*\).*cpu_ns_per_op=\([0-9]*\).*writes_per_op=\([0-9.]*\).*/\1 ops\/s, \2 ns CPU, \3 writes/p' <<<"$out");"
        done
        echo "$line"
    done
done
