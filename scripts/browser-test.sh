#!/usr/bin/env bash
# The demo app in a real browser: headless Chromium (Debian's chromium, chromium-driver) driven
# by Selenium (PyPI). Installs what is missing (apt needs root), then runs
# scripts/browser/demo_browser_test.py on the memory store and, when REDIS_PORT is set (the test
# servers of scripts/services.sh), on Redis. Needs a built session-demo (swift build).
#
#   scripts/browser-test.sh [--screenshots DIR]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

screenshots=''
if [[ ${1:-} == --screenshots ]]; then screenshots=$2; fi

missing=()
for p in chromium chromium-driver; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
    [[ $(id -u) == 0 ]] || { echo "browser-test: missing ${missing[*]} and not root" >&2; exit 1; }
    echo "== browser-test: installing ${missing[*]}"
    (
        flock -w 900 9 || { echo "browser-test: could not lock apt" >&2; exit 1; }
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}"
    ) 9>/tmp/sess-services-apt.lock
fi
if ! python3 -c 'import selenium' 2>/dev/null; then
    echo "== browser-test: installing selenium"
    # A Debian python3 without a virtualenv refuses plain pip installs (PEP 668).
    python3 -m pip install -q 'selenium>=4.10,<5' ||
        python3 -m pip install -q --break-system-packages 'selenium>=4.10,<5'
fi

demo=$(swift build --show-bin-path)/session-demo
[[ -x $demo ]] || { echo "browser-test: $demo is not built (swift build)" >&2; exit 1; }

rc=0
python3 scripts/browser/demo_browser_test.py --demo "$demo" --label memory \
    ${screenshots:+--screenshots "$screenshots"} || rc=1
if [[ -n ${REDIS_PORT:-} ]]; then
    python3 scripts/browser/demo_browser_test.py --demo "$demo" --label redis \
        --storage "redis://${REDIS_HOST:-127.0.0.1}:${REDIS_PORT}/0?prefix=browser-test-$$" || rc=1
fi
exit "$rc"
