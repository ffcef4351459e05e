#!/usr/bin/env bash
# The project's test command: start the real test servers, build, run every test, stop them.
#
#   scripts/test.sh                          all tests
#   scripts/test.sh --filter RedisWireTests  extra arguments go to `swift test`
#
# SERVICES_PORT_BASE (default 17000) moves the servers' ports. Exits with swift test's code.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

services=scripts/services.sh
SERVICES_ROOT=''
cleanup() {
    local rc=$?
    if [[ -n $SERVICES_ROOT ]]; then
        bash "$services" stop "$SERVICES_ROOT" || true
    fi
    return $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "== test.sh: starting the test servers"
t0=$SECONDS
env_file=$(mktemp)
if ! bash "$services" start >"$env_file"; then
    rm -f "$env_file"
    echo "== test.sh: FAILED: the test servers did not start (see above)"
    exit 1
fi
# shellcheck disable=SC1090
source "$env_file"
rm -f "$env_file"
echo "== test.sh: servers up in $((SECONDS - t0))s (SERVICES_ROOT=$SERVICES_ROOT)"

echo "== test.sh: swift build --build-tests"
t0=$SECONDS
if ! swift build --build-tests; then
    echo "== test.sh: FAILED: the build failed after $((SECONDS - t0))s"
    exit 1
fi

echo "== test.sh: swift test --no-parallel $*"
t0=$SECONDS
rc=0
# One test at a time: the suites kill and restart servers, sleep past server-side TTLs and load
# the machine; run side by side on 2 cores they starve each other's timeouts.
swift test --no-parallel "$@" || rc=$?
if ((rc == 0)); then
    echo "== test.sh: PASSED: swift test $* (exit 0, $((SECONDS - t0))s)"
else
    echo "== test.sh: FAILED: swift test $* (exit $rc, $((SECONDS - t0))s)"
fi

# The demo app in headless Chromium (installs chromium, chromium-driver and selenium if
# missing). Skipped only when a --filter narrows the run to some Swift tests.
if [[ " $* " != *" --filter "* ]]; then
    echo "== test.sh: browser test of the demo app (scripts/browser-test.sh)"
    t0=$SECONDS
    brc=0
    bash scripts/browser-test.sh || brc=$?
    if ((brc == 0)); then
        echo "== test.sh: PASSED: browser test ($((SECONDS - t0))s)"
    else
        echo "== test.sh: FAILED: browser test (exit $brc, $((SECONDS - t0))s)"
        ((rc != 0)) || rc=$brc
    fi
fi
exit "$rc"
