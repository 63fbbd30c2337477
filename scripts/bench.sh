#!/usr/bin/env bash
# sipcti load benchmark (not a test): SIPp phone -> sipcti -> SIPp trunk on a
# private loopback /24, with the Zammad double taking the CTI events.
#
#   scripts/bench.sh [options]
#
#   --rate N           calls per second offered by the phone (SIPp -r)      [200]
#   --calls N          calls per run (SIPp -m)    [rate * --secs, at most 33000]
#   --secs S           run length used when --calls is not given             [8]
#   --transport T      udp | tcp (both legs)                               [udp]
#   --hold MS          time between ACK and BYE (SIPp -d)                    [0]
#   --find-max         step the rate up (x --factor) from --rate until a run
#                      fails, then bisect (--refine times); every step runs
#                      with Zammad (unless --no-zammad); then the --repeat
#                      runs and the latency passes at the best rate
#   --factor F         rate multiplier of --find-max                      [1.5]
#   --max-rate N       --find-max never offers more than this            [30000]
#   --refine N         bisection steps after the first failing rate          [3]
#   --repeat N         run the measured configuration N times (spread)       [1]
#   --no-latency       skip the two capture passes (with / without Zammad)
#   --latency-rate N   rate of the capture passes          [the rate measured]
#   --no-zammad        throughput runs without the [zammad] section (events
#                      go to sipcti's stdout and are counted there; no
#                      33000-call cap): for long steady-state runs
#   --zammad-delay MS  the double answers every CTI request MS ms late (its
#                      "delay" mode), to see a slow Zammad in front of the
#                      client's 8 parallel requests and the 1500 ms newCall wait
#   --cti-own-thread   sipcti's [zammad] own_thread = true (the Zammad client
#                      on its own thread)
#   --double-threads N  the double's runtime threads (1: one thread, the
#                      least CPU beside the proxy; 0: one per core)       [1]
#   --held N           also a memory pass per proxy: N calls at --rate, each
#                      held N/rate + 40 s (SIPp -d), so all N dialogs are up
#                      at once from the end of the ramp; prints the proxy's
#                      PSS growth over idle (all its processes, shared
#                      memory counted once) divided by N: at the end of the
#                      ramp (per_call_with_tx_b: dialogs and their
#                      transactions) and just before the first BYE
#                      (per_held_dialog_b: the transactions are gone);
#                      SIPp's call rate over the run is not checked here
#                                                              [0 = no pass]
#   --in-flight N      sipcti's zammad.max_in_flight (HTTP requests to Zammad
#                      at once)                    [sipcti's default]
#   --cti-wait S       wait at most S seconds for the CTI events to arrive  [60]
#   --profile P        perf | callgrind | syscalls | allocs: profile sipcti
#                      during one run at --rate (with --peer kamailio, perf
#                      and syscalls then profile Kamailio's processes too)
#                      (perf: perf record -e cpu-clock -F 999 --call-graph
#                      dwarf attached to sipcti, reports perf.flat.txt,
#                      perf.children.txt and perf.split.txt, the samples by
#                      kind of work: scripts/bench_perfsplit.py); callgrind: sipcti runs under
#                      valgrind, use a low rate)
#                      syscalls: perf stat of every syscall tracepoint,
#                      context switches and task-clock attached to sipcti;
#                      prints them per successful call (perf.stat.txt)
#                      allocs: uprobes on mimalloc's entry points in the
#                      binary (mi_malloc, mi_zalloc, mi_calloc, mi_realloc,
#                      their _aligned forms, mi_free), counted with perf stat
#                      and printed per call, and every allocation recorded
#                      with its stack (allocsites.txt: call sites,
#                      scripts/bench_allocsites.py; ~3 MB of perf.allocs.data
#                      per call); the probes cost ~10 us per hit: use ~50
#                      calls/s and a few hundred calls; removed afterwards
#   --net A.B          use 127.A.B.0/24                   [127.240.x, x free]
#   --sipp-buff BYTES  SIPp socket buffers (-buff_size; SIPp's own default is
#                      65535, which overflows on any burst sipcti sends)
#                      [4194304; 0 = SIPp's default]
#   --pin              pin sipcti to CPU 0, SIPp and the double to CPU 1
#   --steady-from S    cpu_us_call_steady counts from S seconds into the
#                      SIPp run                                             [3]
#   --no-thp           start sipcti with transparent huge pages disabled
#                      (prctl PR_SET_THP_DISABLE, through python3): shows
#                      what first-touch huge-page faults cost at cold start
#   --peer P           none | kamailio: also run the same load through
#                      Kamailio (fixtures/bench/kamailio.cfg: tm + rr + dialog,
#                      TLSF allocators, -m 4096 -M 16, 2 children) at the same
#                      address and port as sipcti, one proxy at a time: each
#                      --find-max step search, each --repeat run and a capture
#                      latency pass; then print both side by side (CPU per
#                      call, INVITE delay p50/p99/max, max calls/s with zero
#                      failed calls, peak RSS). Kamailio runs without CTI, so
#                      its runs pass on SIPp's figures alone.       [none]
#   --out DIR          results                  [target/bench/YYYYmmdd-HHMMSS]
#   --no-build         do not run cargo build
#   (environment) SIPCTI_BIN=PATH bench that sipcti binary instead of
#                      target/release/sipcti (e.g. a saved copy of main's build)
#
# Needs: sip-tester (sipp), jq, curl, python3, ss; tcpdump for the latency
# passes (tshark too with --transport tcp); kamailio (Debian's package) for
# --peer kamailio; perf (linux-perf) or valgrind for --profile. Runs without
# root if tcpdump may capture on lo (CAP_NET_RAW) and perf may attach to the
# user's processes (kernel.perf_event_paranoid <= 1).
#
# A run PASSES when SIPp reports every call successful (no failed call, no
# timeout), SIPp reached at least 95% of the offered rate (CallRate(C)), the
# double logged 3 accepted CTI requests (status 200) per call and sipcti
# logged no fail-open (newCall not answered in time).
#
# Per run (one line in OUT/runs.tsv, logs and SIPp files in OUT/NN-name/):
#   cps          SIPp CallRate(C), calls created per second over the run (a
#                failing run includes the 10 s receive timeout of its failed
#                calls, so its cps is low)
#   cti          accepted requests (status 200) in the double's log / 3 per call
#                (without [zammad]: JSON lines on sipcti's stdout)
#   cti_drain_s  time from the end of SIPp until all were in the log
#   fail_open    "newCall not answered in time" lines in sipcti's log
#   idle_rss_mb  VmRSS of sipcti 1 s after it started, before any call
#   load_rss_mb  the highest VmRSS of sipcti sampled (every 0.25 s) while SIPp ran
#   rss_mb       VmHWM (peak RSS) of sipcti, including the CTI drain after SIPp
#   udp_in_err   host-wide UDP receive errors during the run
#   sock_drops   kernel drops on each UDP socket (receive buffer full):
#                sipcti / trunk / phone ("?" = no such UDP socket, e.g. TCP)
#   cpu_s        CPU seconds of each process during the run (wall = its length)
#   cpu_us_call  the proxy's CPU (utime+stime of all its processes and
#                threads, from /proc/PID/stat, over the SIPp run) per
#                successful call, in microseconds
#   cpu_us_call_steady  the same from --steady-from seconds after SIPp's
#                start to its end (the calls completed in that window,
#                from SIPp's per-second statistics): without the first
#                seconds' warm-up (tables growing, first-touch page faults)
#   load         1-minute load average when the run started (the machine is
#                shared: a high load means noisy figures)
#
# With --peer kamailio, runs named *-kamailio are Kamailio's (proxy=kamailio):
# its rss_mb is the sum of VmHWM over its processes (shared memory counted in
# each, so an upper bound), pss_mb the sum of their Pss at the end of the run.
#
# Note: the double keeps its last 100,000 requests, so runs with Zammad have at
# most 33,000 calls (shorter than --secs at high rates).
#
# Addresses: 127.A.B.1 sipcti (:5060) and the double (:18080), .2 the trunk
# (SIPp UAS :5060), .3 the phone (SIPp UAC :5060). A = 240 by default, which
# the e2e lab (A in 20..219) never picks. Everything stays on 127.0.0.0/8.
#
# Latency: two runs with tcpdump on lo. For each Call-ID, time of the first
# INVITE to the trunk minus the first INVITE phone->proxy (as seen on lo: an
# INVITE the proxy's socket dropped counts from its first copy, so "max"
# includes a 500 ms retransmission).
#   "with Zammad"   : the normal config; includes the newCall HTTP round trip
#                     to the double (the INVITE waits for Zammad's answer).
#   "proxy only"    : the [zammad] section removed (stdout sink, newCall is
#                     answered at once): sipcti's own forwarding time.
#   "kamailio"      : with --peer kamailio, the same pass through Kamailio.
# Each pass prints the whole run's figures and splits them: first1s_* for
# calls whose INVITE reached the proxy in the first second of load, after1s_*
# for the rest, over10ms = calls delayed more than 10 ms; the per-call delays
# are in latency.csv in the run's directory (seconds since the first INVITE,
# delay in ms).
#
# Last measured (2 cores shared with both SIPps, the double and other
# engineers' builds, load 1-6, 2026-11-29; details in docs/SPEED.md):
#   --peer kamailio --find-max --rate 1500 --factor 1.3 --refine 2 --repeat 3:
#     max calls/s with zero failed calls sipcti 2,388 with CTI (its 3 repeats
#     at that rate failed), Kamailio 4,283; CPU per call 365 vs 143 us
#   the same with --no-zammad --no-latency: sipcti 3,493, Kamailio 4,858
#   --peer kamailio --rate 2000 --repeat 3 (load 1-2): CPU per call sipcti 387
#     (Zammad) / 239 (stdout), Kamailio 209 us; INVITE delay p99 498 / 5.9 /
#     1.5 ms, first second 531 / 17 / 2.1 ms
#
# Previously (2 cores shared with both SIPps and the double, 2026-11-21):
#   UDP 6,800 offered with CTI, 3 runs: 6,721-6,733 calls/s, 0 failed, 99000/99000 events
#   TCP 6,800 offered with CTI, 3 runs: 6,726-6,747 calls/s, 0 failed
#   UDP find-max without [zammad] (events on stdout): 9,684-9,687 calls/s, 0 failed
#   UDP 4,000 calls/s for 45 s without [zammad]: 180,000/180,000, RSS 259 MB
#   INVITE latency at 6,800 calls/s: proxy only p50 1.2 ms / p99 4.3 ms;
#   with Zammad's answer awaited p50 5.1 ms / p99 24 ms
# Memory (2026-11-29, UDP 2,000 calls/s with CTI, 16,000 calls, 2 runs; a
# shared machine, load 3-6): idle RSS 24.6 MB, RSS under load 113-116 MB
# (peak VmHWM 116-119 MB); with the transaction tables presized for
# max_transactions it was 33 MB idle and 256-259 MB under the same load.
#
# Examples:
#   scripts/bench.sh --find-max --rate 2000 --factor 1.25 --refine 2 --repeat 3
#   scripts/bench.sh --transport tcp --find-max --rate 1500 --factor 1.3 --no-latency
#   scripts/bench.sh --no-zammad --rate 900 --secs 50 --no-latency   # steady state
#   scripts/bench.sh --rate 200 --calls 1600 --zammad-delay 20       # slow Zammad
#   scripts/bench.sh --profile perf --rate 2000 --calls 12000
#   scripts/bench.sh --peer kamailio --find-max --rate 1500 --factor 1.3 --refine 2 --repeat 3
set -u -o pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN="${SIPCTI_BIN:-$ROOT/target/release/sipcti}" # SIPCTI_BIN: bench another build (e.g. a copy of the last release)
FIX="$ROOT/fixtures/bench"
TOKEN="bench-token"
DOUBLE_PORT=18080
ADMIN_PORT=18081 # sipcti's [admin]: /metrics is scraped after each run and checked against SIPp and the double

