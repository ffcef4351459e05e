#!/usr/bin/env bash
# Side-by-side benchmarks: our storage and the reference tool, in one run, on this machine.
#
#   Benchmarks/run.sh SUITE [SECONDS] [ROUNDS]
#
#   Benchmarks/run.sh memory [SECONDS]     memory store vs Hummingbird's MemoryPersistDriver,
#                                          1 task on 1 core and 2 tasks on 2 cores
#   Benchmarks/run.sh memcached [SECONDS]  MemcachedSessionStore vs memcaslap, 50 concurrent
#                                          callers, 1 KiB values, 90% get and 100% set
#   Benchmarks/run.sh postgres [SECONDS]   PostgresSessionStore vs pgbench -M prepared, 16 clients,
#                                          the same SELECT by sid and 1 KiB upsert
#   Benchmarks/run.sh mysql [SECONDS]      MySQLSessionStore vs sysbench running the store's own
#                                          statements (sysbench/sessions.lua), 16 threads / tasks
#   Benchmarks/run.sh redis [SECONDS]      RedisSessionStore vs redis-benchmark -t get,set -d 1024
#                                          -c 50 -r 10000, standalone server
#   Benchmarks/run.sh redis-cluster [SECONDS]  RedisClusterSessionStore vs redis-benchmark --cluster,
#                                          the same load on the 6-node cluster (3 masters)
#
# Network suites start their servers with scripts/services.sh (SERVICES_PORT_BASE=19000 by
# default) and stop them at the end.
# Builds storage-bench in release mode first. Prints the RESULT lines and the ratios as a
# markdown table to paste into BENCHMARKS.md. Never run in CI.
#
# ROUNDS (mysql, redis, redis-cluster; default 1): each load runs that many times, ours and the
# reference alternating, one row per round, then a row with the median ratio. This machine's
# speed drifts by ±20 % within minutes (other tenants), so one pair of runs can land on either
# side of a goal; the median of alternated pairs is the figure to compare with it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
suite=${1:-memory}
seconds=${2:-5}
rounds=${3:-1}
swift build -c release --product storage-bench >&2
bench=.build/release/storage-bench

field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
# the median of the numbers given as arguments
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

start_services() {
    export SERVICES_PORT_BASE=${SERVICES_PORT_BASE:-19000}
    eval "$(bash ../scripts/services.sh start)"
    trap 'bash ../scripts/services.sh stop "$SERVICES_ROOT" >/dev/null 2>&1 || true' EXIT
}

case $suite in
memcached)
    start_services
    cfg=$(mktemp)
    echo "| load | memcaslap ops/s | MemcachedSessionStore ops/s | ratio | our p50 µs | our p99 µs |"
    echo "| --- | --- | --- | --- | --- | --- |"
    for mix in "get=90,set=10" "set=100"; do
        if [[ $mix == set=100 ]]; then get=0.0; set=1.0; else get=0.9; set=0.1; fi
        printf 'key\n43 43 1\nvalue\n1024 1024 1\ncmd\n0 %s\n1 %s\n' "$set" "$get" >"$cfg"
        ref=$(memcaslap -s "127.0.0.1:$MEMCACHED_PORT" -T 2 -c 50 -F "$cfg" -t "${seconds}s" 2>&1 | tail -5)
        echo "$ref" >&2
        ref_ops=$(sed -n 's/.*TPS: \([0-9]*\).*/\1/p' <<<"$ref" | tail -1)
        a=$("$bench" --backend memcached --port "$MEMCACHED_PORT" --tasks 50 --pool-size 4 --seconds "$seconds" --mix "$mix" --keys 10000)
        echo "$a" >&2
        echo "| $mix, 1 KiB, 50 concurrent | $ref_ops | $(field ops_per_sec "$a") | $(ratio "$(field ops_per_sec "$a")" "$ref_ops")× | $(field p50_us "$a") | $(field p99_us "$a") |"
    done
    rm -f "$cfg"
    ;;
postgres)
    start_services
    export PGPASSWORD=$PG_PASSWORD PGSSLMODE=disable
    dir=$(mktemp -d)
    # Our store creates the tables and fills 10 000 sessions whose ids pgbench can compute.
    "$bench" --backend postgres --port "$PG_PORT" --user "$PG_USER" --password "$PG_PASSWORD" --database "$PG_DATABASE" \
        --tasks 16 --pool-size 16 --seconds 1 --warmup 0 --mix set=100 --keys 10000 --numeric-keys >/dev/null
    cat >"$dir/select.sql" <<'SQL'
