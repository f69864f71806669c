#!/usr/bin/env bash
# tests/bench/run.sh - loopback benchmark of tproxy against no proxy (direct),
# socat and haproxy, and of its TLS interception against sslsplit.
# See tests/bench/README.md.
#
#   tests/bench/run.sh [bulk] [rr] [connrate] [conc] [idlerr] [udp] [tls] [redis]
#                                                                    (default: all)
#
# Markdown tables go to stdout, progress to stderr.  Knobs (environment):
#   TPROXY=./tproxy      the binary (relative paths: from the repo top)
#   TPROXY_BEFORE=PATH   a second tproxy binary (e.g. from before a refactor), measured
#                        side by side as 'tproxy-before' (added to PROXIES when set)
#   THROTTLE=100000m     the rate of the tproxy-throttle row (throttle:RATE, far above the link)
#   REPS=3               repetitions; tables show the median
#   PROXIES=...          comma list out of direct,tproxy,tproxy-delay0,tproxy-throttle,
#                        tproxy-pcap,tproxy-before,socat,haproxy,haproxy-splice,sslsplit,
#                        tproxy-auto (tls only: a tls=auto listener instead of tls),
#                        and the connrate-only pairs tproxy-pair,tproxy-pair-pp,
#                        haproxy-pair,haproxy-pair-pp (two instances in a row; -pp: a
#                        PROXY v2 header between them), and the bulk and connrate rows
#                        of the explicit proxies tproxy-socks5 (socks5-listen orig),
#                        tproxy-http (http-listen orig, CONNECT) and microsocks, whose
#                        clients do the proxy's handshake on every connect (load -x),
#                        and the scale-out rows of bulk, connrate and redis:
#                        tproxy-x2 (two processes on one port with reuseport) beside
#                        haproxy-x2 (nbthread 2)
#                        (default: all but tproxy-before, which TPROXY_BEFORE adds; the
#                        default measures tproxy-delay0,tproxy-throttle,tproxy-pcap in bulk,
#                        rr and connrate only, a PROXIES that names them in conc too)
#   PCAP_DIR=/dev/shm    where tproxy-pcap writes its capture (a tmpfs; emptied every
#                        0.2 s while the row runs, so that a bulk run cannot fill memory)
#   BULK_SECS=2 BULK_WARM=0.5 CONNRATE_SECS=2 CONNRATE_THREADS=8 RR_N=10000
#   TLS_SECS=2 TLS_THREADS=4 TLS_BULK_SECS=2   tls: handshake loop, bulk window
#   CONC_C=5000 CONC_MAX=(fd hard limit - 200) / 2, at most 10000 (0: skip that row)
#   UDP_RR_N=10000 UDP_BURST_N=100000
#   REDIS_N=200000       redis: requests per redis-benchmark run (50 clients, SET and
#                        GET, once with -P 1 and once with -P 16) against redis-server
#   IDLE_N=CONC_MAX      idlerr: idle connections held open during the second rr
#   RR_CPU=0             pin client, proxy and server to this CPU for rr and udp-rr
#                        (RR_CPU= : do not pin)
#   QUIET_PCT=15         warn when, before a repetition, other processes use more
#                        than this % of one CPU
#   QUIET_WAIT=0         ... after waiting up to this many seconds for it to calm down
#   KEEP=1               keep the scratch directory (build, configs, logs)
set -eu

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
cd "$top"

TPROXY=${TPROXY:-./tproxy}
TPROXY_BEFORE=${TPROXY_BEFORE:-}
THROTTLE=${THROTTLE:-100000m}
REPS=${REPS:-3}
PROXIES_GIVEN=${PROXIES:+1}
PROXIES=${PROXIES:-direct,tproxy,tproxy-delay0,tproxy-throttle,tproxy-pcap,socat,haproxy,haproxy-splice,sslsplit,tproxy-auto,tproxy-pair,tproxy-pair-pp,haproxy-pair,haproxy-pair-pp,tproxy-socks5,tproxy-http,microsocks,tproxy-x2,haproxy-x2}
# TPROXY_BEFORE selects tproxy-before (rows follow the order of the lists below)
if [ -n "$TPROXY_BEFORE" ]; then
    case ",$PROXIES," in *,tproxy-before,*) ;; *) PROXIES=$PROXIES,tproxy-before ;; esac
fi
BULK_SECS=${BULK_SECS:-2}
BULK_WARM=${BULK_WARM:-0.5}
CONNRATE_SECS=${CONNRATE_SECS:-2}
CONNRATE_THREADS=${CONNRATE_THREADS:-8}
RR_N=${RR_N:-10000}
CONC_C=${CONC_C:-5000}
UDP_RR_N=${UDP_RR_N:-10000}
UDP_BURST_N=${UDP_BURST_N:-100000}
REDIS_N=${REDIS_N:-200000}
TLS_SECS=${TLS_SECS:-2}
TLS_THREADS=${TLS_THREADS:-4}
TLS_BULK_SECS=${TLS_BULK_SECS:-2}
RR_CPU=${RR_CPU-0}
KEEP=${KEEP:-0}
QUIET_PCT=${QUIET_PCT:-15}
QUIET_WAIT=${QUIET_WAIT:-0}
PCAP_DIR=${PCAP_DIR:-/dev/shm}

ALL_SCENARIOS="bulk rr connrate conc idlerr udp tls redis"
# tproxy-delay0 / tproxy-throttle: tproxy with an idle filter appended to the route
# (TCP only); tproxy-pcap: with pcap:FILE (a file on tmpfs); tproxy-before: the
# TPROXY_BEFORE binary
TCP_PROXIES="direct tproxy tproxy-before tproxy-delay0 tproxy-throttle tproxy-pcap socat haproxy haproxy-splice"
# conc takes ~1.5 min per tproxy row (C=5000 REPS times, C=CONC_MAX once): the
# default PROXIES leaves the filter rows out of it
CONC_PROXIES=$TCP_PROXIES
[ -n "$PROXIES_GIVEN" ] || CONC_PROXIES="direct tproxy tproxy-before socat haproxy haproxy-splice"
UDP_PROXIES="direct tproxy tproxy-before socat"
# two instances in a row, without and with a PROXY v2 header between them
PAIR_PROXIES="tproxy-pair tproxy-pair-pp haproxy-pair haproxy-pair-pp"
# tproxy-auto: tproxy with a tls=auto listener (detection, then as tls)
TLS_PROXIES="direct tproxy tproxy-auto tproxy-before sslsplit"
# explicit proxies (bulk and connrate): the client names the sink to them
XP_PROXIES="tproxy-socks5 tproxy-http microsocks"
# one port, two CPUs (bulk, connrate, redis): two tproxy processes with
# reuseport, the kernel spreading the clients; haproxy with two threads
SCALE_PROXIES="tproxy-x2 haproxy-x2"

log() { printf '%s\n' "$*" >&2; }
die() { log "run.sh: $*"; exit 1; }

case ${1:-} in -h | --help) sed -n '/^set -eu$/q; 2,$p' "$here/${0##*/}" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
scenarios=$*
[ -n "$scenarios" ] || scenarios=$ALL_SCENARIOS
for s in $scenarios; do
    case " $ALL_SCENARIOS " in *" $s "*) ;; *) die "unknown scenario '$s' (known: $ALL_SCENARIOS)" ;; esac
done
for v in REPS BULK_SECS CONNRATE_SECS CONNRATE_THREADS RR_N CONC_C UDP_RR_N UDP_BURST_N QUIET_PCT QUIET_WAIT \
    TLS_SECS TLS_THREADS TLS_BULK_SECS; do
    case ${!v} in '' | *[!0-9]*) die "$v must be a whole number" ;; esac
done
[ "$REPS" -gt 0 ] || die "REPS must be at least 1"
case $THROTTLE in '' | *[!0-9A-Za-z.]*) die "THROTTLE must be a rate such as 100000m" ;; esac

# ------------------------------------------------------------ processes
started=()        # PIDs of everything still running that this script started
tmp=
pcap_tmp=         # the directory of tproxy-pcap's capture
PCAP_EMPTIER=     # the loop that empties it while the row runs
LOAD=

track() { started+=("$1"); }
untrack() {
    local p keep=()
    for p in "${started[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
    started=("${keep[@]}")
}

