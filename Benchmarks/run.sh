#!/usr/bin/env bash
# Side-by-side benchmarks: our storage and the reference tool, in one run, on this machine.
#
#   Benchmarks/run.sh memory [SECONDS]     memory store vs Hummingbird's MemoryPersistDriver,
#                                          1 task on 1 core and 2 tasks on 2 cores
#
# Builds storage-bench in release mode first. Prints the RESULT lines and the ratios as a
# markdown table to paste into BENCHMARKS.md. Never run in CI.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
suite=${1:-memory}
seconds=${2:-5}
swift build -c release --product storage-bench >&2
bench=.build/release/storage-bench

field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

case $suite in
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