\set id random(1, 10000)
SELECT data FROM sessions WHERE sid = lpad(:id::text, 43, '0') AND exp >= to_timestamp(extract(epoch from now())::bigint);
SQL
    cat >"$dir/upsert.sql" <<'SQL'
\set id random(1, 10000)
INSERT INTO sessions (sid, name, data, exp) VALUES (lpad(:id::text, 43, '0'), 'session', repeat('v', 1024), to_timestamp(extract(epoch from now())::bigint + 3600)) ON CONFLICT (sid) DO UPDATE SET name = EXCLUDED.name, data = EXCLUDED.data, exp = EXCLUDED.exp;
SQL
    # CPU per operation: pgbench's own (time), ours (storage-bench), and the server's: the
    # postmaster's process tree (every backend is its child; exited backends count through its
    # cutime/cstime).
    pm=$(head -1 "$SERVICES_ROOT/pg/data/postmaster.pid")
    server_ticks() {
        local t f c
        read -ra f < <(sed 's/.*) //' "/proc/$pm/stat")
        t=$((f[11] + f[12] + f[13] + f[14]))
        for c in $(pgrep -P "$pm"); do
            read -ra f < <(sed 's/.*) //' "/proc/$c/stat" 2>/dev/null) && t=$((t + f[11] + f[12]))
        done
        echo "$t"
    }
    echo "| load | pgbench tps | PostgresSessionStore ops/s | ratio | our p50 µs | our p99 µs | CPU µs/op pgbench + server | CPU µs/op ours + server |"
    echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
    for op in get set; do
        script=$dir/select.sql mix=get=100
        [[ $op == set ]] && script=$dir/upsert.sql mix=set=100
        t0=$(server_ticks)
        ref=$({ /usr/bin/time -f "CPU %U %S" pgbench -n -c 16 -j 2 -T "$seconds" -M prepared -f "$script" -h 127.0.0.1 -p "$PG_PORT" -U "$PG_USER" "$PG_DATABASE"; } 2>&1)
        t1=$(server_ticks)
        echo "$ref" | tail -4 >&2
        ref_tps=$(sed -n 's/^tps = \([0-9]*\).*/\1/p' <<<"$ref" | head -1)
        ref_n=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' <<<"$ref")
        ref_cpu=$(awk -v l="$(grep '^CPU ' <<<"$ref")" -v n="$ref_n" -v a="$t0" -v b="$t1" -v hz="$(getconf CLK_TCK)" \
            'BEGIN { split(l, f, " "); printf "%.0f + %.0f", (f[2] + f[3]) * 1e6 / n, (b - a) * 1e6 / hz / n }')
        a=$("$bench" --backend postgres --port "$PG_PORT" --user "$PG_USER" --password "$PG_PASSWORD" --database "$PG_DATABASE" \
            --tasks 16 --pool-size 16 --seconds "$seconds" --mix "$mix" --keys 10000 --numeric-keys --server-pid "$pm")
        echo "$a" >&2
        our_cpu=$(awk -v c="$(field cpu_ns_per_op "$a")" -v s="$(field server_cpu_ns_per_op "$a")" 'BEGIN { printf "%.0f + %.0f", c / 1000, s / 1000 }')
        echo "| $op (1 KiB), 16 concurrent | $ref_tps | $(field ops_per_sec "$a") | $(ratio "$(field ops_per_sec "$a")" "$ref_tps")× | $(field p50_us "$a") | $(field p99_us "$a") | $ref_cpu | $our_cpu |"
    done
    rm -rf "$dir"
    ;;