# alive PID: the process exists and is not a zombie
alive() {
    local s
    { read -r s <"/proc/$1/stat"; } 2>/dev/null || return 1
    s=${s##*) }
    [ "${s%% *}" != Z ]
}

# stop PID and every process it forked (children first): TERM, KILL after 3 s
kill_tree() {
    local root=$1 list='' left p i
    if [ -n "$LOAD" ] && [ -x "$LOAD" ]; then list=$("$LOAD" pids "$root" 2>/dev/null || true); fi
    [ -n "$list" ] || list=$root
    for p in $list; do kill -TERM "$p" 2>/dev/null || true; done
    for ((i = 0; i < 30; i++)); do
        left=''
        for p in $list; do if alive "$p"; then left="$left $p"; fi; done
        [ -n "$left" ] || break
        sleep 0.1
    done
    for p in $left; do kill -KILL "$p" 2>/dev/null || true; done
    wait "$root" 2>/dev/null || true
}

cleanup() {
    local rc=$? p
    trap - EXIT INT TERM
    for p in "${started[@]}"; do kill_tree "$p"; done
    started=()
    [ -z "$pcap_tmp" ] || rm -rf "$pcap_tmp"
    if [ -n "$tmp" ] && [ -d "$tmp" ]; then
        if [ "$KEEP" = 1 ] || { [ "$rc" -ne 0 ] && [ "$rc" -ne 130 ] && [ "$rc" -ne 143 ]; }; then
            log "run.sh: scratch directory kept: $tmp"
        else rm -rf "$tmp"; fi
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ------------------------------------------------------------ set-up
hard=$(ulimit -Hn)
[ "$hard" = unlimited ] && hard=1048576
ulimit -n "$hard" 2>/dev/null || log "run.sh: could not raise ulimit -n to $hard"
nofile=$(ulimit -n)
if [ -z "${CONC_MAX:-}" ]; then
    CONC_MAX=$(((nofile - 200) / 2))
    [ "$CONC_MAX" -le 10000 ] || CONC_MAX=10000
fi
ncpu=$(nproc)
allcpus="0-$((ncpu - 1))"
if [ -n "$RR_CPU" ] && ! command -v taskset >/dev/null; then
    log "run.sh: taskset not found, rr/udp-rr run unpinned"
    RR_CPU=
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tproxy-bench.XXXXXX")
LOAD=$tmp/load
command -v gcc >/dev/null || die "gcc not found"
TLS_ERR=        # why the tls scenario cannot run
if ! gcc -O2 -Wall -Wextra -Werror -o "$LOAD" "$here/load.c" -lpthread -lssl -lcrypto 2>"$tmp/build.log"; then
    # without the OpenSSL headers or libraries: everything but the tls scenario
    gcc -O2 -Wall -Wextra -Werror -DLOAD_NO_TLS -o "$LOAD" "$here/load.c" -lpthread || die "building load.c failed"
    TLS_ERR="load.c does not build with OpenSSL (libssl-dev missing?): $(grep -m 1 -i error "$tmp/build.log" || true)"
    log "run.sh: $TLS_ERR"
fi
command -v openssl >/dev/null || TLS_ERR="the openssl command is needed to make the certificates"

case $TPROXY in /*) ;; *) TPROXY=$top/${TPROXY#./} ;; esac
case $TPROXY_BEFORE in '' | /*) ;; *) TPROXY_BEFORE=$top/${TPROXY_BEFORE#./} ;; esac

# which proxies are selected, and which of those can run
declare -A why_not      # proxy -> reason it is not measured
selected() { case ",$PROXIES," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }
for p in ${PROXIES//,/ }; do
    case " $TCP_PROXIES $PAIR_PROXIES $XP_PROXIES $SCALE_PROXIES sslsplit tproxy-auto " in *" $p "*) ;; *) die "unknown proxy '$p' in PROXIES (known: $TCP_PROXIES $PAIR_PROXIES $XP_PROXIES $SCALE_PROXIES sslsplit tproxy-auto)" ;; esac
done
# the filter each tproxy-FILTER row appends to the route
if selected tproxy-pcap; then
    pcap_tmp=$(mktemp -d "$PCAP_DIR/tproxy-bench-pcap.XXXXXX") || die "cannot make a directory in PCAP_DIR=$PCAP_DIR"
fi
declare -A FILTER=([tproxy-delay0]=delay:0 [tproxy-throttle]=throttle:$THROTTLE)
FILTER[tproxy-pcap]="pcap:${pcap_tmp:-$PCAP_DIR}/x.pcap,overwrite=1"
for p in $TCP_PROXIES $PAIR_PROXIES $XP_PROXIES $SCALE_PROXIES; do
    case $p in
    tproxy-socks5 | tproxy-http)
        if [ ! -x "$TPROXY" ]; then why_not[$p]="not built ($TPROXY missing)"
        elif ! "$TPROXY" --help 2>&1 | grep -q -- "${p#tproxy-}-listen"; then
            why_not[$p]="no ${p#tproxy-}-listen in this build"; fi ;;
    microsocks) command -v microsocks >/dev/null || why_not[$p]="not installed" ;;
    tproxy | tproxy-delay0 | tproxy-throttle | tproxy-pcap) [ -x "$TPROXY" ] || why_not[$p]="not built ($TPROXY missing)" ;;
    tproxy-pair*) [ -x "$TPROXY" ] || why_not[$p]="not built ($TPROXY missing)" ;;
    tproxy-x2)
        if [ ! -x "$TPROXY" ]; then why_not[$p]="not built ($TPROXY missing)"
        elif ! "$TPROXY" --help 2>&1 | grep -q reuseport; then why_not[$p]="no reuseport in this build"; fi ;;
    haproxy-x2) command -v haproxy >/dev/null || why_not[$p]="not installed" ;;
    haproxy-pair*) command -v haproxy >/dev/null || why_not[$p]="not installed" ;;
    tproxy-before)
        if [ -z "$TPROXY_BEFORE" ]; then why_not[$p]="TPROXY_BEFORE not set"
        elif [ ! -x "$TPROXY_BEFORE" ]; then why_not[$p]="not found ($TPROXY_BEFORE missing)"; fi ;;
    socat) command -v socat >/dev/null || why_not[$p]="not installed" ;;
    haproxy | haproxy-splice) command -v haproxy >/dev/null || why_not[$p]="not installed" ;;
    esac
done
# the tls scenario: why_not[tls:NAME] for what only TLS needs
command -v sslsplit >/dev/null || why_not[sslsplit]="not installed"
[ -x "$TPROXY" ] || why_not[tproxy-auto]="not built ($TPROXY missing)"
if [ -z "${why_not[tproxy-auto]:-}" ] && ! "$TPROXY" --help 2>&1 | grep -q -- 'tls=auto'; then
    why_not[tls:tproxy-auto]="no tls=auto in this build"
fi
if [ -z "${why_not[tproxy]:-}" ] && ! "$TPROXY" --help 2>&1 | grep -q -- '--ca-cert'; then
    why_not[tls:tproxy]="no TLS interception in this build (no --ca-cert in --help)"
fi
if [ -z "${why_not[tproxy-before]:-}" ] && ! "$TPROXY_BEFORE" --help 2>&1 | grep -q -- '--ca-cert'; then
    why_not[tls:tproxy-before]="no TLS interception in this build (no --ca-cert in --help)"
fi

# ports: a fresh 127.0.0.1 port for every start, from 20000-29999, skipping any
# that appears in /proc/net/{tcp,udp}{,6} (listening, connected or TIME_WAIT)
next_port=$((20000 + RANDOM % 10000))
PORT=
pick_port() {
    local i p hex
    for ((i = 0; i < 10000; i++)); do
        p=$next_port
        next_port=$((p >= 29999 ? 20000 : p + 1))
        printf -v hex ':%04X ' "$p"
        if ! grep -qF "$hex" /proc/net/tcp /proc/net/tcp6 /proc/net/udp /proc/net/udp6 2>/dev/null; then
            PORT=$p
            return 0
        fi
    done
    die "no free port in 20000-29999"
}

# wait_listen tcp|udp PORT PID: wait (5 s) until PORT is bound; 1 if PID died first
wait_listen() { # wait_listen tcp|udp PORT PID [SOCKETS=1]
    local proto=$1 hex i state=0A files="/proc/net/tcp /proc/net/tcp6" n
    printf -v hex '%04X' "$2"
    if [ "$proto" = udp ]; then state=07; files="/proc/net/udp /proc/net/udp6"; fi
    for ((i = 0; i < 100; i++)); do
        # shellcheck disable=SC2086 # two file names
        n=$(cat $files 2>/dev/null | grep -cE "^ *[0-9]+: [0-9A-F]+:$hex [0-9A-F]+:0000 $state ") || true
        if [ "$n" -ge "${4:-1}" ]; then return 0; fi
        alive "$3" || return 1
        sleep 0.05
    done
    return 1
}

# ------------------------------------------------------------ servers
ECHO_PID=
SINK_PID=
start_servers() {
    pick_port
    EPORT=$PORT
    "$LOAD" echo -p "$EPORT" -L 3600 >"$tmp/echo.log" 2>&1 &
    ECHO_PID=$!
    track "$ECHO_PID"
    if ! wait_listen tcp "$EPORT" "$ECHO_PID" || ! wait_listen udp "$EPORT" "$ECHO_PID"; then
        die "echo server did not start: $(cat "$tmp/echo.log")"
    fi
    pick_port
    SPORT=$PORT
    "$LOAD" sink -p "$SPORT" -L 3600 >"$tmp/sink.log" 2>&1 &
    SINK_PID=$!
    track "$SINK_PID"
    wait_listen tcp "$SPORT" "$SINK_PID" || die "sink server did not start: $(cat "$tmp/sink.log")"
}

pin_echo() { # pin_echo CPU-LIST: move the echo server (and its future children)
    taskset -pc "$1" "$ECHO_PID" >/dev/null
}

# ------------------------------------------------------------ proxies
PROXY_PID=      # running proxy ('' for direct)
PROXY_PORT=     # where the client connects
PROXY_ERR=      # why start_proxy failed
PROXY_STATUS=   # exit status of a proxy that died while starting
nstarts=0

haproxy_cfg() { # haproxy_cfg FILE LPORT TPORT splice|default [BIND-OPTIONS [SERVER-OPTIONS]]
    local maxpipes=32 maxconn splice='' bopts=${5:+ $5} sopts=${6:+ $6}
    maxconn=$(((nofile - 100 - 2 * maxpipes) / 2))
    [ "$maxconn" -le 100000 ] || maxconn=100000
    [ "$4" = splice ] && splice=$'    option splice-request\n    option splice-response'
    cat >"$1" <<EOF
global
    nbthread ${HA_THREADS:-1}
    maxconn $maxconn
    maxpipes $maxpipes

defaults
    mode tcp
    maxconn $maxconn
    timeout connect 5s
    timeout client 300s
    timeout server 300s
$splice

frontend fe
    bind 127.0.0.1:$2$bopts
    default_backend be

backend be
    server s1 127.0.0.1:$3$sopts
EOF
}

# start_proxy NAME tcp|udp|tls TPORT [CPU]: start a fresh instance in front of TPORT
# (tls: TCP that the proxy intercepts with the CA in TLS_DIR, see tls_setup)
start_proxy() {
    local name=$1 proto=$2 tport=$3 cpu=${4:-} lport cfg lproto=$2 bin=$TPROXY listeners=1
    local -a cmd pin=() filt=()
    PROXY_PID='' PROXY_ERR='' PROXY_STATUS=''
    if [ "$name" = direct ]; then PROXY_PORT=$tport; return 0; fi
    pick_port
    lport=$PORT
    [ "$proto" != tls ] || lproto=tcp
    case $name in
    tproxy-pair | tproxy-pair-pp | haproxy-pair | haproxy-pair-pp)
        # the second instance in front of TPORT, then this one in front of it
        pick_port
        pair_second "$name" "$PORT" "$tport" || return 1
        case $name in
        tproxy-pair) cmd=("$TPROXY" -q "tcp-listen:127.0.0.1:$lport" "tcp:127.0.0.1:$PORT") ;;
        tproxy-pair-pp) cmd=("$TPROXY" -q "tcp-listen:127.0.0.1:$lport" "tcp:127.0.0.1:$PORT,proxy-protocol=v2") ;;
        haproxy-pair) cfg=$tmp/haproxy-$lport.cfg; haproxy_cfg "$cfg" "$lport" "$PORT" default
            cmd=(haproxy -db -f "$cfg") ;;
        haproxy-pair-pp) cfg=$tmp/haproxy-$lport.cfg
            haproxy_cfg "$cfg" "$lport" "$PORT" default '' send-proxy-v2
            cmd=(haproxy -db -f "$cfg") ;;
        esac ;;
    tproxy-socks5) cmd=("$TPROXY" -q "socks5-listen:127.0.0.1:$lport" orig) ;;
    tproxy-http) cmd=("$TPROXY" -q "http-listen:127.0.0.1:$lport" orig) ;;
    microsocks) cmd=(microsocks -i 127.0.0.1 -p "$lport") ;;
    tproxy-x2)
        # the second process first, then this one beside it on the same port
        "$TPROXY" -q "tcp-listen:127.0.0.1:$lport,reuseport" "tcp:127.0.0.1:$tport" \
            >"$tmp/x2-$lport.log" 2>&1 </dev/null &
        PROXY_PID2=$!
        track "$PROXY_PID2"
        if ! wait_listen tcp "$lport" "$PROXY_PID2"; then
            PROXY_ERR="the second process did not listen: $(tail -n 1 "$tmp/x2-$lport.log")"
            stop_proxy
            return 1
        fi
        cmd=("$TPROXY" -q "tcp-listen:127.0.0.1:$lport,reuseport" "tcp:127.0.0.1:$tport")
        listeners=2 ;;
    tproxy | tproxy-*)
        [ "$name" != tproxy-before ] || bin=$TPROXY_BEFORE
        [ -z "${FILTER[$name]:-}" ] || filt=("${FILTER[$name]}")
        if [ "$proto" = tls ] && [ "$name" = tproxy-auto ]; then
            # the upstream's TLS follows the client's: no tls on the target
            cmd=("$bin" -q "--ca-cert=$TLS_DIR/ca.pem" "--ca-key=$TLS_DIR/ca.key"
                "tcp-listen:127.0.0.1:$lport,tls=auto" "tcp:127.0.0.1:$tport,verify=0")
        elif [ "$proto" = tls ]; then
            cmd=("$bin" -q "--ca-cert=$TLS_DIR/ca.pem" "--ca-key=$TLS_DIR/ca.key"
                "tcp-listen:127.0.0.1:$lport,tls" "tcp:127.0.0.1:$tport,tls,verify=0" "${filt[@]}")
        else
            cmd=("$bin" -q "$proto-listen:127.0.0.1:$lport" "$proto:127.0.0.1:$tport" "${filt[@]}")
        fi ;;
    sslsplit)
        # in the foreground (no -d); as root it drops to nobody after reading the
        # keys; -K: a P-256 leaf key like tproxy's (its default is RSA-2048)
        cmd=(sslsplit -k "$TLS_DIR/ca.key" -c "$TLS_DIR/ca.pem" -K "$TLS_DIR/leaf.key"
            ssl 127.0.0.1 "$lport" 127.0.0.1 "$tport") ;;
    socat)
        if [ "$proto" = tcp ]; then
            cmd=(socat "TCP-LISTEN:$lport,bind=127.0.0.1,reuseaddr,fork,backlog=1024" "TCP:127.0.0.1:$tport")
        else
            cmd=(socat "UDP-LISTEN:$lport,bind=127.0.0.1,reuseaddr,fork" "UDP:127.0.0.1:$tport")
        fi ;;
    haproxy-x2)
        cfg=$tmp/haproxy-$lport.cfg
        HA_THREADS=2 haproxy_cfg "$cfg" "$lport" "$tport" default
        cmd=(haproxy -db -f "$cfg") ;;
    haproxy | haproxy-splice)
        cfg=$tmp/haproxy-$lport.cfg
        if [ "$name" = haproxy ]; then haproxy_cfg "$cfg" "$lport" "$tport" default
        else haproxy_cfg "$cfg" "$lport" "$tport" splice; fi
        cmd=(haproxy -db -f "$cfg") ;;
    *) die "unknown proxy $name" ;;
    esac
    [ -z "$cpu" ] || pin=(taskset -c "$cpu")
    nstarts=$((nstarts + 1))
    PROXY_LOG=$tmp/proxy-$nstarts-$name.log
    "${pin[@]}" "${cmd[@]}" >"$PROXY_LOG" 2>&1 </dev/null &
    PROXY_PID=$!
    track "$PROXY_PID"
    if ! wait_listen "$lproto" "$lport" "$PROXY_PID" "$listeners"; then
        if alive "$PROXY_PID"; then
            PROXY_ERR="did not listen on $lproto 127.0.0.1:$lport within 5 s"
            stop_proxy
        else
            local st=0
            wait "$PROXY_PID" || st=$?
            untrack "$PROXY_PID"
            PROXY_STATUS=$st
            PROXY_ERR="exited with status $st: $(tail -n 2 "$PROXY_LOG" | tr '\n' ' ')"
            PROXY_PID=''
        fi
        return 1
    fi
    PROXY_PORT=$lport
    if [ "$name" = tproxy-pcap ]; then
        # a bulk run writes Gbit/s: the file is emptied (the writes go on past
        # its end, into a hole that takes no memory)
        while sleep 0.2; do : >"$pcap_tmp/x.pcap"; done &
        PCAP_EMPTIER=$!
        track "$PCAP_EMPTIER"
    fi
    return 0
}

stop_proxy() {
    if [ -n "$PROXY_PID2" ]; then
        kill_tree "$PROXY_PID2"
        untrack "$PROXY_PID2"
        PROXY_PID2=''
    fi
    if [ -n "$PCAP_EMPTIER" ]; then
        kill_tree "$PCAP_EMPTIER"
        untrack "$PCAP_EMPTIER"
        PCAP_EMPTIER=''
        rm -f "$pcap_tmp/x.pcap"
    fi
    [ -n "$PROXY_PID" ] || return 0
    kill_tree "$PROXY_PID"
    untrack "$PROXY_PID"
    PROXY_PID=''
}

# pair_second NAME MPORT TPORT: the second instance of a pair row, on MPORT in
# front of TPORT (taking a PROXY header for the -pp rows); sets PROXY_PID2
PROXY_PID2=
pair_second() {
    local name=$1 mport=$2 tport=$3 cfg pp='' log=$tmp/pair-$2.log
    local -a cmd
    case $name in
    tproxy-pair*) [ "$name" = tproxy-pair ] || pp=,proxy-protocol
        cmd=("$TPROXY" -q "tcp-listen:127.0.0.1:$mport$pp" "tcp:127.0.0.1:$tport") ;;
    haproxy-pair*) cfg=$tmp/haproxy-$mport.cfg
        [ "$name" = haproxy-pair ] || pp=accept-proxy
        haproxy_cfg "$cfg" "$mport" "$tport" default "$pp"
        cmd=(haproxy -db -f "$cfg") ;;
    esac
    "${cmd[@]}" >"$log" 2>&1 </dev/null &
    PROXY_PID2=$!
    track "$PROXY_PID2"
    wait_listen tcp "$mport" "$PROXY_PID2" && return 0
    PROXY_ERR="the second instance did not listen: $(tail -n 2 "$log" | tr '\n' ' ')"
    kill_tree "$PROXY_PID2"
    untrack "$PROXY_PID2"
    PROXY_PID2=''
    return 1
}

# proxy_died: 0 if the proxy was running and is gone now (crash during a test)
proxy_died() { [ -n "$PROXY_PID" ] && ! alive "$PROXY_PID"; }

MEM=    # "procs=N rss_kib=R pss_kib=P" of the proxy's process tree
mem() { MEM=$("$LOAD" mem "$1" 2>/dev/null || echo "procs=0 rss_kib=na pss_kib=na"); }

# ------------------------------------------------------------ results
declare -A R         # "scenario|proxy|metric" -> "v1 v2 ..." (rep order)
declare -A NOTE      # scenario -> notes (newline separated)
add() { R[$1]="${R[$1]:-}${R[$1]:+ }$2"; }
note() { NOTE[$1]="${NOTE[$1]:-}- $2"$'\n'; log "  note: $2"; }

# kv KEY LINE: value of KEY=... in a key=value line ('na' if missing)
kv() {
    local w
    for w in $2; do
        case $w in "$1"=*) printf '%s' "${w#*=}"; return 0 ;; esac
    done
    printf 'na'
}

lines() { tr ' ' '\n' <<<"$1" | grep -v '^$' || true; }   # one word per line

# median of the numeric values in "$1"; '-' if there is none
median() {
    lines "$1" | awk '/^-?[0-9]+(\.[0-9]+)?$/' | sort -g |
        awk '{ a[NR] = $1 } END { if (!NR) { print "-"; exit }
             m = NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; print m }'
}
med() { median "${R[$1]:-}"; }
fmt() { # fmt PRINTF-FORMAT VALUE: '-' stays '-'
    case $2 in -) printf -- '-' ;; *) LC_ALL=C awk -v f="$1" -v v="$2" 'BEGIN { printf f, v }' ;; esac
}
ratio() { # ratio VALUE REFERENCE
    LC_ALL=C awk -v a="$1" -v b="$2" 'BEGIN { if (a ~ /^-?[0-9.]+$/ && b ~ /^[0-9.]+$/ && b > 0) printf "%.2f", a / b; else printf "-" }'
}
runs() { local v=${R[$1]:-}; printf '%s' "${v:--}"; }

# run_client OUTFILE TIMEOUT [taskset...] load-args...: run the load client in the
# background (so that INT/TERM reach the trap at once) and keep its last line in LINE
LINE=
run_client() {
    local out=$1 lim=$2 cpid st=0
    shift 2
    timeout -k 2 "$lim" "$@" >"$out" 2>>"$tmp/client.log" </dev/null &
    cpid=$!
    track "$cpid"
    wait "$cpid" || st=$?
    untrack "$cpid"
    LINE=$(tail -n 1 "$out")
    [ -n "$LINE" ] || LINE="error=client_status_$st"
    return 0
}

# the proxies of one scenario in the order of repetition REP (rotated, so that a
# slow phase of the machine does not always hit the same proxy)
ORDER=
order() { # order REP LIST
    local -a l
    read -ra l <<<"$2"
    local n=${#l[@]} i out=''
    for ((i = 0; i < n; i++)); do out="$out ${l[(i + $1) % n]}"; done
    ORDER=$out
}

# why PROXY cannot run in SCENARIO ('' if it can)
why() { # why PROXY [SCENARIO]
    WHY=${why_not[$1]:-}
    [ -n "$WHY" ] || [ -z "${2:-}" ] || WHY=${why_not[$2:$1]:-}
}

# the proxies a scenario measures (selected and available)
active() { # active LIST [SCENARIO] -> ACTIVE
    local p
    ACTIVE=''
    for p in $1; do
        selected "$p" || continue
        why "$p" "${2:-}"
        [ -z "$WHY" ] || continue
        ACTIVE="$ACTIVE $p"
    done
}

# rows for the proxies that are selected but cannot run
unavailable_rows() { # unavailable_rows LIST NCOLS [SCENARIO] (NCOLS: columns of the table, proxy included)
    local p i cells
    for p in $1; do
        selected "$p" || continue
        why "$p" "${3:-}"
        [ -n "$WHY" ] || continue
        cells=''
        for ((i = 2; i < $2; i++)); do cells="$cells - |"; done
        printf '| %s | %s |%s\n' "$p" "$WHY" "$cells"
    done
}

# quiet_check SC REP: CPU used by anything on the machine during 0.5 s while
# nothing of ours is busy; other sessions' test runs make a repetition slow
BUSY=
cpu_busy() {
    local c u n s i w q sq st b0 t0 b1 t1
    read -r c u n s i w q sq st _ </proc/stat
    b0=$((u + n + s + q + sq)) t0=$((u + n + s + i + w + q + sq + st))
    sleep 0.5
    read -r c u n s i w q sq st _ </proc/stat
    b1=$((u + n + s + q + sq)) t1=$((u + n + s + i + w + q + sq + st))
    BUSY=$(((b1 - b0) * 100 * ncpu / (t1 - t0 > 0 ? t1 - t0 : 1)))
}
quiet_check() {
    local waited=0
    cpu_busy
    while [ "$BUSY" -gt "$QUIET_PCT" ] && [ "$waited" -lt "$QUIET_WAIT" ]; do
        log "  machine busy ($BUSY% of one CPU), waiting"
        sleep 1
        waited=$((waited + 2))   # each round is ~1.5 s
        cpu_busy
    done
    [ "$BUSY" -le "$QUIET_PCT" ] ||
        note "$1" "before rep $(($2 + 1)) the machine was already busy ($BUSY% of one CPU, not this benchmark): that repetition may be slow for the proxies measured in it"
}

print_notes() { if [ -n "${NOTE[$1]:-}" ]; then printf '\n%s' "${NOTE[$1]}"; fi; }

idle_sample() { # idle_sample PROXY
    [ -n "$PROXY_PID" ] || return 0
    sleep 0.1
    mem "$PROXY_PID"
    add "idle|$1|rss" "$(kv rss_kib "$MEM")"
    add "idle|$1|pss" "$(kv pss_kib "$MEM")"
}

# start a proxy for scenario SC, or note why not; 0 when the client may run.
# A tproxy-FILTER row whose tproxy rejects the filter (exit status 2: usage
# error, e.g. a filter not implemented yet) is skipped for the rest of the run:
# why_not[] makes active() and unavailable_rows() show the reason in its rows.
start_for() { # start_for SC PROXY tcp|udp|tls TPORT [CPU]
    local label=$2 msg
    case $3:$2 in tls:tproxy | tls:tproxy-before | tls:tproxy-auto) label=$2+tls ;; esac   # its own idle-memory row
    why "$2"
    [ -z "$WHY" ] || return 1
    if start_proxy "$2" "$3" "$4" "${5:-}"; then idle_sample "$label"; return 0; fi
    if [ -n "${FILTER[$2]:-}" ] && [ "$PROXY_STATUS" = 2 ]; then
        msg=$(grep -m 1 . "$PROXY_LOG" || true)
        why_not[$2]="filter \`${FILTER[$2]}\` rejected, exit status 2 (not implemented yet?): ${msg//|/\\|}"
        note "$1" "$2: skipped for the rest of the run: \`tproxy ... ${FILTER[$2]}\` exited with status 2: $msg"
        return 1
    fi
    note "$1" "$2 ($3): $PROXY_ERR"
    return 1
}

client_failed() { # client_failed SC PROXY LINE: note a client line without a result
    case $3 in *error=*) note "$1" "$2: client: $3"; return 0 ;; esac
    if proxy_died; then note "$1" "$2: proxy died during the run"; return 0; fi
    return 1
}

# the client's -x for an explicit proxy row (the sink at SPORT as destination)
xopt() { # xopt PROXY -> XOPT
    XOPT=()
    case $1 in
    tproxy-socks5 | microsocks) XOPT=(-x "s:$SPORT") ;;
    tproxy-http) XOPT=(-x "h:$SPORT") ;;
    esac
}

# the explicit proxies against their targets: connrate against microsocks,
# bulk against the plain tproxy route
xp_ratios() { # xp_ratios SC
    local a b v
    if [ "$1" = connrate ]; then
        b=$(med "connrate|microsocks|cps")
        for a in tproxy-socks5 tproxy-http; do
            v=$(med "connrate|$a|cps")
            [ "$b" = - ] || [ "$v" = - ] || printf '\n%s / microsocks: %s\n' "$a" "$(ratio "$v" "$b")"
        done
    else
        b=$(med "bulk|tproxy|s1")
        for a in tproxy-socks5 tproxy-http microsocks; do
            v=$(med "bulk|$a|s1")
            [ "$b" = - ] || [ "$v" = - ] || printf '\n%s / tproxy, 1 stream: %s\n' "$a" "$(ratio "$v" "$b")"
        done
    fi
}

# tproxy against haproxy on one CPU and on two (the -x2 rows), and what the
# second process gives tproxy
scale_ratios() { # scale_ratios SC
    local k keys a b out=''
    case $1 in
    bulk) keys="s1 s4" ;;
    connrate) keys="cps" ;;
    redis) keys="SET1 GET1 SET16 GET16" ;;
    esac
    for k in $keys; do
        a=$(med "$1|tproxy-x2|$k") b=$(med "$1|haproxy-x2|$k")
        [ "$a" = - ] || [ "$b" = - ] || out+=$(printf '\ntproxy-x2 / haproxy-x2, %s: %s (tproxy-x2 / tproxy: %s)' \
            "$(scale_label "$1" "$k")" "$(ratio "$a" "$b")" "$(ratio "$a" "$(med "$1|tproxy|$k")")")
    done
    [ -z "$out" ] || printf '%s\n' "$out"
}
scale_label() { # scale_label SC KEY
    case $1:$2 in
    bulk:s1) printf '1 stream' ;; bulk:s4) printf '4 streams' ;; connrate:cps) printf 'conns/s' ;;
    redis:*) printf '%s -P %s' "${2%%[0-9]*}" "${2#"${2%%[0-9]*}"}" ;;
    esac
}

# ------------------------------------------------------------ scenarios
sc_bulk() {
    local rep p streams
    active "$TCP_PROXIES $XP_PROXIES $SCALE_PROXIES"
    for ((rep = 0; rep < REPS; rep++)); do
        order "$rep" "$ACTIVE"
        quiet_check bulk "$rep"
        for p in $ORDER; do
            log "bulk: rep $((rep + 1))/$REPS $p"
            start_for bulk "$p" tcp "$SPORT" || continue
            xopt "$p"
            for streams in 1 4; do
                run_client "$tmp/bulk.out" $((30 + BULK_SECS)) "$LOAD" bulk -p "$PROXY_PORT" "${XOPT[@]}" -n "$streams" \
                    -d "$BULK_SECS" -W "$BULK_WARM" -L $((20 + BULK_SECS))
                client_failed bulk "$p" "$LINE" || add "bulk|$p|s$streams" "$(kv gbps "$LINE")"
            done
            run_client "$tmp/bulk.out" $((30 + BULK_SECS)) "$LOAD" bulk-duplex -p "$PROXY_PORT" "${XOPT[@]}" -n 1 \
                -d "$BULK_SECS" -W "$BULK_WARM" -L $((20 + BULK_SECS))
            if ! client_failed bulk "$p" "$LINE"; then
                add "bulk|$p|dup" "$(kv gbps "$LINE")"
                add "bulk|$p|dupc2s" "$(kv c2s_gbps "$LINE")"
                add "bulk|$p|dups2c" "$(kv s2c_gbps "$LINE")"
            fi
            stop_proxy
        done
    done
    active "$TCP_PROXIES $XP_PROXIES $SCALE_PROXIES"   # again: without rows whose filter was rejected (unavailable_rows)
    local d1 d4 dd
    d1=$(med "bulk|direct|s1") d4=$(med "bulk|direct|s4") dd=$(med "bulk|direct|dup")
    printf '\n## bulk: TCP throughput, Gbit/s (%s s after %s s warm-up; median of %s)\n\n' "$BULK_SECS" "$BULK_WARM" "$REPS"
    printf '| proxy | 1 stream | x direct | 4 streams | x direct | duplex, 1 stream (c2s + s2c) | x direct | 1-stream runs |\n'
    printf '|---|---:|---:|---:|---:|---:|---:|---|\n'
    for p in $ACTIVE; do
        local v1 v4 vd
        v1=$(med "bulk|$p|s1") v4=$(med "bulk|$p|s4") vd=$(med "bulk|$p|dup")
        printf '| %s | %s | %s | %s | %s | %s (%s + %s) | %s | %s |\n' "$p" \
            "$(fmt %.2f "$v1")" "$(ratio "$v1" "$d1")" "$(fmt %.2f "$v4")" "$(ratio "$v4" "$d4")" \
            "$(fmt %.2f "$vd")" "$(fmt %.2f "$(med "bulk|$p|dupc2s")")" "$(fmt %.2f "$(med "bulk|$p|dups2c")")" \
            "$(ratio "$vd" "$dd")" "$(runs "bulk|$p|s1")"
    done
    unavailable_rows "$TCP_PROXIES $XP_PROXIES $SCALE_PROXIES" 8
    xp_ratios bulk
    scale_ratios bulk
    print_notes bulk
}

placement() {
    if [ -n "$1" ]; then printf 'client, proxy and server pinned to CPU %s' "$1"; else printf 'not pinned'; fi
}

sc_rr() {
    local rep p cpu=${RR_CPU:-}
    active "$TCP_PROXIES"
    local -a pin=()
    if [ -n "$cpu" ]; then pin=(taskset -c "$cpu"); pin_echo "$cpu"; fi
    for ((rep = 0; rep < REPS; rep++)); do
        order "$rep" "$ACTIVE"
        quiet_check rr "$rep"
        for p in $ORDER; do
            log "rr: rep $((rep + 1))/$REPS $p"
            start_for rr "$p" tcp "$EPORT" "$cpu" || continue
            run_client "$tmp/rr.out" 90 "${pin[@]}" "$LOAD" rr -p "$PROXY_PORT" -n "$RR_N" -s 64 -L 60
            if ! client_failed rr "$p" "$LINE"; then
                add "rr|$p|p50" "$(kv p50_us "$LINE")"
                add "rr|$p|p99" "$(kv p99_us "$LINE")"
                add "rr|$p|rts" "$(kv rt_per_s "$LINE")"
            fi
            stop_proxy
        done
    done
    [ -z "$cpu" ] || pin_echo "$allcpus"
    active "$TCP_PROXIES"
    local d
    d=$(med "rr|direct|rts")
    printf '\n## rr: 1 TCP connection, %s round trips of 64 bytes, TCP_NODELAY (%s; median of %s)\n\n' "$RR_N" \
        "$(placement "$cpu")" "$REPS"
    printf '| proxy | p50 us | p99 us | round trips/s | x direct | round trips/s runs |\n'
    printf '|---|---:|---:|---:|---:|---|\n'
    for p in $ACTIVE; do
        local v
        v=$(med "rr|$p|rts")
        printf '| %s | %s | %s | %s | %s | %s |\n' "$p" "$(fmt %.1f "$(med "rr|$p|p50")")" \
            "$(fmt %.1f "$(med "rr|$p|p99")")" "$(fmt %.0f "$v")" "$(ratio "$v" "$d")" "$(runs "rr|$p|rts")"
    done
    unavailable_rows "$TCP_PROXIES" 6
    print_notes rr
}

sc_connrate() {
    local rep p
    active "$TCP_PROXIES $PAIR_PROXIES $XP_PROXIES $SCALE_PROXIES"
    for ((rep = 0; rep < REPS; rep++)); do
        order "$rep" "$ACTIVE"
        quiet_check connrate "$rep"
        for p in $ORDER; do
            log "connrate: rep $((rep + 1))/$REPS $p"
            # the sink server in role 'c' closes first (see load.c: no TIME_WAIT on the connect side)
            start_for connrate "$p" tcp "$SPORT" || continue
            xopt "$p"
            run_client "$tmp/cr.out" $((30 + CONNRATE_SECS)) "$LOAD" connrate -p "$PROXY_PORT" "${XOPT[@]}" \
                -w "$CONNRATE_THREADS" -d "$CONNRATE_SECS" -s 64 -L $((20 + CONNRATE_SECS))
            if ! client_failed connrate "$p" "$LINE"; then
                add "connrate|$p|cps" "$(kv conn_per_s "$LINE")"
                add "connrate|$p|fail" "$(kv failures "$LINE")"
                add "connrate|$p|p50" "$(kv p50_us "$LINE")"
                local f
                f=$(kv failures "$LINE")
                [ "$f" = 0 ] || note connrate "$p rep $((rep + 1)): $f failures (connect $(kv fail_connect "$LINE"), io $(kv fail_io "$LINE"), data $(kv fail_data "$LINE"); first error $(kv first_err "$LINE"))"
            fi
            stop_proxy
        done
    done
    active "$TCP_PROXIES $PAIR_PROXIES $XP_PROXIES $SCALE_PROXIES"
    local d
    d=$(med "connrate|direct|cps")
    printf '\n## connrate: new TCP connections/s (%s threads, each: connect, 64 B echo, server closes, close; %s s; median of %s)\n\n' \
        "$CONNRATE_THREADS" "$CONNRATE_SECS" "$REPS"
    printf '| proxy | conns/s | x direct | failures (all runs) | cycle p50 us | conns/s runs |\n'
    printf '|---|---:|---:|---:|---:|---|\n'
    local v fsum
    for p in $ACTIVE; do
        v=$(med "connrate|$p|cps")
        fsum=$(lines "${R["connrate|$p|fail"]:-}" | awk '/^[0-9]+$/ { s += $1; n++ } END { print n ? s : "-" }')
        printf '| %s | %s | %s | %s | %s | %s |\n' "$p" "$(fmt %.0f "$v")" "$(ratio "$v" "$d")" "$fsum" \
            "$(fmt %.0f "$(med "connrate|$p|p50")")" "$(runs "connrate|$p|cps")"
    done
    unavailable_rows "$TCP_PROXIES $PAIR_PROXIES $XP_PROXIES $SCALE_PROXIES" 6
    xp_ratios connrate
    scale_ratios connrate
    # what the PROXY header costs a pair of instances
    local a b
    for a in tproxy haproxy; do
        b=$(med "connrate|$a-pair|cps")
        v=$(med "connrate|$a-pair-pp|cps")
        [ "$b" = - ] || [ "$v" = - ] ||
            printf '\n%s pair with a PROXY v2 header / without: %s\n' "$a" "$(ratio "$v" "$b")"
    done
    print_notes connrate
}

conc_one() { # conc_one PROXY C REP
    local p=$1 c=$2 out=$tmp/conc.out cpid i lim before held after ok
    start_for conc "$p" tcp "$EPORT" || return 0
    before=''
    if [ -n "$PROXY_PID" ]; then mem "$PROXY_PID"; before=$MEM; fi
    lim=$((30 + c / 100))
    : >"$out"
    timeout -k 2 $((lim + 30)) "$LOAD" conc -p "$PROXY_PORT" -c "$c" -k 8 -t 3000 -H $((lim + 20)) \
        -L $((lim + 25)) >"$out" 2>>"$tmp/client.log" </dev/null &
    cpid=$!
    track "$cpid"
    for ((i = 0; i < lim * 10; i++)); do
        grep -q '^READY' "$out" && break
        alive "$cpid" || break
        sleep 0.1
    done
    held=''
    if [ -n "$PROXY_PID" ] && grep -q '^READY' "$out"; then mem "$PROXY_PID"; held=$MEM; fi
    kill -TERM "$cpid" 2>/dev/null || true
    wait "$cpid" || true
    untrack "$cpid"
    LINE=$(grep '^mode=conc' "$out" || true)
    if [ -z "$LINE" ]; then
        note conc "$p C=$c: client gave no result ($(tr '\n' ' ' <"$out"))"
        stop_proxy
        return 0
    fi
    ok=$(kv ok "$LINE")
    add "conc|$p|$c|ok" "$ok"
    add "conc|$p|$c|failed" "$(kv failed "$LINE")"
    add "conc|$p|$c|setup" "$(kv setup_s "$LINE")"
    [ "$(kv failed "$LINE")" = 0 ] ||
        note conc "$p C=$c rep $((${3} + 1)): $(kv failed "$LINE") failed (connect $(kv fail_connect "$LINE"), echo $(kv fail_echo "$LINE"), timeout $(kv fail_timeout "$LINE"), not tried $(kv not_tried "$LINE"); first error $(kv first_err "$LINE"))"
    [ "$(kv alive_at_end "$LINE")" = "$ok" ] ||
        note conc "$p C=$c: only $(kv alive_at_end "$LINE") of $ok connections were still open at the end of the hold"
    if [ -n "$held" ] && [ -n "$before" ]; then
        if proxy_died; then note conc "$p C=$c: proxy died during the run"; stop_proxy; return 0; fi
        sleep 0.5    # the proxy has seen the client's FINs by now
        mem "$PROXY_PID"
        after=$MEM
        add "conc|$p|$c|rss0" "$(kv rss_kib "$before")"
        add "conc|$p|$c|rss" "$(kv rss_kib "$held")"
        add "conc|$p|$c|procs" "$(kv procs "$held")"
        add "conc|$p|$c|rssafter" "$(kv rss_kib "$after")"
        LC_ALL=C awk -v a="$(kv rss_kib "$held")" -v b="$(kv rss_kib "$before")" \
            -v pa="$(kv pss_kib "$held")" -v pb="$(kv pss_kib "$before")" -v n="$ok" \
            'BEGIN { if (n > 0) printf "%.2f %.2f\n", (a - b) / n, (pa - pb) / n; else print "na na" }' >"$tmp/perconn"
        local rpc ppc
        read -r rpc ppc <"$tmp/perconn"
        add "conc|$p|$c|rpc" "$rpc"
        add "conc|$p|$c|ppc" "$ppc"
    fi
    stop_proxy
}

sc_conc() {
    local rep p sizes=$CONC_C
    active "$CONC_PROXIES"
    [ "$CONC_MAX" -le 0 ] || [ "$CONC_MAX" = "$CONC_C" ] || sizes="$sizes $CONC_MAX"
    for ((rep = 0; rep < REPS; rep++)); do
        order "$rep" "$ACTIVE"
        quiet_check conc "$rep"
        for p in $ORDER; do
            log "conc: rep $((rep + 1))/$REPS $p C=$CONC_C"
            conc_one "$p" "$CONC_C" "$rep"
        done
    done
    active "$CONC_PROXIES"
    if [ "$sizes" != "$CONC_C" ]; then
        for p in $ACTIVE; do
            log "conc: $p C=$CONC_MAX (1 rep)"
            conc_one "$p" "$CONC_MAX" 0
        done
    fi
    printf '\n## conc: C idle TCP connections held at once, each checked with a 1-byte echo; proxy memory (VmRSS, PSS) from /proc\n\n'
    printf '| proxy | C | reps | held (min) | failed (max) | setup s | RSS before KiB | RSS held KiB | RSS KiB/conn | PSS KiB/conn | procs | RSS after close KiB |\n'
    printf '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n'
    local c k nrep
    for c in $sizes; do
        nrep=$REPS
        [ "$c" = "$CONC_C" ] || nrep=1
        for p in $ACTIVE; do
            k="conc|$p|$c"
            local okmin fmax
            okmin=$(lines "${R["$k|ok"]:-}" | sort -n | head -n 1)
            fmax=$(lines "${R["$k|failed"]:-}" | sort -n | tail -n 1)
            printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$p" "$c" "$nrep" "${okmin:--}" "${fmax:--}" \
                "$(fmt %.2f "$(med "$k|setup")")" "$(fmt %.0f "$(med "$k|rss0")")" "$(fmt %.0f "$(med "$k|rss")")" \
                "$(fmt %.2f "$(med "$k|rpc")")" "$(fmt %.2f "$(med "$k|ppc")")" "$(fmt %.0f "$(med "$k|procs")")" \
                "$(fmt %.0f "$(med "$k|rssafter")")"
        done
    done
    unavailable_rows "$CONC_PROXIES" 12
    printf '\nKiB/conn = (memory while the connections are held - memory just before the client started) / connections held,'
    printf ' summed over the proxy and its child processes. RSS counts pages shared between forks once per process (socat);'
    printf ' PSS splits them. Kernel socket buffers are in neither. fd limit: %s, so C=%s is what a single-process proxy' "$nofile" "$CONC_MAX"
    printf ' (2 fds per connection) can hold.\n'
    [ -n "$PROXIES_GIVEN" ] ||
        printf '\ntproxy-delay0, tproxy-throttle are left out of conc by default (~1.5 min each); a PROXIES that names them measures them here too.\n'
    print_notes conc
}

# idlerr: rr on one connection with none other open, then again while IDLE_N
# idle connections are held open through the same proxy instance: what an
# idle connection costs each event (poll() scans them all; epoll does not)
IDLE_PROXIES="direct tproxy tproxy-before haproxy"
sc_idlerr() {
    local rep p out=$tmp/idle.out cpid i lim n=${IDLE_N:-$CONC_MAX}
    active "$IDLE_PROXIES"
    lim=$((30 + n / 100))
    for ((rep = 0; rep < REPS; rep++)); do
        order "$rep" "$ACTIVE"
        quiet_check idlerr "$rep"
        for p in $ORDER; do
            log "idlerr: rep $((rep + 1))/$REPS $p"
            start_for idlerr "$p" tcp "$EPORT" || continue
            run_client "$tmp/rr.out" 90 "$LOAD" rr -p "$PROXY_PORT" -n "$RR_N" -s 64 -L 60
            client_failed idlerr "$p" "$LINE" || add "idlerr|$p|rts0" "$(kv rt_per_s "$LINE")"
            : >"$out"
            "$LOAD" conc -p "$PROXY_PORT" -c "$n" -k 8 -t 3000 -H $((lim + 120)) -L $((lim + 150)) \
                >"$out" 2>>"$tmp/client.log" </dev/null &
            cpid=$!
            track "$cpid"
            for ((i = 0; i < lim * 10; i++)); do
                grep -q '^READY' "$out" && break
                alive "$cpid" || break
                sleep 0.1
            done
            if grep -q '^READY' "$out"; then
                add "idlerr|$p|held" "$(sed -n 's/^READY ok=\([0-9]*\).*/\1/p' "$out")"
                run_client "$tmp/rr.out" 90 "$LOAD" rr -p "$PROXY_PORT" -n "$RR_N" -s 64 -L 60
                client_failed idlerr "$p" "$LINE" || add "idlerr|$p|rts1" "$(kv rt_per_s "$LINE")"
            else
                note idlerr "$p: the idle connections were not set up ($(tr '\n' ' ' <"$out"))"
            fi
            kill -TERM "$cpid" 2>/dev/null || true
            wait "$cpid" || true
            untrack "$cpid"
            stop_proxy
        done
    done
    active "$IDLE_PROXIES"
    printf '\n## idlerr: rr (%s round trips of 64 bytes) with no other connection, then with %s idle ones held open through the same proxy (median of %s)\n\n' \
        "$RR_N" "$n" "$REPS"
    printf '| proxy | idle held (min) | rt/s, none idle | rt/s, idle held | with / without |\n'
    printf '|---|---:|---:|---:|---:|\n'
    for p in $ACTIVE; do
        local a b
        a=$(med "idlerr|$p|rts0")
        b=$(med "idlerr|$p|rts1")
        printf '| %s | %s | %s | %s | %s |\n' "$p" "$(lines "${R["idlerr|$p|held"]:-}" | sort -n | head -n 1)" \
            "$(fmt %.0f "$a")" "$(fmt %.0f "$b")" "$(ratio "$b" "$a")"
    done
    unavailable_rows "$IDLE_PROXIES" 5
    print_notes idlerr
}

declare -A udp_unsupported    # tproxy|tproxy-before -> 1 when it exited with status 2 on UDP
udp_start() { # udp_start PROXY CPU: 0 when started
    if [ "${udp_unsupported[$1]:-}" = 1 ]; then return 1; fi
    if start_proxy "$1" udp "$EPORT" "$2"; then idle_sample "$1"; return 0; fi
    if [ "${1%-before}" = tproxy ] && [ "$PROXY_STATUS" = 2 ]; then
        udp_unsupported[$1]=1
        note udp "$1: UDP rows skipped: \`tproxy udp-listen:... udp:...\` exited with status 2 (UDP not implemented yet): $(grep -m 1 . "$PROXY_LOG" || true)"
        return 1
    fi
    note udp "$1 (udp): $PROXY_ERR"
    return 1
}

sc_udp() {
    local rep p cpu=${RR_CPU:-}
    active "$UDP_PROXIES"
    local -a pin=()
    [ -z "$cpu" ] || pin=(taskset -c "$cpu")
    for ((rep = 0; rep < REPS; rep++)); do
        order "$rep" "$ACTIVE"
        quiet_check udp "$rep"
        for p in $ORDER; do
            log "udp: rep $((rep + 1))/$REPS $p"
            # request/response (pinned like rr), then a fresh instance for the burst
            [ -z "$cpu" ] || pin_echo "$cpu"
            if udp_start "$p" "$cpu"; then
                run_client "$tmp/udp.out" 90 "${pin[@]}" "$LOAD" udp-rr -p "$PROXY_PORT" -n "$UDP_RR_N" -s 64 -t 200 -L 60
                if ! client_failed udp "$p" "$LINE"; then
                    add "udp|$p|p50" "$(kv p50_us "$LINE")"
                    add "udp|$p|p99" "$(kv p99_us "$LINE")"
                    add "udp|$p|rts" "$(kv rt_per_s "$LINE")"
                    add "udp|$p|lost" "$(kv lost "$LINE")"
                fi
                stop_proxy
            fi
            [ -z "$cpu" ] || pin_echo "$allcpus"
            if udp_start "$p" ""; then
                run_client "$tmp/udp.out" 60 "$LOAD" udp-burst -p "$PROXY_PORT" -n "$UDP_BURST_N" -s 64 -L 40
                if ! client_failed udp "$p" "$LINE"; then
                    add "udp|$p|loss" "$(kv loss_pct "$LINE")"
                    add "udp|$p|eps" "$(kv echo_per_s "$LINE")"
                    add "udp|$p|sps" "$(kv sent_per_s "$LINE")"
                fi
                stop_proxy
            fi
        done
    done
    local drt deps
    drt=$(med "udp|direct|rts") deps=$(med "udp|direct|eps")
    printf '\n## udp: request/response (%s x 64 B, one outstanding, 200 ms timeout; %s) and burst (%s x 64 B as fast as one thread can, echoes drained in between); median of %s\n\n' \
        "$UDP_RR_N" "$(placement "$cpu")" "$UDP_BURST_N" "$REPS"
    printf '| proxy | rr p50 us | rr p99 us | rr/s | x direct | rr lost (all runs) | burst loss %% | burst echoes/s | x direct | burst sent/s | burst loss %% runs |\n'
    printf '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n'
    for p in $ACTIVE; do
        if [ "${udp_unsupported[$p]:-}" = 1 ] && [ -z "${R["udp|$p|rts"]:-}" ]; then
            printf '| %s | UDP not implemented yet (exit status 2) | - | - | - | - | - | - | - | - | - |\n' "$p"
            continue
        fi
        local v e lost
        v=$(med "udp|$p|rts") e=$(med "udp|$p|eps")
        lost=$(lines "${R["udp|$p|lost"]:-}" | awk '/^[0-9]+$/ { s += $1; n++ } END { print n ? s : "-" }')
        printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$p" "$(fmt %.1f "$(med "udp|$p|p50")")" \
            "$(fmt %.1f "$(med "udp|$p|p99")")" "$(fmt %.0f "$v")" "$(ratio "$v" "$drt")" "$lost" \
            "$(fmt %.2f "$(med "udp|$p|loss")")" "$(fmt %.0f "$e")" "$(ratio "$e" "$deps")" \
            "$(fmt %.0f "$(med "udp|$p|sps")")" "$(runs "udp|$p|loss")"
    done
    unavailable_rows "$UDP_PROXIES" 11
    print_notes udp
}

# ------------------------------------------------------------ redis
# a real client and server: redis-benchmark's 50 clients through each proxy
# to one redis-server (no persistence), SET and GET, unpipelined and -P 16
REDIS_PROXIES="direct tproxy tproxy-before socat haproxy haproxy-splice $SCALE_PROXIES"
RPORT=
redis_start() {
    [ -z "$RPORT" ] || return 0
    local pid
    pick_port
    redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no \
        --protected-mode no >"$tmp/redis.log" 2>&1 &
    pid=$!
    track "$pid"
    wait_listen tcp "$PORT" "$pid" || return 1
    RPORT=$PORT
}

sc_redis() {
    local rep p pl t v d h
    if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
        printf '\n## redis: not run: redis-server or redis-benchmark missing (Debian: redis-server, redis-tools)\n'
        return 0
    fi
    if ! redis_start; then
        printf '\n## redis: not run: redis-server did not start: %s\n' "$(tail -n 1 "$tmp/redis.log")"
        return 0
    fi
    active "$REDIS_PROXIES"
    for ((rep = 0; rep < REPS; rep++)); do
        order "$rep" "$ACTIVE"
        quiet_check redis "$rep"
        for p in $ORDER; do
            log "redis: rep $((rep + 1))/$REPS $p"
            start_for redis "$p" tcp "$RPORT" || continue
            for pl in 1 16; do
                run_client "$tmp/redis.out" 300 redis-benchmark -h 127.0.0.1 -p "$PROXY_PORT" \
                    -c 50 -n "$REDIS_N" -P "$pl" -t set,get --csv
                # "SET","123456.79",...: requests/s per test
                for t in SET GET; do
                    v=$(sed -n "s/^\"$t\",\"\([0-9.]*\)\".*/\1/p" "$tmp/redis.out")
                    if [ -n "$v" ]; then add "redis|$p|$t$pl" "$v"
                    else note redis "$p rep $((rep + 1)) -P $pl: no $t result ($(tail -n 1 "$tmp/redis.out"))"; fi
                done
            done
            proxy_died && note redis "$p: proxy died during the run"
            stop_proxy
        done
    done
    active "$REDIS_PROXIES"
    printf '\n## redis: redis-benchmark, 50 clients, %s requests per test, to redis-server (requests/s; median of %s)\n\n' \
        "$REDIS_N" "$REPS"
    printf '| proxy | SET | GET | SET -P 16 | GET -P 16 | GET x direct | GET -P 16 x direct |\n'
    printf '|---|---:|---:|---:|---:|---:|---:|\n'
    d=$(med "redis|direct|GET1") h=$(med "redis|direct|GET16")
    for p in $ACTIVE; do
        printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$p" "$(fmt %.0f "$(med "redis|$p|SET1")")" \
            "$(fmt %.0f "$(med "redis|$p|GET1")")" "$(fmt %.0f "$(med "redis|$p|SET16")")" \
            "$(fmt %.0f "$(med "redis|$p|GET16")")" "$(ratio "$(med "redis|$p|GET1")" "$d")" \
            "$(ratio "$(med "redis|$p|GET16")" "$h")"
    done
    unavailable_rows "$REDIS_PROXIES" 7
    for pl in 1 16; do
        for t in SET GET; do
            v=$(med "redis|tproxy|$t$pl") h=$(med "redis|haproxy|$t$pl")
            [ "$v" = - ] || [ "$h" = - ] || printf '\ntproxy / haproxy, %s -P %s: %s' "$t" "$pl" "$(ratio "$v" "$h")"
        done
    done
    printf '\n'
    scale_ratios redis
    print_notes redis
}

# ------------------------------------------------------------ tls
TLS_DIR=
TLSPORT=
UP_SHA=         # SHA-256 of the upstream's certificate (lower-case hex)
# tls_setup: certificates with the openssl CLI (all ECDSA P-256) and the TLS
# server; 1 with TLS_ERR set.  The upstream certificate (CN and DNS name
# bench.test) is signed by its own CA; the proxies forge with the bench CA;
# the client trusts both CAs, so it verifies whichever certificate it gets,
# and tls_check tells them apart.
tls_setup() {
    local d=$tmp/tls ec=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes) pid
    local -a ca_ext=(-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign")
    TLS_DIR=$d
    mkdir -p "$d"
    printf 'subjectAltName=DNS:bench.test\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' >"$d/up.ext"
    if ! {
        openssl req -x509 "${ec[@]}" -keyout "$d/ca.key" -out "$d/ca.pem" -days 2 -subj "/CN=tproxy bench CA" "${ca_ext[@]}" &&
            openssl req -x509 "${ec[@]}" -keyout "$d/upca.key" -out "$d/upca.pem" -days 2 -subj "/CN=bench upstream CA" "${ca_ext[@]}" &&
            openssl req "${ec[@]}" -keyout "$d/up.key" -out "$d/up.csr" -subj "/CN=bench.test" &&
            openssl x509 -req -in "$d/up.csr" -CA "$d/upca.pem" -CAkey "$d/upca.key" -CAcreateserial \
                -out "$d/up.pem" -days 2 -extfile "$d/up.ext" &&
            openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$d/leaf.key" &&
            cat "$d/upca.pem" "$d/ca.pem" >"$d/trust.pem"
    } >"$d/openssl.log" 2>&1; then
        TLS_ERR="making the certificates failed: $(tail -n 2 "$d/openssl.log" | tr '\n' ' ')"
        return 1
    fi
    UP_SHA=$(openssl x509 -in "$d/up.pem" -noout -fingerprint -sha256 | sed 's/.*=//; s/://g' | tr 'A-F' 'a-f')
    pick_port
    TLSPORT=$PORT
    "$LOAD" tls-serve -p "$TLSPORT" -C "$d/up.pem" -K "$d/up.key" -L 3600 >"$tmp/tls-serve.log" 2>&1 &
    pid=$!
    track "$pid"
    if ! wait_listen tcp "$TLSPORT" "$pid"; then
        TLS_ERR="the TLS server did not start: $(tr '\n' ' ' <"$tmp/tls-serve.log")"
        return 1
    fi
}

# tls_check PROXY REP LINE: the certificate of the warm-up handshake is the
# upstream's (direct) or one forged with the bench CA (proxies); 1 if not
tls_check() {
    local p=$1 sha issuer
    sha=$(kv cert_sha256 "$3") issuer=$(kv issuer_cn "$3")
    [ -n "${R["tls|$p|tls"]:-}" ] ||
        R["tls|$p|tls"]="$(kv proto "$3") $(kv cipher "$3") $(kv group "$3"), certificate $(kv cert_key "$3")"
    if [ "$p" = direct ]; then
        if [ "$sha" = "$UP_SHA" ]; then add "tls|$p|cert" upstream; return 0; fi
        note tls "direct rep $(($2 + 1)): the certificate is not the upstream's (issuer $issuer, sha256 $sha)"
    else
        if [ "$sha" != "$UP_SHA" ] && [ "$issuer" = tproxy_bench_CA ]; then
            add "tls|$p|cert" forged
            R["tls|$p|sha"]=$sha
            return 0
        fi
        note tls "$p rep $(($2 + 1)): NOT intercepted: the client got the upstream's certificate or one not signed by the bench CA (issuer $issuer, sha256 $sha)"
    fi
    add "tls|$p|cert" wrong
    return 1
}

sc_tls() {
    local rep p trust
    active "$TLS_PROXIES" tls
    if [ -n "$ACTIVE" ] && [ -z "$TLS_ERR" ]; then tls_setup || true; fi
    if [ -n "$TLS_ERR" ]; then
        note tls "no measurement: $TLS_ERR"
        ACTIVE=''
    fi
    trust=$TLS_DIR/trust.pem
    for ((rep = 0; rep < REPS && ${#ACTIVE} > 0; rep++)); do
        order "$rep" "$ACTIVE"
        quiet_check tls "$rep"
        for p in $ORDER; do
            log "tls: rep $((rep + 1))/$REPS $p"
            start_for tls "$p" tls "$TLSPORT" || continue
            # one handshake warms the proxy's certificate cache and shows who signed the certificate
            run_client "$tmp/tls.out" 30 "$LOAD" tls-hs -p "$PROXY_PORT" -w 1 -n 1 -A "$trust" -L 20
            if client_failed tls "$p" "$LINE"; then stop_proxy; continue; fi
            if [ "$(kv handshakes "$LINE")" != 1 ]; then
                note tls "$p rep $((rep + 1)): the warm-up handshake failed: $(kv first_err "$LINE")"
                stop_proxy
                continue
            fi
            tls_check "$p" "$rep" "$LINE" || true
            run_client "$tmp/tls.out" $((30 + TLS_SECS)) "$LOAD" tls-hs -p "$PROXY_PORT" -w "$TLS_THREADS" \
                -d "$TLS_SECS" -s 64 -A "$trust" -L $((20 + TLS_SECS))
            if ! client_failed tls "$p" "$LINE"; then
                local f
                add "tls|$p|hs" "$(kv hs_per_s "$LINE")"
                add "tls|$p|fail" "$(kv failures "$LINE")"
                add "tls|$p|p50" "$(kv p50_us "$LINE")"
                f=$(kv failures "$LINE")
                [ "$f" = 0 ] || note tls "$p rep $((rep + 1)): $f failed handshake cycles (connect $(kv fail_connect "$LINE"), tls $(kv fail_tls "$LINE"), io $(kv fail_io "$LINE"), data $(kv fail_data "$LINE"); first error $(kv first_err "$LINE"))"
                [ "$(kv close_notify "$LINE")" = "$(kv handshakes "$LINE")" ] ||
                    note tls "$p rep $((rep + 1)): $(kv close_notify "$LINE") of $(kv handshakes "$LINE") connections ended with close_notify (the others with a bare EOF)"
                # a warm cache hands out the certificate of the warm-up again
                [ "$p" = direct ] || [ "$(kv cert_sha256 "$LINE")" = "${R["tls|$p|sha"]:-}" ] ||
                    note tls "$p rep $((rep + 1)): the handshakes got another certificate than the warm-up (sha256 $(kv cert_sha256 "$LINE"), issuer $(kv issuer_cn "$LINE")): not cached?"
            fi
            run_client "$tmp/tls.out" $((30 + TLS_BULK_SECS)) "$LOAD" tls-bulk -p "$PROXY_PORT" -n 1 \
                -d "$TLS_BULK_SECS" -W "$BULK_WARM" -A "$trust" -L $((20 + TLS_BULK_SECS))
            client_failed tls "$p" "$LINE" || add "tls|$p|bulk" "$(kv gbps "$LINE")"
            stop_proxy
        done
    done
    local dh db
    dh=$(med "tls|direct|hs") db=$(med "tls|direct|bulk")
    printf '\n## tls: TLS interception; handshakes: %s threads, each cycle connect, full handshake (no resumption), 64 B echo, server closes (%s s); bulk: 1 stream client -> server (%s s after %s s warm-up); median of %s\n\n' \
        "$TLS_THREADS" "$TLS_SECS" "$TLS_BULK_SECS" "$BULK_WARM" "$REPS"
    printf '| proxy | handshakes/s | x direct | failures (all runs) | cycle p50 us | bulk Gbit/s | x direct | certificate the client got | handshakes/s runs | bulk Gbit/s runs |\n'
    printf '|---|---:|---:|---:|---:|---:|---:|---|---|---|\n'
    for p in $ACTIVE; do
        local h b fsum certs cert n
        h=$(med "tls|$p|hs") b=$(med "tls|$p|bulk")
        fsum=$(lines "${R["tls|$p|fail"]:-}" | awk '/^[0-9]+$/ { s += $1; n++ } END { print n ? s : "-" }')
        certs=${R["tls|$p|cert"]:-}
        n=$(lines "$certs" | wc -l)
        case " $certs " in
        *" wrong "*) cert="**not the expected one** in $(lines "$certs" | grep -c wrong) of $n runs (see notes)" ;;
        *" forged "*) cert="forged, signed by the bench CA ($n of $n runs)" ;;
        *" upstream "*) cert="the upstream's ($n of $n runs)" ;;
        *) cert=- ;;
        esac
        printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$p" "$(fmt %.0f "$h")" "$(ratio "$h" "$dh")" \
            "$fsum" "$(fmt %.0f "$(med "tls|$p|p50")")" "$(fmt %.2f "$b")" "$(ratio "$b" "$db")" "$cert" \
            "$(runs "tls|$p|hs")" "$(runs "tls|$p|bulk")"
    done
    unavailable_rows "$TLS_PROXIES" 10 tls
    tls_ratios
    if [ -n "$ACTIVE" ]; then
        local sep=''
        printf '\nAll certificates ECDSA P-256 (upstream, bench CA, both proxies'\'' leaf keys); the client verifies the chain and the name. sslsplit runs %s worker threads (2 per CPU), tproxy one. TLS as the client saw it:' "$((2 * ncpu))"
        for p in $ACTIVE; do printf '%s %s: %s' "$sep" "$p" "${R["tls|$p|tls"]:-?}"; sep=';'; done
        printf '.\n'
    fi
    print_notes tls
}

