# Helpers shared by web.sh and web-alternate.sh (sourced; they set $port).

rps() { awk '/Requests\/sec/ { print $2 }' <<<"$1"; }
requests() { awk '/ requests in / { print $1 }' <<<"$1"; }
# the server's CPU time (user + system) in clock ticks, from /proc
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# µs of server CPU per request: ticks before, ticks after, wrk's output
cpu_us() { awk -v a="$1" -v b="$2" -v n="$(requests "$3")" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.1f", (b - a) * 1e6 / hz / n }'; }
p99() { awk '/ 99% / { print $2 }' <<<"$1"; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# a new session's cookie (name=value) from GET /login
login() { curl -s -D - -o /dev/null "http://127.0.0.1:$port/login" | tr -d '\r' | sed -n 's/^[Ss]et-[Cc]ookie: \([^;]*\).*/\1/p' | head -1; }

# Waits for the server to answer, then logs in until a session opens (the store's client may
# still be starting when HTTP answers), for up to 30 s; sets $cookie. Fails saying why
# (/login's status and body, where a store error shows).
first_session() {
    local body=""
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/plain" >/dev/null && break; sleep 0.1; done
    for _ in $(seq 150); do
        cookie=$(login || true)
        body=$(curl -s -H "Cookie: $cookie" "http://127.0.0.1:$port/session" || true)
        [[ $body == bench ]] && return 0
        sleep 0.2
    done
    echo "the session did not open within 30 s ($body); /login answers:" >&2
    curl -s -i "http://127.0.0.1:$port/login" >&2 || true
    return 1
}