mysql)
    start_services
    echo "| load | sysbench events/s | MySQLSessionStore ops/s | ratio | our p50 µs | our p99 µs | sysbench p95 µs |"
    echo "| --- | --- | --- | --- | --- | --- | --- |"
    for op in set get; do
      ratios=()
      for ((round = 1; round <= rounds; round++)); do
        # ours first: it creates the tables (migrate) and writes every key
        a=$("$bench" --backend mysql --port "$MYSQL_PORT" --user "$MYSQL_USER" --password "$MYSQL_PASSWORD" \
            --database "$MYSQL_DATABASE" --numeric-keys --tasks 16 --pool-size 16 --seconds "$seconds" \
            --mix "$op=100" --keys 10000)
        echo "$a" >&2
        ref=$(SESS_OP=$op SESS_KEYS=10000 sysbench sysbench/sessions.lua --db-driver=mysql \
            --mysql-host=127.0.0.1 --mysql-port="$MYSQL_PORT" --mysql-user="$MYSQL_USER" \
            --mysql-password="$MYSQL_PASSWORD" --mysql-db="$MYSQL_DATABASE" --threads=16 \
            --time="$seconds" --warmup-time=1 run 2>&1)
        echo "$ref" >&2
        ref_ops=$(sed -n 's/.*events\/s (eps): *\([0-9.]*\).*/\1/p; s/^ *transactions: *[0-9]* *(\([0-9.]*\) per sec.).*/\1/p' <<<"$ref" | head -1)
        ref_p95=$(sed -n 's/^ *95th percentile: *\([0-9.]*\).*/\1/p' <<<"$ref" | head -1)
        ratios+=("$(ratio "$(field ops_per_sec "$a")" "$ref_ops")")
        echo "| $op, 1 KiB, 16 concurrent | ${ref_ops%.*} | $(field ops_per_sec "$a") | ${ratios[-1]}× | $(field p50_us "$a") | $(field p99_us "$a") | $(awk -v m="$ref_p95" 'BEGIN { printf "%.1f", m * 1000 }') |"
      done
      if ((rounds > 1)); then echo "| $op: median of $rounds alternated rounds | | | $(median "${ratios[@]}")× | | | |"; fi
    done
    ;;