# tls_ratios: the ratios the TLS targets are about, from the medians of this run
tls_ratios() {
    local a b
    printf '\nRatios of the medians above (this run):'
    for a in tproxy tproxy-auto; do
        [ -n "${R["tls|$a|hs"]:-}" ] && [ -n "${R["tls|sslsplit|hs"]:-}" ] || continue
        printf ' %s / sslsplit: handshakes %s, bulk %s;' "$a" "$(ratio "$(med "tls|$a|hs")" "$(med "tls|sslsplit|hs")")" \
            "$(ratio "$(med "tls|$a|bulk")" "$(med "tls|sslsplit|bulk")")"
    done
    a=tproxy-auto b=tproxy
    [ -z "${R["tls|$a|hs"]:-}" ] || [ -z "${R["tls|$b|hs"]:-}" ] ||
        printf ' tproxy-auto (tls=auto) / tproxy (tls): handshakes %s, bulk %s;' \
            "$(ratio "$(med "tls|$a|hs")" "$(med "tls|$b|hs")")" "$(ratio "$(med "tls|$a|bulk")" "$(med "tls|$b|bulk")")"
    printf '\n'
}

print_idle() {
    local p any=0 all="$TCP_PROXIES tproxy+tls tproxy-auto+tls tproxy-before+tls sslsplit"
    for p in $all; do [ -z "${R["idle|$p|rss"]:-}" ] || any=1; done
    [ "$any" = 1 ] || return 0
    printf '\n## idle memory: each proxy just after start (listening, no connection yet); median over all starts\n\n'
    printf '| proxy | starts | VmRSS KiB | PSS KiB |\n|---|---:|---:|---:|\n'
    for p in $all; do
        [ -n "${R["idle|$p|rss"]:-}" ] || continue
        local n
        n=$(lines "${R["idle|$p|rss"]}" | wc -l)
        printf '| %s | %s | %s | %s |\n' "$p" "$n" "$(fmt %.0f "$(med "idle|$p|rss")")" "$(fmt %.0f "$(med "idle|$p|pss")")"
    done
    [ -z "${R["idle|tproxy+tls|rss"]:-}${R["idle|tproxy-before+tls|rss"]:-}" ] ||
        printf '\ntproxy+tls, tproxy-before+tls: tproxy with --ca-cert/--ca-key and a tls route (the tls scenario).\n'
}

