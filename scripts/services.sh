#!/usr/bin/env bash
# The project's real test servers, on loopback, in a temporary directory.
#
#   scripts/services.sh start              install what is missing (apt), start every server, wait
#                                           until each answers, print `export VAR=value` lines
#                                           (also written to $SERVICES_ROOT/env)
#   scripts/services.sh stop [ROOT]        stop every server of ROOT (default $SERVICES_ROOT) and
#                                           remove the directory; idempotent
#   scripts/services.sh kill NAME          kill -9 a server (it dies mid-request)
#   scripts/services.sh restart NAME       start it again with the same command (same ports and
#                                           data directory) and wait until it answers
#   scripts/services.sh status [ROOT]      list the servers and whether each is running
#
# NAME: redis, memcached, postgres, mysql, cluster-node:PORT, sentinel-master, and also any unit
# name `status` lists (redis-acl, sentinel-replica, sentinel:PORT, memcached-tcp, memcached-tls,
# memcached-socket, postgres-notls).
#
# Ports (loopback only): SERVICES_PORT_BASE (default 17000) + offset. Two instances whose bases
# are 100 or more apart never collide.
#   +0 redis  +1 redis TLS  +2 redis with requirepass + ACL user
#   +10..+15 cluster nodes (their cluster bus ports: +20..+25), requirepass + masterauth + the ACL user
#   +30 sentinel-watched master  +31 its replica  +32..+34 sentinels
#   +40 memcached  +41 memcached TLS
#   +50 postgres (ssl=on)  +51 postgres (ssl=off)
#   +60 mariadb (TLS available)
#
# Needs root (apt, runuser). Works on a fresh Debian 12 machine without systemd or Docker.
# SERVICES_READY_TIMEOUT (default 60) bounds each wait, in seconds. Server logs: $SERVICES_ROOT/**/*.log,
# start logs per group: $SERVICES_ROOT/logs/; start commands: $SERVICES_ROOT/bin/NAME.sh.
set -euo pipefail

readonly PGBIN=/usr/lib/postgresql/15/bin
SCRIPT=$(readlink -f "${BASH_SOURCE[0]}")
readonly SCRIPT
readonly SENTINEL_MASTER_NAME=sessmaster
readonly REDIS_ACL_DEFAULT_PASSWORD=defaultpass
readonly REDIS_ACL_USER=sessuser
readonly REDIS_ACL_PASSWORD=sesspass
readonly REDIS_CLUSTER_PASSWORD=clusterpass   # requirepass + masterauth of every cluster node
readonly SQL_USER=sess SQL_PASSWORD=sesspass SQL_DATABASE=sessdb
readonly MYSQL_TLS_USER=sess_tls MYSQL_TLS_PASSWORD=tlspass
readonly ROOT_MARKER=.sess-services
readonly READY_TIMEOUT=${SERVICES_READY_TIMEOUT:-60}   # seconds, per wait

# Client settings of the caller (such as MYSQL_HOST from a sourced env file) must not redirect the
# tools this script runs.
unset MYSQL_HOST MYSQL_TCP_PORT MYSQL_UNIX_PORT MYSQL_PWD MYSQL_HISTFILE \
    PGHOST PGHOSTADDR PGPORT PGUSER PGPASSWORD PGPASSFILE PGDATABASE PGSERVICE PGSERVICEFILE PGOPTIONS \
    PGSSLMODE PGSSLROOTCERT PGSSLCERT PGSSLKEY PGDATA REDISCLI_AUTH REDISCLI_HISTFILE

log() { printf '[services] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------------------------------------
# ports

layout() {
    BASE=${SERVICES_PORT_BASE:-17000}
    [[ $BASE =~ ^[0-9]+$ ]] && ((BASE >= 1024 && BASE <= 65400)) ||
        die "SERVICES_PORT_BASE must be a number in 1024..65400 (got '$BASE')"
    REDIS_PORT=$((BASE + 0))
    REDIS_TLS_PORT=$((BASE + 1))
    REDIS_ACL_PORT=$((BASE + 2))
    CLUSTER_PORTS=()            # base+10 .. base+15, cluster bus ports = port + 10 (base+20 .. base+25)
    local i
    for i in 0 1 2 3 4 5; do CLUSTER_PORTS+=($((BASE + 10 + i))); done
    SENTINEL_MASTER_PORT=$((BASE + 30))
    SENTINEL_REPLICA_PORT=$((BASE + 31))
    SENTINEL_PORTS=($((BASE + 32)) $((BASE + 33)) $((BASE + 34)))
    MEMCACHED_PORT=$((BASE + 40))
    MEMCACHED_TLS_PORT=$((BASE + 41))
    PG_PORT=$((BASE + 50))
    PG_NOTLS_PORT=$((BASE + 51))
    MYSQL_PORT=$((BASE + 60))
    ALL_PORTS=($REDIS_PORT $REDIS_TLS_PORT $REDIS_ACL_PORT "${CLUSTER_PORTS[@]}")
    for i in "${CLUSTER_PORTS[@]}"; do ALL_PORTS+=($((i + 10))); done
    ALL_PORTS+=($SENTINEL_MASTER_PORT $SENTINEL_REPLICA_PORT "${SENTINEL_PORTS[@]}"
        $MEMCACHED_PORT $MEMCACHED_TLS_PORT $PG_PORT $PG_NOTLS_PORT $MYSQL_PORT)
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# ---------------------------------------------------------------------------------------------
# processes

# alive PID: the process exists and is not a zombie (daemons reparented to a non-reaping init
# linger as zombies for a while).
alive() {
    local stat
    [[ -n ${1:-} ]] || return 1
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ ${stat%% *} != Z ]]
}