RATE=200
CALLS=""
SECS=8
TP=udp
HOLD=0
FIND_MAX=0
FACTOR=1.5
MAX_RATE=30000
REFINE=3
REPEAT=1
LATENCY=1
LAT_RATE=""
CTI_WAIT=60
ZAMMAD=1
ZDELAY=0
DTHREADS=1
CTI_OWN=0
IN_FLIGHT=""
HELD=0
HELD_PASS=0
PROFILE=""
NET=""
PIN=0
STEADY_FROM=3
PEER=none
NO_THP=0
SIPP_BUFF=4194304
OUT=""
BUILD=1

die() { echo "bench: $*" >&2; exit 2; }

while [ $# -gt 0 ]; do
    case "$1" in
        --rate) RATE=$2; shift 2 ;;
        --calls) CALLS=$2; shift 2 ;;
        --secs) SECS=$2; shift 2 ;;
        --transport) TP=$2; shift 2 ;;
        --hold) HOLD=$2; shift 2 ;;
        --find-max) FIND_MAX=1; shift ;;
        --factor) FACTOR=$2; shift 2 ;;
        --max-rate) MAX_RATE=$2; shift 2 ;;
        --refine) REFINE=$2; shift 2 ;;
        --repeat) REPEAT=$2; shift 2 ;;
        --no-latency) LATENCY=0; shift ;;
        --latency-rate) LAT_RATE=$2; shift 2 ;;
        --cti-wait) CTI_WAIT=$2; shift 2 ;;
        --no-zammad) ZAMMAD=0; shift ;;
        --zammad-delay) ZDELAY=$2; shift 2 ;;
        --double-threads) DTHREADS=$2; shift 2 ;;
        --cti-own-thread) CTI_OWN=1; shift ;;
        --in-flight) IN_FLIGHT=$2; shift 2 ;;
        --held) HELD=$2; shift 2 ;;
        --profile) PROFILE=$2; shift 2 ;;
        --net) NET=$2; shift 2 ;;
        --pin) PIN=1; shift ;;
        --steady-from) STEADY_FROM=$2; shift 2 ;;
        --peer) PEER=$2; shift 2 ;;
        --no-thp) NO_THP=1; shift ;;
        --sipp-buff) SIPP_BUFF=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        -h|--help) sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