redis | redis-cluster)
    start_services
    echo "| load | redis-benchmark req/s | our ops/s | ratio | our p50 µs | our p99 µs | redis-benchmark p50 µs | CPU µs/op redis-benchmark + servers | CPU µs/op ours + servers |"
    echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    if [[ $suite == redis ]]; then
        ref_args=(-h 127.0.0.1 -p "$REDIS_PORT")
        our_args=(--backend redis --port "$REDIS_PORT")
        nodes=127.0.0.1:$REDIS_PORT
        auth=()
    else
        first=${REDIS_CLUSTER_NODES%%,*}
        ref_args=(--cluster -h "${first%:*}" -p "${first#*:}" -a "$REDIS_CLUSTER_PASSWORD")
        our_args=(--backend redis-cluster --nodes "$REDIS_CLUSTER_NODES" --password "$REDIS_CLUSTER_PASSWORD")
        nodes=$REDIS_CLUSTER_NODES
        auth=(-a "$REDIS_CLUSTER_PASSWORD" --no-auth-warning)
    fi
    # CPU per operation of the servers (every node of a cluster: masters and their replicas,
    # which apply each write again), from /proc, around each tool's run.
    pids=()
    for node in ${nodes//,/ }; do
        pids+=("$(redis-cli -h "${node%:*}" -p "${node#*:}" "${auth[@]}" info server | tr -d '\r' | sed -n 's/^process_id://p')")
    done
    server_ticks() {
        local t=0 p f
        for p in "${pids[@]}"; do
            read -ra f < <(sed 's/.*) //' "/proc/$p/stat")
            t=$((t + f[11] + f[12]))
        done
        echo "$t"
    }
    # redis-benchmark's `-t set` sends `SET key value` with no expiry; the store sends
    # `SET key value EX ttl` (a session expires), which costs the servers more (the key's expiry
    # is set on the master and on its replica). The `set EX` row runs that very command in
    # redis-benchmark, for reference (the goal compares with `-t set`).
    value=$(head -c 1024 /dev/zero | tr '\0' x)
    cpu_file=$(mktemp)
    tag=""
    [[ $suite == redis-cluster ]] && tag="{tag}:"
    for op in set get "set EX"; do
      ratios=()
      for ((round = 1; round <= rounds; round++)); do
        if [[ $op == "set EX" ]]; then
            test_args=(SET "key:${tag}__rand_int__" "$value" EX 3600)
            mix=set=100
            label="set, 1 KiB, 50 concurrent, redis-benchmark sending SET … EX 3600 as the store does"
        else
            test_args=(-t "$op" -d 1024)
            mix=$op=100
            label="$op, 1 KiB, 50 concurrent"
        fi
        # as many requests as the reference serves in about SECONDS seconds (first a short probe)
        probe=$(redis-benchmark "${ref_args[@]}" -c 50 -r 10000 -n 20000 --csv "${test_args[@]}" 2>/dev/null | tail -1)
        rate=$(tr -d '"' <<<"$probe" | cut -d, -f2)
        n=$(awk -v r="$rate" -v s="$seconds" 'BEGIN { printf "%d", r * s }')
        t0=$(server_ticks)
        ref=$(/usr/bin/time -o "$cpu_file" -f "CPU %U %S" redis-benchmark "${ref_args[@]}" -c 50 -r 10000 -n "$n" --csv "${test_args[@]}" 2>/dev/null | tail -1)
        t1=$(server_ticks)
        ref_cpu=$(awk -v l="$(grep '^CPU ' "$cpu_file")" -v n="$n" -v a="$t0" -v b="$t1" -v hz="$(getconf CLK_TCK)" \
            'BEGIN { split(l, f, " "); printf "%.1f + %.1f", (f[2] + f[3]) * 1e6 / n, (b - a) * 1e6 / hz / n }')
        echo "redis-benchmark $op: $ref" >&2
        ref_ops=$(tr -d '"' <<<"$ref" | cut -d, -f2)
        ref_p50=$(tr -d '"' <<<"$ref" | cut -d, -f5)
        a=$("$bench" "${our_args[@]}" --tasks 50 --pool-size "${POOL_SIZE:-16}" --seconds "$seconds" --mix "$mix" --keys 10000 \
            --server-pid "$(IFS=,; echo "${pids[*]}")")
        echo "$a" >&2
        our_cpu=$(awk -v c="$(field cpu_ns_per_op "$a")" -v s="$(field server_cpu_ns_per_op "$a")" 'BEGIN { printf "%.1f + %.1f", c / 1000, s / 1000 }')
        ratios+=("$(ratio "$(field ops_per_sec "$a")" "$ref_ops")")
        echo "| $label | ${ref_ops%.*} | $(field ops_per_sec "$a") | ${ratios[-1]}× | $(field p50_us "$a") | $(field p99_us "$a") | $(awk -v m="$ref_p50" 'BEGIN { printf "%.1f", m * 1000 }') | $ref_cpu | $our_cpu |"
      done
      if ((rounds > 1)); then echo "| ${op}: median of $rounds alternated rounds | | | $(median "${ratios[@]}")× | | | | | |"; fi
    done
    # the session core's write path: a set with rotation and two (audience, subject) pairs
    a=$("$bench" "${our_args[@]}" --tasks 50 --pool-size "${POOL_SIZE:-16}" --seconds "$seconds" --mix rotate=100 --keys 10000)
    echo "$a" >&2
    echo "| set with rotation + 2 index pairs, 50 concurrent | (no reference) | $(field ops_per_sec "$a") | | $(field p50_us "$a") | $(field p99_us "$a") | | | |"
    rm -f "$cpu_file"
    ;;
memory)
    echo "| load | cores / tasks | memory store ops/s | MemoryPersistDriver ops/s | ratio | memory store p99 µs | reference p99 µs |"
    echo "| --- | --- | --- | --- | --- | --- | --- |"
    for mix in "get=90,set=10" "get=100" "set=100"; do
        declare -A ours=()
        for cpus in 0 0,1; do
            tasks=$(( ${#cpus} == 1 ? 1 : 2 ))
            a=$(taskset -c "$cpus" "$bench" --backend memory --tasks "$tasks" --seconds "$seconds" --mix "$mix")
            b=$(taskset -c "$cpus" "$bench" --backend hummingbird-memory --tasks "$tasks" --seconds "$seconds" --mix "$mix")
            echo "$a" >&2
            echo "$b" >&2
            ours[$tasks]=$(field ops_per_sec "$a")
            echo "| $mix, 1 KiB | $tasks / $tasks | $(field ops_per_sec "$a") | $(field ops_per_sec "$b") | $(ratio "$(field ops_per_sec "$a")" "$(field ops_per_sec "$b")")× | $(field p99_us "$a") | $(field p99_us "$b") |"
        done
        echo "| $mix: memory store scaling 1 → 2 cores | | | | $(ratio "${ours[2]}" "${ours[1]}")× | | |"
    done
    ;;
*)
    echo "unknown suite $suite" >&2
    exit 2
    ;;
esac