# children PID: the PIDs whose parent is PID (procps may be missing on a minimal Debian).
children() {
    local f stat rest
    for f in /proc/[0-9]*/stat; do
        stat=$(cat "$f" 2>/dev/null) || continue
        rest=${stat##*) }
        rest=${rest#* }
        [[ ${rest%% *} == "$1" ]] && { f=${f#/proc/}; printf '%s\n' "${f%/stat}"; }
    done
    return 0
}

# exe_matches PID WORD: the process's command line mentions WORD (guards against a reused PID).
exe_matches() {
    local cmd
    cmd=$(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null) || return 1
    [[ $cmd == *"$2"* ]]
}

# ---------------------------------------------------------------------------------------------
# units: one server process each. $ROOT/units/NAME.conf holds KIND, PIDFILE, PORT, ...;
# $ROOT/bin/NAME.sh holds the exact start command (restart runs it again).

# new_unit NAME KIND PIDFILE [KEY=VALUE...] -- COMMAND...
new_unit() {
    local name=$1 kind=$2 pidfile=$3
    shift 3
    {
        printf 'KIND=%q\nPIDFILE=%q\n' "$kind" "$pidfile"
        while [[ $1 != -- ]]; do printf '%s=%q\n' "${1%%=*}" "${1#*=}"; shift; done
    } >"$ROOT/units/$name.conf"
    shift
    {
        printf '#!/usr/bin/env bash\n# start command of the %s server (%s)\nset -euo pipefail\n' "$name" "$kind"
        printf '%q ' "$@"
        printf '\n'
    } >"$ROOT/bin/$name.sh"
    chmod +x "$ROOT/bin/$name.sh"
}

# A unit whose command does not daemonize itself: the script backgrounds it in a new session and
# records its PID.
new_background_unit() {
    local name=$1 kind=$2 pidfile=$3 logfile=$4
    shift 4
    {
        printf '#!/usr/bin/env bash\n# start command of the %s server (%s)\nset -euo pipefail\n' "$name" "$kind"
        printf 'setsid '
        printf '%q ' "$@"
        printf '</dev/null >>%q 2>&1 &\n' "$logfile"
        printf 'echo $! >%q\n' "$pidfile"
    } >"$ROOT/bin/$name.sh"
    chmod +x "$ROOT/bin/$name.sh"
    printf 'KIND=%q\nPIDFILE=%q\n' "$kind" "$pidfile" >"$ROOT/units/$name.conf"
}

unit_conf() {
    [[ -f $ROOT/units/$1.conf ]] || die "no server '$1' in $ROOT (known: $(unit_names | tr '\n' ' '))"
    KIND='' PIDFILE='' PORT='' SOCKET='' AUTH='' TLS='' CLUSTER='' LOGFILE=''
    # shellcheck disable=SC1090
    source "$ROOT/units/$1.conf"
}

unit_names() { local f; for f in "$ROOT"/units/*.conf; do [[ -e $f ]] && basename "$f" .conf; done; return 0; }

unit_pid() {
    local pid=''
    [[ -f $PIDFILE ]] && pid=$(head -n 1 "$PIDFILE" 2>/dev/null | tr -dc 0-9)
    [[ -n $pid ]] && alive "$pid" && exe_matches "$pid" "$(kind_binary)" && { echo "$pid"; return 0; }
    return 1
}

kind_binary() {
    case $KIND in
    redis | sentinel) echo redis-server ;;
    memcached) echo memcached ;;
    postgres) echo postgres ;;
    mysql) echo mariadbd ;;
    esac
}

# launch_unit NAME: run its start script.
launch_unit() { bash "$ROOT/bin/$1.sh" </dev/null; }

# wait_unit NAME: poll until the server answers; fail early when its process died.
wait_unit() {
    unit_conf "$1"
    local deadline=$((SECONDS + READY_TIMEOUT)) started=$SECONDS
    while :; do
        if probe_unit; then return 0; fi
        if ((SECONDS - started >= 2)) && [[ $KIND != postgres ]] && ! unit_pid >/dev/null; then
            log "$1: the server process is not running"
            unit_log_tail
            return 1
        fi
        ((SECONDS < deadline)) || { log "$1: not ready after ${READY_TIMEOUT}s"; unit_log_tail; return 1; }
        sleep 0.1
    done
}

unit_log_tail() {
    [[ -n $LOGFILE && -f $LOGFILE ]] || return 0
    log "--- last lines of $LOGFILE"
    tail -n 25 "$LOGFILE" >&2 || true
}

redis_cli() {
    local args=(-h 127.0.0.1 -p "$PORT")
    [[ -n $AUTH ]] && args+=(--no-auth-warning -a "$AUTH")
    timeout 5 redis-cli "${args[@]}" "$@" 2>/dev/null
}

memcached_version() {
    if [[ -n $SOCKET ]]; then
        printf 'version\r\n' | timeout 3 socat -t 2 - "UNIX-CONNECT:$SOCKET" 2>/dev/null
    elif [[ -n $TLS ]]; then
        printf 'version\r\n' | timeout 3 socat -t 2 - "OPENSSL:127.0.0.1:$PORT,cafile=$TLS,commonname=localhost" 2>/dev/null
    else
        timeout 3 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"; printf "version\r\n" >&3; IFS= read -r line <&3; printf "%s\n" "$line"' _ "$PORT" 2>/dev/null
    fi
}

probe_unit() {
    case $KIND in
    redis | sentinel) [[ $(redis_cli ping) == PONG ]] ;;
    memcached) [[ $(memcached_version) == VERSION* ]] ;;
    postgres) "$PGBIN/pg_isready" -q -h "$SOCKET" -p "$PORT" -U postgres -d postgres -t 2 ;;
    mysql) timeout 5 mariadb-admin --no-defaults --socket="$SOCKET" -uroot --connect-timeout=2 ping >/dev/null 2>&1 ;;
    esac
}

# signal_unit NAME SIGNAL: prints the PIDs it signalled.
signal_unit() {
    unit_conf "$1"
    local pid kids=()
    pid=$(unit_pid) || return 0
    if [[ $2 == KILL && $KIND == postgres ]]; then
        # the postmaster and its backends all die at once, as on a machine crash
        mapfile -t kids < <(children "$pid")
    fi
    kill "-$2" "$pid" "${kids[@]}" 2>/dev/null || true
    printf '%s\n' "$pid" "${kids[@]}"
}

wait_pids_gone() {
    local deadline=$((SECONDS + $1)) pid left
    shift
    while :; do
        left=()
        for pid in "$@"; do alive "$pid" && left+=("$pid"); done
        ((${#left[@]} == 0)) && return 0
        ((SECONDS < deadline)) || { printf '%s\n' "${left[@]}"; return 1; }
        sleep 0.05
    done
}

stop_signal() {
    case $KIND in
    postgres) echo INT ;;  # fast shutdown
    *) echo TERM ;;
    esac
}

# ---------------------------------------------------------------------------------------------
# apt

ensure_packages() {
    local pkgs=(redis-server redis-tools memcached mariadb-server mariadb-client postgresql openssl socat
        libmemcached-tools) missing=() p
    for p in "${pkgs[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    ((${#missing[@]} == 0)) && [[ -x $PGBIN/postgres ]] && return 0
    ((${#missing[@]} == 0)) && missing=(postgresql-15)
    [[ $(id -u) == 0 ]] || die "missing packages (${missing[*]}) and not root"
    log "installing: ${missing[*]}"
    (
        flock -w 600 9 || die "could not lock the apt lock file"
        # keep package scripts from starting any service
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >&2
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
    ) 9>/tmp/sess-services-apt.lock
}

# ---------------------------------------------------------------------------------------------
# start

gen_tls() {
    local d=$ROOT/tls
    mkdir -p "$d"
    cat >"$d/openssl.cnf" <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth,clientAuth
subjectAltName = DNS:localhost,IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
    local ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
    (
        cd "$d"
        openssl req -config openssl.cnf -x509 "${ec[@]}" -days 3650 -subj /CN=sess-test-ca -extensions ca \
            -keyout ca.key -out ca.crt
        openssl req -config openssl.cnf -x509 "${ec[@]}" -days 3650 -subj /CN=sess-unknown-ca -extensions ca \
            -keyout unknown-ca.key -out unknown-ca.crt
        openssl req -config openssl.cnf -new "${ec[@]}" -subj /CN=localhost -keyout server.key -out server.csr
        openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
            -extfile openssl.cnf -extensions server -out server.crt
        chmod 600 ./*.key
        chmod 644 ./*.crt
    ) >"$ROOT/logs/tls.log" 2>&1 || { cat "$ROOT/logs/tls.log" >&2; die "could not create the TLS material"; }
}

redis_common() { # DIR PORT
    printf '%s\n' --bind 127.0.0.1 --port "$2" --save '' --appendonly no --daemonize yes \
        --pidfile "$1/redis.pid" --dir "$1" --logfile "$1/redis.log" --repl-diskless-sync-delay 0
}

start_redis() {
    local d=$ROOT/redis t=$ROOT/tls common
    mkdir -p "$d/acl"
    mapfile -t common < <(redis_common "$d" "$REDIS_PORT")
    new_unit redis redis "$d/redis.pid" PORT="$REDIS_PORT" LOGFILE="$d/redis.log" -- \
        redis-server "${common[@]}" --unixsocket "$d/redis.sock" --unixsocketperm 700 \
        --tls-port "$REDIS_TLS_PORT" --tls-cert-file "$t/server.crt" --tls-key-file "$t/server.key" \
        --tls-ca-cert-file "$t/ca.crt" --tls-auth-clients optional
    mapfile -t common < <(redis_common "$d/acl" "$REDIS_ACL_PORT")
    new_unit redis-acl redis "$d/acl/redis.pid" PORT="$REDIS_ACL_PORT" AUTH="$REDIS_ACL_DEFAULT_PASSWORD" \
        LOGFILE="$d/acl/redis.log" -- \
        redis-server "${common[@]}" --requirepass "$REDIS_ACL_DEFAULT_PASSWORD" \
        --user "$REDIS_ACL_USER" on ">$REDIS_ACL_PASSWORD" '~*' '&*' '+@all'
    launch_unit redis
    launch_unit redis-acl
    wait_unit redis
    wait_unit redis-acl
    unit_conf redis
    [[ $(timeout 5 redis-cli --tls --cacert "$t/ca.crt" -h 127.0.0.1 -p "$REDIS_TLS_PORT" ping) == PONG ]] ||
        die "redis TLS port $REDIS_TLS_PORT does not answer"
    [[ $(timeout 5 redis-cli -s "$d/redis.sock" ping) == PONG ]] || die "redis socket does not answer"
    [[ $(timeout 5 redis-cli -h 127.0.0.1 -p "$REDIS_ACL_PORT" --user "$REDIS_ACL_USER" --pass "$REDIS_ACL_PASSWORD" \
        --no-auth-warning ping) == PONG ]] || die "redis ACL user cannot log in"
}

cluster_unit() { echo "cluster-node-$1"; }

start_cluster() {
    local p d common nodes=() u
    for p in "${CLUSTER_PORTS[@]}"; do
        d=$ROOT/cluster/$p
        mkdir -p "$d"
        mapfile -t common < <(redis_common "$d" "$p")
        u=$(cluster_unit "$p")
        # password-protected (requirepass + masterauth), with the ACL user of the standalone server
        new_unit "$u" redis "$d/redis.pid" PORT="$p" CLUSTER=1 AUTH="$REDIS_CLUSTER_PASSWORD" \
            LOGFILE="$d/redis.log" -- \
            redis-server "${common[@]}" --cluster-enabled yes --cluster-port $((p + 10)) \
            --cluster-config-file "$d/nodes.conf" --cluster-node-timeout 2000 \
            --requirepass "$REDIS_CLUSTER_PASSWORD" --masterauth "$REDIS_CLUSTER_PASSWORD" \
            --user "$REDIS_ACL_USER" on ">$REDIS_ACL_PASSWORD" '~*' '&*' '+@all'
        launch_unit "$u"
        nodes+=("127.0.0.1:$p")
    done
    for p in "${CLUSTER_PORTS[@]}"; do wait_unit "$(cluster_unit "$p")"; done
    timeout 60 redis-cli --no-auth-warning -a "$REDIS_CLUSTER_PASSWORD" \
        --cluster create "${nodes[@]}" --cluster-replicas 1 --cluster-yes \
        >"$ROOT/cluster/create.log" 2>&1 || { cat "$ROOT/cluster/create.log" >&2; die "redis-cli --cluster create failed"; }
    wait_cluster_healthy
}

# Every node: cluster_state:ok, knows 6 nodes, lists 3 replicas; every replica's link is up.
cluster_healthy() {
    local p info nodes
    for p in "${CLUSTER_PORTS[@]}"; do
        PORT=$p AUTH=$REDIS_CLUSTER_PASSWORD
        info=$(redis_cli cluster info) || return 1
        [[ $info == *cluster_state:ok* && $info == *cluster_known_nodes:6* ]] || return 1
        nodes=$(redis_cli cluster nodes) || return 1
        [[ $(awk '$3 ~ /slave/ && $3 !~ /fail/ { r++ } $3 ~ /master/ && $3 !~ /fail/ { m++ }
            END { print m + 0, r + 0 }' <<<"$nodes") == "3 3" ]] || return 1
        info=$(redis_cli info replication) || return 1
        if [[ $info == *role:slave* ]]; then
            [[ $info == *master_link_status:up* ]] || return 1
        fi
    done
}

wait_cluster_healthy() {
    local deadline=$((SECONDS + READY_TIMEOUT))
    until cluster_healthy; do
        ((SECONDS < deadline)) || {
            local p
            for p in "${CLUSTER_PORTS[@]}"; do
                log "--- node $p"; PORT=$p AUTH=$REDIS_CLUSTER_PASSWORD; redis_cli cluster nodes >&2 || true
                tail -n 5 "$ROOT/cluster/$p/redis.log" >&2 || true
            done
            die "the redis cluster is not healthy after ${READY_TIMEOUT}s"
        }
        sleep 0.2
    done
}

start_sentinel() {
    local d=$ROOT/sentinel common p sd
    mkdir -p "$d/master" "$d/replica"
    mapfile -t common < <(redis_common "$d/master" "$SENTINEL_MASTER_PORT")
    new_unit sentinel-master redis "$d/master/redis.pid" PORT="$SENTINEL_MASTER_PORT" LOGFILE="$d/master/redis.log" -- \
        redis-server "${common[@]}"
    mapfile -t common < <(redis_common "$d/replica" "$SENTINEL_REPLICA_PORT")
    new_unit sentinel-replica redis "$d/replica/redis.pid" PORT="$SENTINEL_REPLICA_PORT" LOGFILE="$d/replica/redis.log" -- \
        redis-server "${common[@]}" --replicaof 127.0.0.1 "$SENTINEL_MASTER_PORT"
    launch_unit sentinel-master
    launch_unit sentinel-replica
    wait_unit sentinel-master
    wait_unit sentinel-replica
    # sentinels learn the replicas from the master's INFO on connect: start them once it is linked
    local deadline=$((SECONDS + READY_TIMEOUT))
    PORT=$SENTINEL_REPLICA_PORT AUTH=''
    until [[ $(redis_cli info replication) == *master_link_status:up* ]]; do
        ((SECONDS < deadline)) || { unit_conf sentinel-replica; unit_log_tail; die "the sentinel replica never linked"; }
        sleep 0.1
    done
    for p in "${SENTINEL_PORTS[@]}"; do
        sd=$d/s$p
        mkdir -p "$sd"
        cat >"$sd/sentinel.conf" <<EOF
port $p
bind 127.0.0.1
daemonize yes
pidfile $sd/sentinel.pid
logfile $sd/sentinel.log
dir $sd
sentinel resolve-hostnames no
sentinel monitor $SENTINEL_MASTER_NAME 127.0.0.1 $SENTINEL_MASTER_PORT 2
sentinel down-after-milliseconds $SENTINEL_MASTER_NAME 1000
sentinel failover-timeout $SENTINEL_MASTER_NAME 3000
EOF
        new_unit "sentinel-$p" sentinel "$sd/sentinel.pid" PORT="$p" LOGFILE="$sd/sentinel.log" -- \
            redis-server "$sd/sentinel.conf" --sentinel
        launch_unit "sentinel-$p"
    done
    for p in "${SENTINEL_PORTS[@]}"; do wait_unit "sentinel-$p"; done
    deadline=$((SECONDS + READY_TIMEOUT))
    until sentinels_ready; do
        ((SECONDS < deadline)) || {
            for p in "${SENTINEL_PORTS[@]}"; do unit_conf "sentinel-$p"; unit_log_tail; done
            die "the sentinels do not agree on $SENTINEL_MASTER_NAME"
        }
        sleep 0.2
    done
}

# Each sentinel knows the master, the replica and the two other sentinels.
sentinels_ready() {
    local p addr master
    for p in "${SENTINEL_PORTS[@]}"; do
        PORT=$p AUTH=''
        addr=$(redis_cli sentinel get-master-addr-by-name "$SENTINEL_MASTER_NAME" | tr '\n' ' ') || return 1
        [[ $addr == "127.0.0.1 $SENTINEL_MASTER_PORT " ]] || return 1
        [[ $(redis_cli sentinel replicas "$SENTINEL_MASTER_NAME") == *"$SENTINEL_REPLICA_PORT"* ]] || return 1
        master=$(redis_cli sentinel master "$SENTINEL_MASTER_NAME" | awk 'prev == "num-other-sentinels" { print; exit } { prev = $0 }')
        [[ $master == 2 ]] || return 1
    done
}

start_memcached() {
    local d=$ROOT/memcached t=$ROOT/tls
    mkdir -p "$d"
    local common=(-d -u root -U 0 -m 256 -I 4m)
    new_unit memcached-tcp memcached "$d/tcp.pid" PORT="$MEMCACHED_PORT" LOGFILE="$d/tcp.log" -- \
        memcached "${common[@]}" -l 127.0.0.1 -p "$MEMCACHED_PORT" -P "$d/tcp.pid"
    new_unit memcached-tls memcached "$d/tls.pid" PORT="$MEMCACHED_TLS_PORT" TLS="$t/ca.crt" LOGFILE="$d/tls.log" -- \
        memcached "${common[@]}" -l 127.0.0.1 -p "$MEMCACHED_TLS_PORT" -P "$d/tls.pid" \
        -Z -o "ssl_chain_cert=$t/server.crt,ssl_key=$t/server.key"
    new_unit memcached-socket memcached "$d/socket.pid" SOCKET="$d/memcached.sock" LOGFILE="$d/socket.log" -- \
        memcached "${common[@]}" -s "$d/memcached.sock" -a 700 -P "$d/socket.pid"
    local u
    for u in memcached-tcp memcached-tls memcached-socket; do launch_unit "$u" 2>"$d/${u#memcached-}.log"; done
    for u in memcached-tcp memcached-tls memcached-socket; do wait_unit "$u"; done
}

pg_conf() { # DATADIR PORT SSL
    local t=$ROOT/pg/tls
    {
        printf '\n# sess-services\n'
        printf "listen_addresses = '127.0.0.1'\nport = %s\nunix_socket_directories = '%s'\n" "$2" "$ROOT/pg/run"
        if [[ $3 == on ]]; then
            printf "max_connections = 600\nssl = on\nssl_cert_file = '%s'\nssl_key_file = '%s'\nssl_ca_file = '%s'\n" \
                "$t/server.crt" "$t/server.key" "$t/ca.crt"
        else
            printf "max_connections = 50\nshared_buffers = 16MB\nssl = off\n"
        fi
    } >>"$1/postgresql.conf"
}

start_postgres() {
    local d=$ROOT/pg
    mkdir -p "$d/run" "$d/tls"
    cp "$ROOT/tls/server.crt" "$ROOT/tls/server.key" "$ROOT/tls/ca.crt" "$d/tls/"
    chmod 600 "$d/tls/server.key"
    chown -R postgres:postgres "$d"
    runuser -u postgres -- "$PGBIN/initdb" -D "$d/data" -U postgres -E UTF8 --locale=C.UTF-8 \
        --auth-local=trust --auth-host=scram-sha-256 -N >"$d/initdb.log" 2>&1 ||
        { tail -n 30 "$d/initdb.log" >&2; die "initdb failed"; }
    runuser -u postgres -- cp -a "$d/data" "$d/data-notls"
    pg_conf "$d/data" "$PG_PORT" on # appending keeps the postgres-owned files' owner
    pg_conf "$d/data-notls" "$PG_NOTLS_PORT" off
    new_unit postgres postgres "$d/data/postmaster.pid" PORT="$PG_PORT" SOCKET="$d/run" LOGFILE="$d/postgres.log" -- \
        runuser -u postgres -- "$PGBIN/pg_ctl" -D "$d/data" -l "$d/postgres.log" -w -t 60 -s start
    new_unit postgres-notls postgres "$d/data-notls/postmaster.pid" PORT="$PG_NOTLS_PORT" SOCKET="$d/run" \
        LOGFILE="$d/postgres-notls.log" -- \
        runuser -u postgres -- "$PGBIN/pg_ctl" -D "$d/data-notls" -l "$d/postgres-notls.log" -w -t 60 -s start
    local u pids=() rc=0 pid
    for u in postgres postgres-notls; do launch_unit "$u" & pids+=($!); done
    for pid in "${pids[@]}"; do wait "$pid" || rc=1; done
    ((rc == 0)) || { for u in postgres postgres-notls; do unit_conf "$u"; unit_log_tail; done; die "pg_ctl start failed"; }
    for u in postgres postgres-notls; do
        wait_unit "$u"
        timeout 30 psql -X -q -v ON_ERROR_STOP=1 -h "$d/run" -p "$PORT" -U postgres -d postgres \
            -c "CREATE ROLE $SQL_USER LOGIN PASSWORD '$SQL_PASSWORD'" \
            -c "CREATE DATABASE $SQL_DATABASE OWNER $SQL_USER" >"$d/setup-$u.log" 2>&1 ||
            { cat "$d/setup-$u.log" >&2; die "could not create the role and database on $u"; }
    done
    PGPASSWORD=$SQL_PASSWORD timeout 10 psql -X -q -At "sslmode=require host=127.0.0.1 port=$PG_PORT user=$SQL_USER dbname=$SQL_DATABASE" \
        -c 'SELECT 1' >/dev/null || die "cannot log in to postgres over TLS as $SQL_USER"
}

start_mysql() {
    local d=$ROOT/mysql t=$ROOT/tls plugin=()
    mkdir -p "$d/run" "$d/tmp"
    # own tmpdir: a starting mariadbd deletes every #sql* file in its tmpdir, also another instance's
    mariadb-install-db --no-defaults --user=root --datadir="$d/data" --auth-root-authentication-method=normal \
        --skip-test-db --skip-name-resolve --tmpdir="$d/tmp" >"$d/install.log" 2>&1 ||
        { grep -iE 'error|warn' "$d/install.log" >&2; tail -n 30 "$d/install.log" >&2; die "mariadb-install-db failed"; }
    local plugindir
    plugindir=$(mariadbd --no-defaults --verbose --help 2>/dev/null | awk '$1 == "plugin-dir" { print $2 }')
    [[ -n $plugindir && -f $plugindir/auth_ed25519.so ]] && plugin=(--plugin-load-add=auth_ed25519)
    new_background_unit mysql mysql "$d/run/mariadbd.launch.pid" "$d/out.log" \
        mariadbd --no-defaults --user=root --datadir="$d/data" --tmpdir="$d/tmp" --port="$MYSQL_PORT" --bind-address=127.0.0.1 \
        --socket="$d/run/mysqld.sock" --pid-file="$d/run/mysqld.pid" --log-error="$d/error.log" \
        --skip-name-resolve --max-allowed-packet=64M --max-connections=200 \
        --ssl-cert="$t/server.crt" --ssl-key="$t/server.key" --ssl-ca="$t/ca.crt" "${plugin[@]}"
    printf 'PORT=%q\nSOCKET=%q\nLOGFILE=%q\n' "$MYSQL_PORT" "$d/run/mysqld.sock" "$d/error.log" >>"$ROOT/units/mysql.conf"
    launch_unit mysql
    wait_unit mysql
    timeout 30 mariadb --no-defaults --socket="$d/run/mysqld.sock" -uroot >"$d/setup.log" 2>&1 <<EOF || { cat "$d/setup.log" >&2; die "could not create the mysql users"; }
CREATE USER '$SQL_USER'@'127.0.0.1' IDENTIFIED BY '$SQL_PASSWORD';
CREATE USER '$SQL_USER'@'localhost' IDENTIFIED BY '$SQL_PASSWORD';
CREATE USER '$MYSQL_TLS_USER'@'127.0.0.1' IDENTIFIED BY '$MYSQL_TLS_PASSWORD' REQUIRE SSL;
CREATE DATABASE $SQL_DATABASE;
GRANT ALL PRIVILEGES ON $SQL_DATABASE.* TO '$SQL_USER'@'127.0.0.1', '$SQL_USER'@'localhost', '$MYSQL_TLS_USER'@'127.0.0.1';
EOF
    timeout 10 mariadb --no-defaults -h 127.0.0.1 -P "$MYSQL_PORT" -u"$MYSQL_TLS_USER" -p"$MYSQL_TLS_PASSWORD" \
        --ssl --ssl-ca="$t/ca.crt" --ssl-verify-server-cert "$SQL_DATABASE" -e 'SELECT 1' >/dev/null ||
        die "cannot log in to mysql over TLS as $MYSQL_TLS_USER"
}

write_env() {
    local cluster='' sentinels='' p
    for p in "${CLUSTER_PORTS[@]}"; do cluster+="${cluster:+,}127.0.0.1:$p"; done
    for p in "${SENTINEL_PORTS[@]}"; do sentinels+="${sentinels:+,}127.0.0.1:$p"; done
    local vars=(
        SERVICES_ROOT="$ROOT"
        TLS_CA_FILE="$ROOT/tls/ca.crt"
        TLS_UNKNOWN_CA_FILE="$ROOT/tls/unknown-ca.crt"
        REDIS_HOST=127.0.0.1
        REDIS_PORT="$REDIS_PORT"
        REDIS_TLS_PORT="$REDIS_TLS_PORT"
        REDIS_SOCKET="$ROOT/redis/redis.sock"
        REDIS_ACL_PORT="$REDIS_ACL_PORT"
        REDIS_ACL_DEFAULT_PASSWORD="$REDIS_ACL_DEFAULT_PASSWORD"
        REDIS_ACL_USER="$REDIS_ACL_USER"
        REDIS_ACL_PASSWORD="$REDIS_ACL_PASSWORD"
        REDIS_CLUSTER_NODES="$cluster"
        REDIS_CLUSTER_PASSWORD="$REDIS_CLUSTER_PASSWORD"
        REDIS_SENTINEL_NODES="$sentinels"
        REDIS_SENTINEL_MASTER="$SENTINEL_MASTER_NAME"
        MEMCACHED_HOST=127.0.0.1
        MEMCACHED_PORT="$MEMCACHED_PORT"
        MEMCACHED_TLS_PORT="$MEMCACHED_TLS_PORT"
        MEMCACHED_SOCKET="$ROOT/memcached/memcached.sock"
        PG_HOST=127.0.0.1
        PG_PORT="$PG_PORT"
        PG_NOTLS_PORT="$PG_NOTLS_PORT"
        PG_USER="$SQL_USER"
        PG_PASSWORD="$SQL_PASSWORD"
        PG_DATABASE="$SQL_DATABASE"
        PG_SOCKET_DIR="$ROOT/pg/run"
        PG_SUPERUSER=postgres
        MYSQL_HOST=127.0.0.1
        MYSQL_PORT="$MYSQL_PORT"
        MYSQL_SOCKET="$ROOT/mysql/run/mysqld.sock"
        MYSQL_USER="$SQL_USER"
        MYSQL_PASSWORD="$SQL_PASSWORD"
        MYSQL_DATABASE="$SQL_DATABASE"
        MYSQL_TLS_USER="$MYSQL_TLS_USER"
        MYSQL_TLS_PASSWORD="$MYSQL_TLS_PASSWORD"
    )
    local v
    for v in "${vars[@]}"; do printf 'export %s=%s\n' "${v%%=*}" "$(shell_quote "${v#*=}")"; done >"$ROOT/env"
}

# shell_quote VALUE: VALUE as is when it needs no quoting, else in single quotes.
shell_quote() {
    if [[ $1 =~ ^[A-Za-z0-9_./:,@%+=-]+$ ]]; then
        printf '%s' "$1"
    else
        printf "'%s'" "${1//\'/\'\\\'\'}"
    fi
}

# On an interrupted start: end the group subshells still starting servers, so none starts after
# the stop.
stop_groups() {
    local pid deadline=$((SECONDS + 10))
    for pid in "${GROUP_PIDS[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
    for pid in "${GROUP_PIDS[@]}"; do
        while kill -0 -- "-$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
        kill -KILL -- "-$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
}

cmd_group() {
    ROOT=$SERVICES_ROOT
    layout
    "start_$1"
}

cmd_start() {
    local t0=$SECONDS
    ensure_packages
    layout
    local p busy=()
    for p in "${ALL_PORTS[@]}"; do port_open "$p" && busy+=("$p"); done
    ((${#busy[@]} == 0)) || die "ports already in use: ${busy[*]} (another instance on SERVICES_PORT_BASE=$BASE? pick another base)"

    ROOT=$(mktemp -d /tmp/sess-services.XXXXXX)
    chmod 755 "$ROOT" # the postgres user reads its files below it
    touch "$ROOT/$ROOT_MARKER"
    mkdir -p "$ROOT/bin" "$ROOT/units" "$ROOT/logs"
    printf 'BASE=%s\n' "$BASE" >"$ROOT/ports"
    export SERVICES_ROOT=$ROOT SERVICES_PORT_BASE=$BASE
    GROUP_PIDS=()
    trap 'log "interrupted"; stop_groups; cmd_stop "$ROOT" >&2; exit 130' INT TERM

    gen_tls
    local groups=(redis cluster sentinel memcached postgres mysql) g failed=()
    for g in "${groups[@]}"; do
        # each group in its own session, so an interrupted start can end all of its helpers
        # (initdb, mariadb-install-db, redis-cli); the servers detach into sessions of their own
        setsid bash "$SCRIPT" _group "$g" >"$ROOT/logs/$g.log" 2>&1 </dev/null &
        GROUP_PIDS+=($!)
    done
    local i
    for i in "${!groups[@]}"; do
        wait "${GROUP_PIDS[$i]}" || failed+=("${groups[$i]}")
    done
    GROUP_PIDS=()
    if ((${#failed[@]} > 0)); then
        for g in "${failed[@]}"; do
            log "=== $g failed to start; its log ($ROOT/logs/$g.log):"
            tail -n 60 "$ROOT/logs/$g.log" >&2 || true
        done
        log "stopping what started"
        cmd_stop "$ROOT" >&2 || true
        exit 1
    fi
    trap - INT TERM
    write_env
    cat "$ROOT/env"
    log "all servers up in $((SECONDS - t0))s; SERVICES_ROOT=$ROOT (source $ROOT/env)"
}

# ---------------------------------------------------------------------------------------------
# stop / kill / restart / status

require_root_dir() {
    ROOT=${1:-${SERVICES_ROOT:-}}
    [[ -n $ROOT ]] || die "SERVICES_ROOT is not set (source \$SERVICES_ROOT/env, or pass the directory)"
    [[ -f $ROOT/$ROOT_MARKER ]] || die "$ROOT is not a running services directory"
}

cmd_stop() {
    ROOT=${1:-${SERVICES_ROOT:-}}
    if [[ -z $ROOT ]]; then log "nothing to stop (SERVICES_ROOT is not set)"; return 0; fi
    if [[ ! -e $ROOT ]]; then log "nothing to stop ($ROOT is gone)"; return 0; fi
    [[ -f $ROOT/$ROOT_MARKER ]] || die "refusing to stop/remove $ROOT: not a services directory"
    local u pids=() pid
    local -A unit_of=()
    for u in $(unit_names); do
        unit_conf "$u"
        while read -r pid; do [[ -n $pid ]] && pids+=("$pid") && unit_of[$pid]=$u; done < <(signal_unit "$u" "$(stop_signal)")
    done
    local left named=()
    if ! left=$(wait_pids_gone 20 "${pids[@]}"); then
        for pid in $left; do named+=("$pid (${unit_of[$pid]:-?})"); done
        log "still running after 20s, killing: ${named[*]}"
        # shellcheck disable=SC2086
        kill -KILL $left 2>/dev/null || true
        wait_pids_gone 10 $left >/dev/null || log "WARNING: could not stop $left"
    fi
    rm -rf -- "$ROOT" 2>/dev/null || { sleep 1; rm -rf -- "$ROOT"; }
    log "stopped; removed $ROOT"
}

# unit names of a NAME given to kill/restart
resolve_name() {
    case $1 in
    memcached) echo memcached-tcp memcached-tls memcached-socket ;;
    cluster-node:*) echo "cluster-node-${1#cluster-node:}" ;;
    sentinel:*) echo "sentinel-${1#sentinel:}" ;;
    *) echo "$1" ;;
    esac
}

# The unit that is the sentinels' master now (sentinel-master, or sentinel-replica after a failover).
sentinel_master_unit() {
    local f p addr u
    for f in "$ROOT"/units/sentinel-[0-9]*.conf; do
        p=$(basename "$f" .conf)
        p=${p#sentinel-}
        addr=$(timeout 5 redis-cli -h 127.0.0.1 -p "$p" sentinel get-master-addr-by-name "$SENTINEL_MASTER_NAME" 2>/dev/null |
            tail -n 1) || continue
        [[ $addr =~ ^[0-9]+$ ]] || continue
        for u in sentinel-master sentinel-replica; do
            unit_conf "$u"
            [[ $PORT == "$addr" ]] && { echo "$u"; return 0; }
        done
    done
    die "no sentinel names the current master of $SENTINEL_MASTER_NAME"
}

# A sentinel-watched server restarted after a failover comes back as a master (its command line
# has no replicaof): make it a replica of the promoted master at once, as the sentinels would do
# within 10 s, and wait until it is linked, so no test sees two masters.
sentinel_rejoin() {
    local current master_port deadline
    current=$(sentinel_master_unit)
    [[ $current == "$1" ]] && return 0
    unit_conf "$current"
    master_port=$PORT
    unit_conf "$1"
    redis_cli replicaof 127.0.0.1 "$master_port" >/dev/null || die "$1: REPLICAOF failed"
    deadline=$((SECONDS + READY_TIMEOUT))
    until [[ $(redis_cli info replication) == *master_link_status:up* ]]; do
        ((SECONDS < deadline)) || die "$1 did not link to the master on port $master_port"
        sleep 0.1
    done
}

cmd_kill() {
    [[ -n ${1:-} ]] || die "usage: services.sh kill NAME"
    require_root_dir ""
    local u pids=() pid units
    if [[ $1 == sentinel-master ]]; then
        # the current master, which restart sentinel-master brings back
        units=$(sentinel_master_unit)
        echo "$units" >"$ROOT/sentinel-master.killed"
    else
        units=$(resolve_name "$1")
    fi
    for u in $units; do
        unit_conf "$u"
        while read -r pid; do [[ -n $pid ]] && pids+=("$pid"); done < <(signal_unit "$u" KILL)
    done
    ((${#pids[@]} > 0)) || { log "$1 was not running"; return 0; }
    wait_pids_gone 10 "${pids[@]}" >/dev/null || die "$1 did not die"
    log "killed $1 ($units: pid ${pids[*]})"
}

cmd_restart() {
    [[ -n ${1:-} ]] || die "usage: services.sh restart NAME"
    require_root_dir ""
    local u pids=() pid units
    if [[ $1 == sentinel-master ]]; then
        # the master killed last (it comes back with its own command line; the sentinels then make
        # it a replica of the promoted one), else the current master
        if [[ -f $ROOT/sentinel-master.killed ]]; then
            units=$(<"$ROOT/sentinel-master.killed")
            rm -f "$ROOT/sentinel-master.killed"
        else
            units=$(sentinel_master_unit)
        fi
    else
        units=$(resolve_name "$1")
    fi
    # a restart of a running server first stops it hard, then starts it with the same command
    for u in $units; do
        unit_conf "$u"
        while read -r pid; do [[ -n $pid ]] && pids+=("$pid"); done < <(signal_unit "$u" KILL)
    done
    ((${#pids[@]} == 0)) || wait_pids_gone 10 "${pids[@]}" >/dev/null || die "$1 did not die"
    for u in $units; do
        unit_conf "$u"
        # the old process is dead (maybe a zombie not yet reaped: postgres would take the PID in
        # its stale postmaster.pid for a running server)
        rm -f "$PIDFILE"
        [[ $KIND == postgres ]] && rm -f "$SOCKET/.s.PGSQL.$PORT.lock"
        launch_unit "$u" >>"${LOGFILE:-/dev/null}" 2>&1 || { unit_log_tail; die "$u: the start command failed"; }
    done
    for u in $units; do
        wait_unit "$u" || die "$u did not come back"
        if [[ -n $CLUSTER ]]; then
            local deadline=$((SECONDS + READY_TIMEOUT))
            until [[ $(redis_cli cluster info) == *cluster_state:ok* ]]; do
                ((SECONDS < deadline)) || die "$u: cluster_state is not ok after ${READY_TIMEOUT}s"
                sleep 0.1
            done
        fi
    done
    for u in $units; do
        [[ $u == sentinel-master || $u == sentinel-replica ]] && sentinel_rejoin "$u"
    done
    log "restarted $1 ($units)"
}

cmd_status() {
    require_root_dir "${1:-}"
    local u pid
    for u in $(unit_names); do
        unit_conf "$u"
        if pid=$(unit_pid); then
            printf '%-22s %-9s port %-6s pid %s\n' "$u" "$KIND" "${PORT:--}" "$pid"
        else
            printf '%-22s %-9s port %-6s DOWN\n' "$u" "$KIND" "${PORT:--}"
        fi
    done
}

main() {
    local cmd=${1:-}
    shift || true
    case $cmd in
    start) cmd_start "$@" ;;
    stop) cmd_stop "$@" ;;
    kill) cmd_kill "$@" ;;
    restart) cmd_restart "$@" ;;
    status) cmd_status "$@" ;;
    _group) cmd_group "$@" ;; # internal: one group of servers, for start
    *)
        sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2
        exit 2
        ;;
    esac
}

main "$@"