done

SIPP_EXTRA=()
[ "$SIPP_BUFF" != 0 ] && SIPP_EXTRA=(-buff_size "$SIPP_BUFF")
case "$TP" in udp) SIPP_T=u1 ;; tcp) SIPP_T=t1 ;; *) die "--transport udp|tcp" ;; esac
case "$PROFILE" in ""|perf|callgrind|syscalls|allocs) ;; *) die "--profile perf|callgrind|syscalls|allocs" ;; esac
case "$PEER" in none|kamailio) ;; *) die "--peer none|kamailio" ;; esac
KAMAILIO_CFG="$FIX/kamailio.cfg"
if [ "$PEER" = kamailio ]; then
    command -v kamailio >/dev/null || [ -x /usr/sbin/kamailio ] || die "kamailio not installed (apt-get install kamailio)"
    KAMAILIO=$(command -v kamailio || echo /usr/sbin/kamailio)
    [ -r "$KAMAILIO_CFG" ] || die "$KAMAILIO_CFG missing"
fi
for n in "$RATE" "$SECS" "$HOLD" "$ZDELAY" "$MAX_RATE" "$REFINE" "$REPEAT" "$CTI_WAIT" "$HELD"; do
    [[ "$n" =~ ^[0-9]+$ ]] || die "not a number: $n"
done
[ -z "$CALLS" ] || [[ "$CALLS" =~ ^[0-9]+$ ]] || die "--calls: not a number"
command -v sipp >/dev/null || die "sipp not installed (apt-get install sip-tester)"
for t in jq curl python3 ss; do command -v $t >/dev/null || die "$t not installed"; done
if [ "$LATENCY" = 1 ]; then
    command -v tcpdump >/dev/null || die "tcpdump not installed (or use --no-latency)"
    [ "$TP" = udp ] || command -v tshark >/dev/null || die "tshark not installed (or use --no-latency)"
fi

[ -n "$OUT" ] || OUT="$ROOT/target/bench/$(date +%Y%m%d-%H%M%S)"
mkdir -p "$OUT" || die "cannot create $OUT"
OUT=$(cd "$OUT" && pwd)
SUMMARY="$OUT/summary.txt"
: >"$SUMMARY"
say() { echo "$*" | tee -a "$SUMMARY"; }