# the tproxy variants against tproxy from the same run, from the medians of the
# tables above: FILTER-row / tproxy (the cost of the idle filter) and
# tproxy / tproxy-before (after / before a change)
print_variants() {
    local p v m any=0 ref=0 cells sc label num den
    local -a keys=(bulk:s1 bulk:s4 bulk:dup rr:rts rr:p50 connrate:cps connrate:p50 "conc:$CONC_C|rpc" "conc:$CONC_C|ppc")
    for p in tproxy-delay0 tproxy-throttle tproxy-pcap tproxy-before; do
        selected "$p" || continue
        for v in "${keys[@]}"; do [ -z "${R["${v%%:*}|$p|${v#*:}"]:-}" ] || any=1; done
        why "$p"
        [ -z "${WHY#not built*}" ] || any=1   # a rejected filter says so here too
    done
    for v in "${keys[@]}"; do [ -z "${R["${v%%:*}|tproxy|${v#*:}"]:-}" ] || ref=1; done
    [ "$any" = 1 ] && [ "$ref" = 1 ] || return 0
    printf '\n## tproxy variants: ratios of the medians above (this run): idle filter / tproxy, and tproxy / tproxy-before\n\n'
    printf '| row | bulk 1 stream | bulk 4 streams | bulk duplex | rr round trips/s | rr p50 us | connrate conns/s | connrate cycle p50 us | conc RSS KiB/conn | conc PSS KiB/conn |\n'
    printf '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n'
    for p in tproxy-delay0 tproxy-throttle tproxy-pcap tproxy-before; do
        selected "$p" || continue
        num=$p den=tproxy
        [ "$p" != tproxy-before ] || num=tproxy den=$p
        label="$num / $den"
        why "$p"
        if [ -n "$WHY" ]; then printf '| %s | %s | - | - | - | - | - | - | - | - |\n' "$label" "$WHY"; continue; fi
        cells=''
        for v in "${keys[@]}"; do
            sc=${v%%:*} m=${v#*:}
            cells="$cells $(ratio "$(med "$sc|$num|$m")" "$(med "$sc|$den|$m")") |"
        done
        printf '| %s |%s\n' "$label" "$cells"
    done
    printf '\nThroughput and rates: above 1 means the first-named is faster; p50 latencies and KiB/conn: above 1 means it is slower or uses more. Filters: tproxy-delay0 %s, tproxy-throttle %s, tproxy-pcap %s. conc: C=%s.\n' \
        "\`${FILTER[tproxy-delay0]}\`" "\`${FILTER[tproxy-throttle]}\`" "\`${FILTER[tproxy-pcap]}\`" "$CONC_C"
}

# ------------------------------------------------------------ main
t_start=$SECONDS
start_servers
if [ -n "${why_not[tproxy]:-}" ]; then ver_tproxy="not built"
else ver_tproxy=$("$TPROXY" -V 2>/dev/null | head -n 1 || true); fi
printf '# tproxy loopback benchmark, %s\n\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
printf -- '- machine: %s CPUs, kernel %s; ulimit -n %s (hard %s)\n' "$ncpu" "$(uname -r)" "$nofile" "$hard"
printf -- '- tproxy: %s (%s)\n' "${TPROXY#"$top"/}" "${ver_tproxy:-version unknown}"
if selected tproxy-before; then
    if [ -n "${why_not[tproxy-before]:-}" ]; then ver_before=${why_not[tproxy-before]}
    else ver_before=$("$TPROXY_BEFORE" -V 2>/dev/null | head -n 1 || true); fi
    printf -- '- tproxy-before: %s (%s)\n' "${TPROXY_BEFORE:-unset}" "${ver_before:-version unknown}"
fi
if selected tproxy-delay0 || selected tproxy-throttle || selected tproxy-pcap; then
    printf -- '- tproxy-delay0, tproxy-throttle, tproxy-pcap: tproxy with the filter %s, %s, %s appended to the route (TCP scenarios)\n' \
        "\`${FILTER[tproxy-delay0]}\`" "\`${FILTER[tproxy-throttle]}\`" "\`${FILTER[tproxy-pcap]}\`"
fi
printf -- '- socat: %s; haproxy: %s; sslsplit: %s; %s\n' "$(socat -V 2>/dev/null | sed -n 's/^socat version \([^ ]*\).*/\1/p' || true)" \
    "$(haproxy -v 2>/dev/null | sed -n 's/^HAProxy version \([^ ]*\).*/\1/p' || true)" \
    "$(sslsplit -V 2>&1 | sed -n 's/^SSLsplit \([^ ]*\).*/\1/p' || true)" "$(openssl version 2>/dev/null || true)"
printf -- '- scenarios: %s; REPS=%s (every proxy once per repetition, order rotated); proxies: %s\n' "$scenarios" "$REPS" "$PROXIES"
printf -- '- client, echo/sink server and proxy share the machine: compare ratios to direct, not absolute numbers\n'
for s in $scenarios; do
    "sc_$s"
done
print_idle
print_variants
printf '\n(total %s s)\n' $((SECONDS - t_start))
