#!/usr/bin/env bash
# Runs storage-bench binaries in turn, ROUNDS times, with the same arguments, and prints the
# minimum and median CPU time per operation (`cpu_ns_per_op`) of each: for before/after
# comparisons on a shared machine, where the minimum is the least disturbed run.
#
#   Benchmarks/alternate.sh ROUNDS "ARGUMENTS" BINARY...
#   CPUS=0,1 Benchmarks/alternate.sh 5 "--backend memory --tasks 2 --seconds 1 --mix set=100" old new
#
# Each run is pinned with `taskset -c $CPUS` (default: core 0). Never run in CI.
set -euo pipefail
rounds=$1
arguments=$2
shift 2
declare -A runs=()
for _ in $(seq "$rounds"); do
    for binary in "$@"; do
        # shellcheck disable=SC2086  # the arguments are split on purpose
        value=$(taskset -c "${CPUS:-0}" "$binary" $arguments 2>&1 | tr ' ' '\n' | sed -n 's/^cpu_ns_per_op=//p')
        runs[$binary]="${runs[$binary]:-} $value"
    done
done
for binary in "$@"; do
    # shellcheck disable=SC2086
    printf '%s: %s (all:%s)\n' "$binary" \
        "$(printf '%s\n' ${runs[$binary]} | sort -g | awk '{ v[NR] = $1 } END { printf "min=%s median=%s", v[1], v[int((NR + 1) / 2)] }')" \
        "${runs[$binary]}"
done