# ------------------------------------------------------------------ processes
# Every process this script starts is remembered by PID and ended by PID.
PIDS=()
track() { PIDS+=("$1"); }
stop_pid() { # pid [signal] [wait seconds]: signal, wait, then KILL
    local pid=$1 sig=${2:-TERM} w=${3:-10} i
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
    kill -"$sig" "$pid" 2>/dev/null
    for ((i = 0; i < w * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    return 0
}
cleanup() {
    local p
    for p in "${PIDS[@]:-}"; do
        [ -n "$p" ] && kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null
    done
}
trap cleanup EXIT
trap 'echo "bench: interrupted" >&2; exit 130' INT TERM

pin() { # cpu: prefix for a command
    if [ "$PIN" = 1 ]; then echo "taskset -c $1"; fi
}

wait_for() { # seconds command...: poll until the command succeeds
    local s=$1 i
    shift
    for ((i = 0; i < s * 20; i++)); do
        "$@" && return 0
        sleep 0.05
    done
    return 1
}

# ------------------------------------------------------------------ addresses
addr_busy() { # prefix, e.g. 127.240.7.
    ss -Hanu 2>/dev/null | grep -qF " $1" && return 0
    ss -Hant 2>/dev/null | grep -qF " $1" && return 0
    return 1
}
if [ -z "$NET" ]; then
    for _ in $(seq 1 50); do
        cand="240.$((RANDOM % 250))"
        if ! addr_busy "127.$cand."; then NET=$cand; break; fi
    done
    [ -n "$NET" ] || die "no free 127.240.x.0/24"
fi
[[ "$NET" =~ ^[0-9]+\.[0-9]+$ ]] || die "--net A.B"
PROXY_IP="127.$NET.1"
TRUNK_IP="127.$NET.2"
PHONE_IP="127.$NET.3"
addr_busy "127.$NET." && die "127.$NET.0/24 is in use"

# ------------------------------------------------------------------ build
if [ "$BUILD" = 1 ]; then
    echo "bench: cargo build --release -p sipcti-proxy"
    (cd "$ROOT" && cargo build --release -p sipcti-proxy) || die "build failed"
fi
[ -x "$BIN" ] || die "$BIN missing"

# ------------------------------------------------------------------ one run
write_config() { # file with_zammad
    {
        echo "# written by scripts/bench.sh"
        echo "[sip]"
        echo "listen = \"$PROXY_IP:5060\""
        echo "[trunk]"
        echo "uri = \"sip:$TRUNK_IP:5060;transport=$TP\""
        echo "sources = [\"$TRUNK_IP/32\"]"
        echo "[inside]"
        echo "networks = [\"$PHONE_IP/32\"]"
        echo "target = \"sip:$PHONE_IP:5060;transport=$TP\""
        echo "[numbers]"
        echo "country_code = \"49\""
        # one SIPp per side is the whole load: no per-source limit may apply
        echo "[limits]"
        echo "inside_rate_per_s = 1000000"
        echo "inside_burst = 1000000"
        echo "trunk_rate_per_s = 1000000"
        echo "trunk_burst = 1000000"
        echo "source_share_percent = 100"
        # the tables' defaults (100,000 transactions, 100,000 calls) refuse
        # new calls with 503 from ~5,000 calls/s (a call's transactions
        # linger 5 s after it, its record 32 s); Kamailio's config here has
        # no table limit either, so both are measured by CPU, not by a cap
        echo "max_transactions = 1000000"
        echo "max_calls = 1000000"
        echo "[admin]"
        echo "listen = \"$PROXY_IP:$ADMIN_PORT\""
        if [ "$2" = 1 ]; then
            echo "[zammad]"
            echo "url = \"http://$PROXY_IP:$DOUBLE_PORT/api/v1/cti/$TOKEN\""
            echo "newcall_timeout_ms = 1500"
            if [ -n "$IN_FLIGHT" ]; then echo "max_in_flight = $IN_FLIGHT"; fi
            if [ "$CTI_OWN" = 1 ]; then echo "own_thread = true"; fi
        fi
    } >"$1"
}

rss_kb() { # pid -> VmRSS in kB (0 if gone)
    local v
    v=$(awk '/^VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null)
    echo "${v:-0}"
}

cpu_of() { # pid -> utime+stime in clock ticks (0 if gone)
    awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0
}

tree_of() { # pid -> the pid and its children (Kamailio's workers), one a line
    echo "$1"
    pgrep -P "$1" 2>/dev/null || true
}

cpu_tree() { # pid -> utime+stime of the pid and its children, clock ticks
    local p t=0
    for p in $(tree_of "$1"); do t=$((t + $(cpu_of "$p"))); done
    echo "$t"
}

hwm_tree() { # pid -> sum of VmHWM (kB) over the pid and its children
    local p
    for p in $(tree_of "$1"); do cat "/proc/$p/status" 2>/dev/null; done |
        awk '/^VmHWM/ {s += $2} END {print s + 0}'
}

pss_tree() { # pid -> sum of Pss (kB) over the pid and its children
    local p
    for p in $(tree_of "$1"); do cat "/proc/$p/smaps_rollup" 2>/dev/null; done |
        awk '/^Pss:/ {s += $2} END {print s + 0}'
}

udp_errors() { # "InErrors RcvbufErrors" of the host (all of UDP)
    awk '/^Udp:/ { if (!h) { for (i = 1; i <= NF; i++) col[$i] = i; h = 1 } else print $col["InErrors"], $col["RcvbufErrors"] }' /proc/net/snmp
}

sock_drops() { # "sipcti=N uas=N uac=N": kernel drops on each UDP socket (? = no socket)
    ss -Huanm 2>/dev/null | awk -v p="$PROXY_IP:5060" -v t="$TRUNK_IP:5060" -v u="$PHONE_IP:5060" '
        index($0, p) { w = "sipcti"; next }
        index($0, t) { w = "uas"; next }
        index($0, u) { w = "uac"; next }
        w != "" { if (match($0, /,d[0-9]+\)/)) v[w] = substr($0, RSTART + 2, RLENGTH - 3); w = "" }
        END { printf "sipcti=%s uas=%s uac=%s\n", ("sipcti" in v) ? v["sipcti"] : "?", ("uas" in v) ? v["uas"] : "?", ("uac" in v) ? v["uac"] : "?" }'
}

cti_count() { # accepted CTI requests in the double's log
    curl -s --max-time 20 "http://$PROXY_IP:$DOUBLE_PORT/api/v1/cti/log" |
        jq '[.requests[] | select(.status == 200)] | length' 2>/dev/null
}

sipp_stats() { # csv -> "key=value ..." of the final statistics line
    python3 - "$1" <<'EOF'
import sys
rows = [l.rstrip("\n").split(";") for l in open(sys.argv[1]) if l.strip()]
if len(rows) < 2:
    print("created=0 ok=0 failed=0 retrans=0 elapsed=0 callrate=0"); sys.exit()
h, last = rows[0], rows[-1]
d = dict(zip(h, last))
def n(k):
    try: return int(float(d.get(k, "0") or 0))
    except ValueError: return 0
def secs(v):  # HH:MM:SS:uuuuuu
    p = v.split(":")
    try: return int(p[0]) * 3600 + int(p[1]) * 60 + int(p[2]) + int(p[3]) / 1e6
    except (ValueError, IndexError): return 0.0
def epoch(v):  # "date<TAB>time<TAB>epoch"
    try: return float(v.split("\t")[-1])
    except ValueError: return 0.0
def f(k):
    try: return float(d.get(k, "0") or 0)
    except ValueError: return 0.0
# CallRate(C): SIPp's cumulative rate of calls created
print("created=%d ok=%d failed=%d retrans=%d elapsed=%.3f callrate=%.1f" % (
    n("OutgoingCall(C)") or n("IncomingCall(C)"), n("SuccessfulCall(C)"), n("FailedCall(C)"),
    n("Retransmissions(C)"), epoch(d.get("CurrentTime", "0")) - epoch(d.get("StartTime", "0")),
    f("CallRate(C)")))
EOF
}

# start_kamailio DIR: Kamailio as the proxy (PROXY_IP:5060), in the
# foreground with its own runtime dir; prints its main PID
start_kamailio() {
    local d=$1 krun="$1/kamailio-run"
    mkdir -p "$krun"
    local defs=(-A "LISTEN=$TP:$PROXY_IP:5060"
        -A "TRUNK_IP=\"$TRUNK_IP\"" -A "TRUNK_URI=\"sip:$TRUNK_IP:5060;transport=$TP\""
        -A "TRUNK_HOST=\"$TRUNK_IP\"" -A "TRUNK_PORT=5060"
        -A "PHONE_IP=\"$PHONE_IP\"" -A "INSIDE_URI=\"sip:$PHONE_IP:5060;transport=$TP\""
        -A "INSIDE_HOST=\"$PHONE_IP\"" -A "INSIDE_PORT=5060")
    [ "$TP" = tcp ] && defs+=(-A WITH_TCP -A "LISTEN_IP=$PROXY_IP")
    $(pin 0) "$KAMAILIO" -f "$KAMAILIO_CFG" -DD -E -Y "$krun" -P "$krun/kamailio.pid" \
        -x tlsf -X tlsf -m 4096 -M 16 "${defs[@]}" >"$d/kamailio.log" 2>&1 &
    echo $!
}

# run_one NAME RATE CALLS WITH_ZAMMAD CAPTURE PROFILE [PROXY]
# PROXY: sipcti (default) or kamailio (no CTI: WITH_ZAMMAD is ignored).
# Sets R_* variables and appends a line to $OUT/runs.tsv.
run_one() {
    local name=$1 rate=$2 calls=$3 zam=$4 cap=$5 prof=$6 kind=${7:-sipcti}
    local d="$OUT/$name" cfg pid dpid="" cpid="" ppid="" uas uac t0 t1 i load
    load=$(cut -d' ' -f1 /proc/loadavg)
    mkdir -p "$d"
    [ "$kind" = kamailio ] && zam=0
    [ "$kind" = kamailio ] && [ "$prof" != perf ] && [ "$prof" != syscalls ] && prof=""
    cfg="$d/sipcti.toml"
    write_config "$cfg" "$zam"
    R_OK=0 R_CREATED=0 R_SIP_OK=0 R_FAILED=0 R_RETRANS=0 R_CPS=0 R_CTI=0
    R_CTI_EXP=$((calls * 3)) R_CTI_S=nan R_FAILOPEN=0 R_HWM=0 R_PSS=0 R_LAT="" R_WARN=0 R_CPU=0 R_USCALL=nan R_STEADY=nan
    R_IDLE_RSS=0 R_LOAD_RSS=0 R_METRICS=- R_IDLE_PSS=0 R_PEAK_PSS=0 R_PER_DIALOG=""
    [ "$kind" = kamailio ] && R_CTI_EXP=0

    if [ "$zam" = 1 ]; then
        $(pin 1) "$BIN" zammad-double --listen "$PROXY_IP:$DOUBLE_PORT" --token "$TOKEN" --threads "$DTHREADS" \
            --rules "$FIX/rules.toml" >"$d/double.log" 2>&1 &
        dpid=$!
        track $dpid
        wait_for 10 curl -s -o /dev/null --max-time 1 "http://$PROXY_IP:$DOUBLE_PORT/api/v1/cti/log" ||
            { echo "bench: the double did not start" >&2; cat "$d/double.log" >&2; stop_pid $dpid; return 1; }
        if [ "$ZDELAY" != 0 ]; then
            curl -s --max-time 5 -X POST -H 'Content-Type: application/json' \
                -d "{\"mode\":\"delay\",\"ms\":$ZDELAY}" \
                "http://$PROXY_IP:$DOUBLE_PORT/api/v1/cti/_mode" >"$d/double-mode.json"
        fi
    fi

    local runner=()
    if [ "$prof" = callgrind ]; then
        runner=(valgrind --tool=callgrind --callgrind-out-file="$d/callgrind.out")
    elif [ "$NO_THP" = 1 ]; then
        # PR_SET_THP_DISABLE = 41, kept across execve
        runner=(python3 -c 'import ctypes, os, sys
if ctypes.CDLL(None, use_errno=True).prctl(41, 1, 0, 0, 0) != 0: sys.exit("prctl failed")
os.execv(sys.argv[1], sys.argv[1:])')
    fi
    if [ "$kind" = kamailio ]; then
        pid=$(start_kamailio "$d")
        track $pid
        # bound, and its workers forked
        wait_for 30 sh -c "(ss -Hlnu; ss -Hlnt) | grep -qF ' $PROXY_IP:5060 ' && [ \$(pgrep -P $pid | wc -l) -ge 4 ]" ||
            { echo "bench: kamailio did not start" >&2; cat "$d/kamailio.log" >&2; stop_pid $pid; return 1; }
        sleep 0.2
    else
        SIPCTI_LOG="warn,sipcti_proxy::runtime=info" $(pin 0) "${runner[@]}" "$BIN" run --config "$cfg" \
            >"$d/sipcti.stdout" 2>"$d/sipcti.log" &
        pid=$!
        track $pid
        wait_for 60 grep -qs "sipcti listening" "$d/sipcti.log" ||
            { echo "bench: sipcti did not start" >&2; cat "$d/sipcti.log" >&2; stop_pid $pid; [ -n "$dpid" ] && stop_pid $dpid; return 1; }
    fi
    # idle memory: the proxy up, no call yet
    sleep 1
    R_IDLE_RSS=$(rss_kb $pid)
    [ "$HELD_PASS" = 1 ] && R_IDLE_PSS=$(pss_tree $pid)

    if [ "$cap" = 1 ]; then
        local filter="net 127.$NET.0/24 and port 5060"
        [ "$TP" = udp ] && filter="$filter and udp[8:4] = 0x494e5649" # "INVI"
        # with Zammad: also the HTTP segments to and from the double (the
        # newCall's POST and its answer), to split the INVITE delay
        [ "$TP" = udp ] && [ "$zam" = 1 ] &&
            filter="($filter) or (host $PROXY_IP and tcp port $DOUBLE_PORT and tcp[tcpflags] & tcp-push != 0)"
        tcpdump -i lo -n -s 0 -B 65536 -U -w "$d/capture.pcap" "$filter" 2>"$d/tcpdump.err" &
        cpid=$!
        track $cpid
        wait_for 10 grep -qs "listening on" "$d/tcpdump.err" || echo "bench: tcpdump not listening?" >&2
    fi

    local gto=$((calls / (rate > 0 ? rate : 1) + 60))
    $(pin 1) sipp -sf "$FIX/uas_answer.xml" -t $SIPP_T -i "$TRUNK_IP" -p 5060 -m "$calls" \
        -timeout "${gto}s" -nostdin -key answer_user 201 -trace_err -error_file "$d/uas.err" \
        -trace_stat -stf "$d/uas.csv" -fd 1 -max_recv_loops 10000 -max_sched_loops 10000 "${SIPP_EXTRA[@]}" \
        >"$d/uas.out" 2>&1 &
    uas=$!
    track $uas
    wait_for 10 sh -c "(ss -Hlnu; ss -Hlnt) | grep -qF ' $TRUNK_IP:5060 '" || echo "bench: UAS not bound?" >&2

    if [ "$prof" = perf ]; then
        perf record -e cpu-clock -F 999 --call-graph dwarf,16384 -p "$(tree_of "$pid" | paste -sd,)" -o "$d/perf.data" \
            >"$d/perf.log" 2>&1 &
        ppid=$!
        track $ppid
        sleep 1
    elif [ "$prof" = syscalls ] || [ "$prof" = allocs ]; then
        local evs=(-e task-clock -e context-switches -e cpu-migrations)
        if [ "$prof" = syscalls ]; then
            evs+=(-e 'raw_syscalls:sys_enter' -e 'syscalls:sys_enter_*')
        else
            evs+=(-e 'probe_sipcti:*')
        fi
        perf stat -x ';' "${evs[@]}" -p "$(tree_of "$pid" | paste -sd,)" -o "$d/perf.stat" >"$d/perf.log" 2>&1 &
        ppid=$!
        track $ppid
        if [ "$prof" = allocs ]; then
            # call sites: every allocation with its stack (~8 KB a sample:
            # 400 calls make ~1.3 GB)
            perf record -e probe_sipcti:mi_malloc_aligned --call-graph dwarf,8192 -p "$pid" \
                -o "$d/perf.allocs.data" >"$d/perf.allocs.log" 2>&1 &
            APID=$!
            track $APID
        fi
        sleep 1
    fi

    local cpu0 udp0
    cpu0=$(cpu_tree $pid)
    local dcpu0=0
    [ -n "$dpid" ] && dcpu0=$(cpu_of $dpid)
    udp0=$(udp_errors)
    t0=$(date +%s.%N)
    $(pin 1) sipp -sf "$FIX/uac_hangup.xml" -t $SIPP_T -i "$PHONE_IP" -p 5060 "$PROXY_IP:5060" \
        -s 0301234567 -key user 201 -key display Alice -key answer_user 201 \
        -r "$rate" -m "$calls" -l $(((rate * 4 > 2000 ? rate * 4 : 2000) + rate * HOLD / 1000)) -d "$HOLD" \
        -recv_timeout 10000 -timeout "${gto}s" -timeout_error -nostdin \
        -trace_err -error_file "$d/uac.err" -trace_stat -stf "$d/uac.csv" -fd 1 \
        -trace_screen -screen_file "$d/uac.screen" \
        -max_recv_loops 10000 -max_sched_loops 10000 "${SIPP_EXTRA[@]}" >"$d/uac.out" 2>&1 &
    uac=$!
    track $uac
    # sample the CPU time of the load generators while they run (the UAC's
    # /proc entry is gone once it exits)
    local uac_cpu=0 uas_cpu=0 c drops="" dr
    while kill -0 $uac 2>/dev/null; do
        c=$(cpu_of $uac); [ "$c" -gt 0 ] && uac_cpu=$c
        c=$(cpu_of $uas); [ "$c" -gt 0 ] && uas_cpu=$c
        c=$(rss_kb $pid); [ "$c" -gt "$R_LOAD_RSS" ] && R_LOAD_RSS=$c
        echo "$EPOCHREALTIME $(cpu_tree $pid)" >>"$d/cpu.txt"
        if [ "$HELD_PASS" = 1 ]; then
            c=$(pss_tree $pid); [ "$c" -gt "$R_PEAK_PSS" ] && R_PEAK_PSS=$c
            echo "$(python3 -c "print('%.2f' % ($(date +%s.%N) - $t0))") $c" >>"$d/pss.txt"
        fi
        dr=$(sock_drops)
        # keep the last value seen for each socket
        drops=$(python3 -c "
a = dict(x.split('=') for x in '$drops'.split())
a.update({k: v for k, v in (x.split('=') for x in '$dr'.split()) if v != '?'})
print(' '.join('%s=%s' % kv for kv in a.items()))")
        sleep 0.25
    done
    wait $uac
    local uac_rc=$?
    t1=$(date +%s.%N)
    local cpu1 dcpu1=0 udp1
    cpu1=$(cpu_tree $pid)
    [ -n "$dpid" ] && dcpu1=$(cpu_of $dpid)
    udp1=$(udp_errors)
    # per-socket UDP drops (skmem d): last sample taken while the UAC ran,
    # then sipcti's once more now
    dr=$(sock_drops)
    R_SOCKDROP=$(python3 -c "
a = dict(x.split('=') for x in '$drops'.split())
b = dict(x.split('=') for x in '$dr'.split())
a.update({k: v for k, v in b.items() if v != '?'})
print(' '.join('%s=%s' % (k, a.get(k, '?')) for k in ('sipcti', 'uas', 'uac')))
")
    stop_pid $uas TERM 5 # it ends by itself after -m calls; this bounds it

    [ -n "$ppid" ] && [ "$prof" = perf ] && stop_pid $ppid INT 30
    # tcpdump hands packets over in blocks: give it time to write the last ones
    [ -n "$cpid" ] && sleep 2 && stop_pid $cpid INT 10

    local st
    st=$(sipp_stats "$d/uac.csv")
    eval "$(echo "$st" | tr ' ' '\n' | sed 's/^/S_/')"
    R_CREATED=$S_created R_SIP_OK=$S_ok R_FAILED=$S_failed R_RETRANS=$S_retrans
    # achieved rate: SIPp's CallRate(C), calls created per second over the run
    R_CPS=$(python3 -c "print('%.0f' % $S_callrate)")
    # sipcti CPU seconds used during the SIPp run (utime+stime, clock ticks)
    local hz
    hz=$(getconf CLK_TCK)
    R_CPU=$(python3 -c "print('%.2f' % (($cpu1 - $cpu0) / $hz))")
    R_CPUS="$kind=$R_CPU double=$(python3 -c "print('%.2f' % (($dcpu1 - $dcpu0) / $hz))") sipp_uac=$(python3 -c "print('%.2f' % ($uac_cpu / $hz))") sipp_uas=$(python3 -c "print('%.2f' % ($uas_cpu / $hz))") wall=$(python3 -c "print('%.2f' % ($t1 - $t0))")"
    R_UDPERR=$(python3 -c "a='$udp0'.split(); b='$udp1'.split(); print('in_err=%d rcvbuf=%d' % (int(b[0])-int(a[0]), int(b[1])-int(a[1])))")

    # CTI events
    local t_end=$(($(date +%s) + CTI_WAIT)) last=-1 same=0
    if [ "$zam" = 1 ]; then
        while :; do
            R_CTI=$(cti_count)
            R_CTI=${R_CTI:-0}
            [ "$R_CTI" -ge "$R_CTI_EXP" ] && break
            [ "$(date +%s)" -ge "$t_end" ] && break
            if [ "$R_CTI" = "$last" ]; then
                same=$((same + 1))
                [ $same -ge 5 ] && break
            else
                same=0
            fi
            last=$R_CTI
            sleep 2
        done
        R_CTI_S=$(python3 -c "print('%.1f' % ($(date +%s.%N) - $t1))")
    fi
    # perf stat counts until the CTI requests of the last calls are done too
    [ -n "$ppid" ] && [ "$prof" != perf ] && stop_pid $ppid INT 30
    [ "$prof" = allocs ] && stop_pid "$APID" INT 60
    R_HWM=$(hwm_tree $pid)
    R_PSS=$(pss_tree $pid)
    # /metrics (issue 9): the calls sipcti counts must be SIPp's successful
    # calls, the CTI events it counts delivered the double's (the snapshot
    # is at most 1 s old)
    R_METRICS=-
    if [ "$kind" = sipcti ]; then
        sleep 1.2
        R_METRICS=$(curl -s --max-time 5 "http://$PROXY_IP:$ADMIN_PORT/metrics" | python3 -c '
import sys
calls = delivered = 0.0
for line in sys.stdin:
    if line.startswith("sipcti_calls_total{"):
        calls += float(line.split()[-1])
    elif line.startswith("sipcti_cti_events_delivered_total "):
        delivered = float(line.split()[-1])
ok, cti, zam = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1"
bad = []
if int(calls) != ok:
    bad.append("calls_total=%d sipp_ok=%d" % (calls, ok))
if zam and int(delivered) != cti:
    bad.append("delivered=%d double=%d" % (delivered, cti))
print("agree(calls=%d,delivered=%d)" % (calls, delivered) if not bad else "DISAGREE(" + ",".join(bad) + ")")
' "$R_SIP_OK" "$R_CTI" "$zam")
    fi
    stop_pid $pid TERM 15
    if [ "$kind" = kamailio ]; then
        R_CTI=0 R_CTI_S=0 R_FAILOPEN=0
        # up to the shutdown (its TCP workers log EOF on their fd then)
        R_WARN=$(sed '/Thank you for flying/,$d' "$d/kamailio.log" | grep -cE "(WARNING|ERROR|CRITICAL|ALERT):")
    else
        if [ "$zam" = 0 ]; then
            R_CTI=$(grep -c '"event"' "$d/sipcti.stdout")
            R_CTI_S=0
        fi
        R_FAILOPEN=$(grep -c "not answered in time" "$d/sipcti.log")
        R_WARN=$(sed "s/\x1b\[[0-9;]*m//g" "$d/sipcti.log" | grep -c " WARN ")
    fi
    [ -n "$dpid" ] && stop_pid $dpid TERM 5
    if [ "$R_SIP_OK" -gt 0 ]; then
        R_USCALL=$(python3 -c "print('%.1f' % (($cpu1 - $cpu0) / $hz / $R_SIP_OK * 1e6))")
        R_STEADY=$(python3 "$ROOT/scripts/bench_steady.py" "$d/cpu.txt" "$d/uac.csv" "$t0" "$STEADY_FROM" "$cpu1" "$R_SIP_OK" "$hz")
    fi

    if [ "$cap" = 1 ] && [ -s "$d/capture.pcap" ]; then
        if [ "$TP" = udp ]; then
            local zp=()
            [ "$zam" = 1 ] && zp=(--zammad-port "$DOUBLE_PORT")
            R_LAT=$(python3 "$ROOT/scripts/bench_latency.py" "$PHONE_IP" "$PROXY_IP" "$TRUNK_IP" --csv "$d/latency.csv" --pcap "$d/capture.pcap" "${zp[@]}")
        else
            tshark -r "$d/capture.pcap" -n -Y 'sip.Method == "INVITE"' -T fields -E separator='|' \
                -e frame.time_epoch -e ip.src -e ip.dst -e sip.Method -e sip.Call-ID \
                >"$d/invites.txt" 2>"$d/tshark.err"
            R_LAT=$(python3 "$ROOT/scripts/bench_latency.py" "$PHONE_IP" "$PROXY_IP" "$TRUNK_IP" --csv "$d/latency.csv" <"$d/invites.txt")
        fi
        local drops
        drops=$(grep -o '[0-9]* packets dropped by kernel' "$d/tcpdump.err" | awk '{print $1}')
        R_LAT="$R_LAT pcap_drops=${drops:-?}"
    fi

    if [ "$uac_rc" = 0 ] && [ "$R_FAILED" = 0 ] && [ "$R_SIP_OK" = "$calls" ] &&
        [ "$R_CTI" -ge "$R_CTI_EXP" ] && [ "$R_FAILOPEN" = 0 ] &&
        { [ "$HELD_PASS" = 1 ] || [ $((R_CPS * 100)) -ge $((rate * 95)) ]; }; then
        R_OK=1
    fi
    if [ "$HELD_PASS" = 1 ] && [ -s "$d/pss.txt" ]; then
        # ramp: every call up (its dialog and its transactions); held: the
        # last sample before the first BYE, once the transactions are gone
        R_PER_DIALOG=$(python3 - "$d/pss.txt" "$R_IDLE_PSS" "$calls" "$rate" "$HOLD" <<'EOF3'
import sys
rows = [tuple(map(float, l.split())) for l in open(sys.argv[1]) if l.strip()]
idle, n, rate, hold = float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]) / 1000
ramp_end = n / rate
ramp = max((k for t, k in rows if t <= ramp_end + 1), default=0)
before_bye = [k for t, k in rows if ramp_end + 1 < t < hold - 0.5]
held = before_bye[-1] if before_bye else 0
out = "held=%d pss_idle_kb=%d pss_ramp_kb=%d per_call_with_tx_b=%d" % (n, idle, ramp, (ramp - idle) * 1024 / n)
if held:
    out += " pss_held_kb=%d per_held_dialog_b=%d" % (held, (held - idle) * 1024 / n)
print(out)
EOF3
)
    fi
    local hwm_mb pss_mb idle_mb load_mb
    hwm_mb=$(python3 -c "print('%.1f' % ($R_HWM / 1024))")
    pss_mb=$(python3 -c "print('%.1f' % ($R_PSS / 1024))")
    idle_mb=$(python3 -c "print('%.1f' % ($R_IDLE_RSS / 1024))")
    load_mb=$(python3 -c "print('%.1f' % ($R_LOAD_RSS / 1024))")
    printf '%s\t%s\tproxy=%s\tload=%s\trate=%s\tcalls=%s\tzammad=%s\tpass=%s\tsipp_rc=%s\tcreated=%s\tok=%s\tfailed=%s\tretrans=%s\tcps=%s\tcti=%s/%s\tcti_drain_s=%s\tfail_open=%s\twarn=%s\tidle_rss_mb=%s\tload_rss_mb=%s\trss_mb=%s\tpss_mb=%s\tudp_%s\tsock_drops:%s\tcpu_s:%s\tcpu_us_call=%s\tcpu_us_call_steady=%s\tmetrics=%s\t%s\n' \
        "$(date +%T)" "$name" "$kind" "$load" "$rate" "$calls" "$zam" "$R_OK" "$uac_rc" "$R_CREATED" "$R_SIP_OK" "$R_FAILED" \
        "$R_RETRANS" "$R_CPS" "$R_CTI" "$R_CTI_EXP" "$R_CTI_S" "$R_FAILOPEN" "$R_WARN" "$idle_mb" "$load_mb" "$hwm_mb" "$pss_mb" "$R_UDPERR" "$R_SOCKDROP" "$R_CPUS" "$R_USCALL" "$R_STEADY" "$R_METRICS" "$R_LAT$R_PER_DIALOG" |
        tee -a "$OUT/runs.tsv"
    return 0
}

# The double keeps the last 100,000 requests: at most 33,000 calls per run.
MAX_CALLS=33000
calls_for() { # rate -> calls
    local c
    if [ -n "$CALLS" ]; then c=$CALLS; else c=$(($1 * SECS > 100 ? $1 * SECS : 100)); fi
    if [ "$ZAMMAD" = 1 ]; then c=$((c > MAX_CALLS ? MAX_CALLS : c)); fi
    echo "$c"
}

# ------------------------------------------------------------------ plan
say "bench: $TP, net 127.$NET.0/24 (proxy $PROXY_IP, trunk $TRUNK_IP, phone $PHONE_IP), out $OUT"
say "bench: $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), $(sipp -v 2>&1 | grep -o 'SIPp v[^ ]*' | head -1)"
RUN=0
BEST=""
PROXIES=(sipcti)
[ "$PEER" = kamailio ] && PROXIES+=(kamailio)
sfx() { # proxy -> run name suffix
    [ "$1" = sipcti ] || echo "-$1"
}

if [ -n "$PROFILE" ]; then
    if [ "$PROFILE" = allocs ]; then
        perf probe -q -d 'probe_sipcti:*' 2>/dev/null
        n=0
        for f in mi_malloc mi_zalloc mi_calloc mi_realloc mi_malloc_aligned mi_zalloc_aligned \
            mi_realloc_aligned mi_free; do
            perf probe -q -x "$BIN" -a "$f" 2>/dev/null && n=$((n + 1))
        done
        [ "$n" -gt 0 ] || die "perf probe: no mimalloc entry point found in $BIN"
        trap 'perf probe -q -d "probe_sipcti:*" 2>/dev/null; cleanup' EXIT
    fi
    kinds=(sipcti)
    [ "$PEER" = kamailio ] && { [ "$PROFILE" = perf ] || [ "$PROFILE" = syscalls ]; } && kinds+=(kamailio)
    for kind in "${kinds[@]}"; do
        RUN=$((RUN + 1))
        run_one "$(printf '%02d' $RUN)-profile-$PROFILE-r$RATE$(sfx "$kind")" "$RATE" "$(calls_for "$RATE")" "$ZAMMAD" 0 "$PROFILE" "$kind"
        d="$OUT/$(printf '%02d' $RUN)-profile-$PROFILE-r$RATE$(sfx "$kind")"
        if [ "$PROFILE" = syscalls ] || [ "$PROFILE" = allocs ]; then
            python3 "$ROOT/scripts/bench_perfstat.py" "$d/perf.stat" "$R_SIP_OK" >"$d/perf.stat.txt"
            say "profile: $d/perf.stat.txt"
            head -40 "$d/perf.stat.txt"
            if [ "$PROFILE" = allocs ] && [ -s "$d/perf.allocs.data" ]; then
                python3 "$ROOT/scripts/bench_allocsites.py" "$d/perf.allocs.data" 60 >"$d/allocsites.txt" 2>/dev/null
                say "profile: $d/allocsites.txt (allocation call sites)"
            fi
            [ "$PROFILE" = allocs ] && perf probe -q -d 'probe_sipcti:*' 2>/dev/null
        fi
        if [ "$PROFILE" = perf ] && [ -s "$d/perf.data" ]; then
            perf report -i "$d/perf.data" --no-children --percent-limit 0.5 --stdio -g none \
                --sort symbol >"$d/perf.flat.txt" 2>/dev/null
            perf report -i "$d/perf.data" --children --percent-limit 2 --stdio -g none \
                --sort symbol >"$d/perf.children.txt" 2>/dev/null
            python3 "$ROOT/scripts/bench_perfsplit.py" "$d/perf.data" >"$d/perf.split.txt" 2>/dev/null
            say "profile: $d/perf.flat.txt (self), $d/perf.children.txt (inclusive), $d/perf.split.txt (by kind of work)"
        elif [ "$PROFILE" = callgrind ] && [ -s "$d/callgrind.out" ]; then
            callgrind_annotate "$d/callgrind.out" >"$d/callgrind.txt" 2>/dev/null
            callgrind_annotate --inclusive=yes "$d/callgrind.out" >"$d/callgrind.incl.txt" 2>/dev/null
            say "profile: $d/callgrind.txt (self), $d/callgrind.incl.txt (inclusive)"
        fi
    done
    exit 0
fi


# find_max PROXY: step up from --rate, then bisect; sets FM_GOOD, FM_BAD
find_max() {
    local kind=$1 good=0 bad=0 r=$RATE i=0
    # step up
    while [ "$r" -le "$MAX_RATE" ]; do
        RUN=$((RUN + 1))
        run_one "$(printf '%02d' $RUN)-step-r$r$(sfx "$kind")" "$r" "$(calls_for "$r")" $ZAMMAD 0 "" "$kind" || break
        if [ "$R_OK" = 1 ]; then good=$r; else bad=$r; break; fi
        r=$(python3 -c "print(int($r * $FACTOR))")
    done
    # bisect between the last good and the first bad rate
    while [ "$bad" -gt 0 ] && [ "$i" -lt "$REFINE" ] && [ $((bad - good)) -gt $((good / 20 + 1)) ]; do
        i=$((i + 1))
        r=$(((good + bad) / 2))
        RUN=$((RUN + 1))
        run_one "$(printf '%02d' $RUN)-bisect-r$r$(sfx "$kind")" "$r" "$(calls_for "$r")" $ZAMMAD 0 "" "$kind" || break
        if [ "$R_OK" = 1 ]; then good=$r; else bad=$r; fi
    done
    FM_GOOD=$good FM_BAD=$bad
    say "find-max $kind: highest passing rate $good cps (first failing rate: ${bad/#0/none up to $MAX_RATE})"
    printf '%s\t%s\t%s\n' "$kind" "$good" "$bad" >>"$OUT/findmax.tsv"
}

if [ "$FIND_MAX" = 1 ]; then
    for kind in "${PROXIES[@]}"; do
        find_max "$kind"
        [ "$kind" = sipcti ] && BEST=$FM_GOOD
    done
    MEASURE_RATE=$BEST
else
    MEASURE_RATE=$RATE
fi

# repeat the measured configuration (spread); with a peer, sipcti and the
# peer take turns, so a burst of load from elsewhere hits both alike
if [ "$FIND_MAX" = 0 ] || [ "$REPEAT" -gt 1 ]; then
    if [ "$MEASURE_RATE" -gt 0 ]; then
        for ((k = 1; k <= REPEAT; k++)); do
            for kind in "${PROXIES[@]}"; do
                RUN=$((RUN + 1))
                run_one "$(printf '%02d' $RUN)-measure-r$MEASURE_RATE-$k$(sfx "$kind")" "$MEASURE_RATE" \
                    "$(calls_for "$MEASURE_RATE")" $ZAMMAD 0 "" "$kind"
            done
        done
    fi
fi

# latency: with Zammad, then proxy only (then the peer)
if [ "$LATENCY" = 1 ] && [ "$MEASURE_RATE" -gt 0 ]; then
    lr=${LAT_RATE:-$MEASURE_RATE}
    lc=$(calls_for "$lr")
    [ "$lc" -gt "$MAX_CALLS" ] && lc=$MAX_CALLS
    RUN=$((RUN + 1))
    run_one "$(printf '%02d' $RUN)-latency-zammad-r$lr" "$lr" "$lc" 1 1 ""
    LZ="$R_LAT (pass=$R_OK)"
    RUN=$((RUN + 1))
    run_one "$(printf '%02d' $RUN)-latency-proxyonly-r$lr" "$lr" "$lc" 0 1 ""
    LP="$R_LAT (pass=$R_OK, events on stdout $R_CTI/$R_CTI_EXP)"
    say "latency INVITE phone->proxy to proxy->trunk at $lr cps, with Zammad (newCall round trip included): $LZ"
    say "latency INVITE phone->proxy to proxy->trunk at $lr cps, proxy only (no [zammad], stdout sink):   $LP"
    if [ "$PEER" = kamailio ]; then
        RUN=$((RUN + 1))
        run_one "$(printf '%02d' $RUN)-latency-kamailio-r$lr" "$lr" "$lc" 0 1 "" kamailio
        say "latency INVITE phone->proxy to proxy->trunk at $lr cps, kamailio:                                 $R_LAT (pass=$R_OK)"
    fi
fi

# memory per held dialog: every call held until all are up
if [ "$HELD" -gt 0 ]; then
    HELD_PASS=1
    saved_hold=$HOLD
    # the ramp, then 40 s more: the transactions (RFC 6026 Timer L/M, 32 s)
    # are gone before the first BYE
    HOLD=$((HELD * 1000 / RATE + 40000))
    for kind in "${PROXIES[@]}"; do
        RUN=$((RUN + 1))
        run_one "$(printf '%02d' $RUN)-held-$HELD$(sfx "$kind")" "$RATE" "$HELD" "$ZAMMAD" 0 "" "$kind"
        say "memory per held dialog, $kind ($HELD dialogs up at once, ${HOLD} ms each, $RATE cps): $R_PER_DIALOG (pass=$R_OK)"
    done
    HOLD=$saved_hold
    HELD_PASS=0
fi

# memory: idle (before the first call) and under load, over all runs
python3 - "$OUT/runs.tsv" <<'EOF2' | tee -a "$SUMMARY"
import sys
idle, load, peak = [], [], []
for line in open(sys.argv[1]):
    f = dict(x.split("=", 1) for x in line.rstrip("\n").split("\t") if "=" in x)
    for k, acc in (("idle_rss_mb", idle), ("load_rss_mb", load), ("rss_mb", peak)):
        try:
            acc.append(float(f[k]))
        except (KeyError, ValueError):
            pass
if idle:
    print("memory: idle RSS %.1f-%.1f MB; RSS under load up to %.1f MB (peak VmHWM %.1f MB)"
          % (min(idle), max(idle), max(load or [0]), max(peak or [0])))
EOF2
say "runs:"
cat "$OUT/runs.tsv" >>"$SUMMARY"
column -t -s $'\t' "$OUT/runs.tsv" | cut -c1-400

# side by side: sipcti and the peer, from runs.tsv and findmax.tsv
if [ "$PEER" != none ]; then
    python3 "$ROOT/scripts/bench_compare.py" "$OUT" "$MEASURE_RATE" "$ZAMMAD" "$PEER" | tee -a "$SUMMARY"
fi
echo "bench: results in $OUT"
