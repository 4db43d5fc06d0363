#!/usr/bin/env bash
# End to end on veth: floods from spread sources against a gateway
# namespace, at several allowlist sizes, in one run, in up to four parts
# (--parts, default all):
#   table      a SYN flood against four configurations in turn:
#                none      no filter (the gateway's TCP stack answers every SYN)
#                nftables  an interval set of the prefixes; non-members'
#                          port-25 SYNs dropped in prerouting at raw priority
#                smtpgate  smtpgated attached to the gateway's veth, action
#                          drop, the prefixes loaded with 'smtpgatectl ranges
#                          import'
#                floor     an XDP program that drops everything: what the
#                          sender and the veth cost anyway
#              For each: CPU per SYN two ways, the lowest of --rounds floods
#              (default 3) with nothing else running: whole-machine (busy
#              jiffies of /proc/stat over the flood) and the flood's own tasks
#              (the sender, which also runs most of the receive path, plus the
#              ksoftirqd threads: blind to other work on a busy machine), each
#              above the floor; and what the filter dropped. Then a further
#              flood of the same size: admitted TCP connects from EOP addresses
#              made during it (not for the floor, which drops them), and for
#              smtpgate and the floor, with kernel.bpf_stats_enabled=1, the
#              program's own run time per packet.
#   modes      the program's own time (bpf_stats) per packet of smtpgate and
#              of the floor, alternating, each lowest of --rounds, under the
#              floods of --modes: empty (SYNs from outside every prefix),
#              inside (SYNs from inside the prefixes), ack (TCP ACKs to port
#              25), udp (UDP to port 25). The floor runs on a second veth pair
#              of the same namespaces, so that smtpgate stays attached.
#   pairs      --pairs (default 5) pairs of SYN floods, smtpgate and the
#              floor alternating: whole-machine CPU per SYN, the median.
#   yardstick  programs that only read one random bit of a bitmap of 8 KiB
#              to 64 MiB (bpf/testprogs/read_*.bpf.c), alternating with the
#              floor, for what a lookup structure of that size costs under the
#              same flood; and the 2 MiB one again with its bitmap in the
#              kernel's direct map (2 MiB pages) instead of 4 KiB vmalloc pages.
# Last, every target that the run measured, as a line: the figure, the bound
# computed from the same run's floor F and yardstick P(S), met or missed.
#
# The flood generator sends from a ring of --ring frames (default 256) whose
# source it rewrites per frame, the sources read in order from a list of
# --pool; --ring 0 sends a pool of frames built beforehand instead (64 MiB at
# a million sources, which competes with the program for the caches).
#
# Usage: bench/flood.sh BUILD_DIR [--scales 10,1000,100000,1000000]
#          [--parts table,modes,pairs,yardstick] [--modes empty,inside,ack,udp]
#          [--pairs 5] [--syns 2000000] [--rounds 3] [--seed 1] [--pool 1048576]
#          [--ring 256] [--load-timeout 120] [--tsv FILE]
# Run as root. Everything it creates (two namespaces, two veth pairs, an nft
# table, pins, processes, a temporary directory) is removed on exit, also on
# failure and Ctrl-C. Exit 0 if every check passed, 1 otherwise, 2 on usage.
# Targets missed do not change the exit status.
set -uo pipefail

usage() {
  echo "usage: $0 BUILD_DIR [--scales N,N,...] [--parts table,modes,pairs,yardstick] [--modes empty,inside,ack,udp] [--pairs N] [--syns N] [--rounds N] [--seed N] [--pool N] [--ring N] [--load-timeout SECONDS] [--tsv FILE]" >&2
  exit 2
}

[ $# -ge 1 ] || usage
[ -d "$1" ] || { echo "flood.sh: BUILD_DIR '$1' is not a directory: give the cmake build directory, e.g. build" >&2; exit 2; }
BUILD=$(realpath "$1")
shift
SCALES=10,1000,100000,1000000
SYNS=2000000
ROUNDS=3
SEED=1
POOL=1048576
RING=256
PARTS=table,modes,pairs,yardstick
MODES=empty,inside,ack,udp
PAIRS=5
LOAD_TIMEOUT=120
TSV=
while [ $# -gt 0 ]; do
  case "$1" in --scales|--syns|--rounds|--seed|--pool|--ring|--parts|--modes|--pairs|--load-timeout|--tsv)
    [ $# -ge 2 ] || { echo "flood.sh: $1 needs a value" >&2; usage; } ;;
  esac
  case "$1" in
    --scales) SCALES=$2; shift 2 ;;
    --syns) SYNS=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --seed) SEED=$2; shift 2 ;;
    --pool) POOL=$2; shift 2 ;;
    --ring) RING=$2; shift 2 ;;
    --parts) PARTS=$2; shift 2 ;;
    --modes) MODES=$2; shift 2 ;;
    --pairs) PAIRS=$2; shift 2 ;;
    --load-timeout) LOAD_TIMEOUT=$2; shift 2 ;;
    --tsv) TSV=$2; shift 2 ;;
    -h|--help) usage ;;
    *) echo "flood.sh: unknown option '$1'" >&2; usage ;;
  esac
done
[[ "$SCALES" =~ ^[1-9][0-9]{0,6}(,[1-9][0-9]{0,6})*$ ]] || { echo "flood.sh: --scales '$SCALES': expected prefix counts from 1 to 9999999, like 10,1000" >&2; exit 2; }
[[ "$SYNS" =~ ^[0-9]+$ && "$SYNS" -gt 0 ]] || { echo "flood.sh: --syns '$SYNS': expected a positive number" >&2; exit 2; }
[[ "$ROUNDS" =~ ^[1-9][0-9]?$ ]] || { echo "flood.sh: --rounds '$ROUNDS': expected 1 to 99 floods per configuration" >&2; exit 2; }
[[ "$SEED" =~ ^[0-9]+$ ]] || { echo "flood.sh: --seed '$SEED': expected a number" >&2; exit 2; }
[[ "$POOL" =~ ^[0-9]+$ && "$POOL" -gt 0 ]] || { echo "flood.sh: --pool '$POOL': expected a positive number" >&2; exit 2; }
if ! [[ "$RING" =~ ^[0-9]{1,5}$ ]] || { [ "$RING" != 0 ] && { [ "$RING" -lt 64 ] || [ "$RING" -gt 65536 ]; }; }; then
  echo "flood.sh: --ring '$RING': expected 0 (a frame per source) or 64 to 65536 frames" >&2; exit 2
fi
[[ "$PARTS" =~ ^(table|modes|pairs|yardstick)(,(table|modes|pairs|yardstick))*$ ]] || { echo "flood.sh: --parts '$PARTS': expected a comma-separated list of table, modes, pairs, yardstick" >&2; exit 2; }
[[ "$MODES" =~ ^(empty|inside|ack|udp)(,(empty|inside|ack|udp))*$ ]] || { echo "flood.sh: --modes '$MODES': expected a comma-separated list of empty, inside, ack, udp" >&2; exit 2; }
[[ "$PAIRS" =~ ^[1-9][0-9]?$ ]] || { echo "flood.sh: --pairs '$PAIRS': expected 1 to 99 pairs of floods" >&2; exit 2; }
[[ "$LOAD_TIMEOUT" =~ ^[0-9]+$ ]] || { echo "flood.sh: --load-timeout '$LOAD_TIMEOUT': expected seconds" >&2; exit 2; }

GEN=$BUILD/bench/flood_gen
SMTPGATED=$BUILD/loader/smtpgated
CTL=$BUILD/control/smtpgatectl
XDP_DROP=$BUILD/bpf/testprogs/xdp_drop.bpf.o
# The yardstick's probes: every read_<KiB>.bpf.o built, by size.
PROBES=()
while read -r kib; do PROBES+=("$kib"); done < <(for o in "$BUILD"/bpf/testprogs/read_[0-9]*.bpf.o; do
  [ -e "$o" ] && { o=${o##*/read_}; echo "${o%.bpf.o}"; }; done | sort -n)
PROBES+=(direct_2048)
has_part() { [[ ",$PARTS," == *",$1,"* ]]; }
for f in "$GEN" "$SMTPGATED" "$CTL" "$XDP_DROP" "$BUILD"/bpf/testprogs/read_{8,256,2048,direct_2048}.bpf.o; do
  [ -e "$f" ] || { echo "flood.sh: $f not found: build first (cmake --build $BUILD)" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "flood.sh: run as root (namespaces, XDP, nftables)" >&2; exit 1; }
for t in ip nft nsenter jq bpftool sysctl timeout; do
  command -v "$t" >/dev/null || { echo "flood.sh: $t not found: run scripts/setup-deps.sh" >&2; exit 1; }
done

# Names carry our pid, so that a run can tell its leftovers from a live run's.
ID=sgf$$
GW=${ID}gw
TX=${ID}tx
PIN=/sys/fs/bpf/$ID
WORK=$(mktemp -d /tmp/sgflood.XXXXXX)
GW_MAC=02:00:00:00:00:01
TX_MAC=02:00:00:00:00:02
GW1_MAC=02:00:00:00:00:03  # the floor's pair (modes, pairs, yardstick)
TX1_MAC=02:00:00:00:00:04
GW_V4=192.0.2.1
EOP_SOURCES=(40.92.0.10 52.100.0.10)  # inside EOP's published port-25 ranges
NFT_TABLE=smtpgate_flood
STATS_SYSCTL=kernel.bpf_stats_enabled
STATS_SAVED=
PIDS=()
FAILURES=()

in_gw() { nsenter --net=/var/run/netns/"$GW" "$@"; }
in_tx() { nsenter --net=/var/run/netns/"$TX" "$@"; }
ctl() { in_gw "$CTL" --pin-dir "$PIN" --state-dir "$WORK/state" "$@"; }
# bg_in NS OUT CMD...: starts CMD in NS in the background, output to OUT;
# BG_PID is its pid (nsenter execs CMD, so it is CMD's pid).
bg_in() {
  local ns=$1 out=$2
  shift 2
  nsenter --net=/var/run/netns/"$ns" "$@" >"$out" 2>&1 &
  BG_PID=$!
  PIDS+=("$BG_PID")
}
fail() { FAILURES+=("$*"); echo "FAILED: $*" >&2; }

forget_pid() {  # a process we started has ended: no longer ours to stop
  local keep=() p
  for p in "${PIDS[@]}"; do [ "$p" != "$1" ] && keep+=("$p"); done
  PIDS=("${keep[@]}")
}

stop_pid() {  # SIGTERM one process we started, and wait for it
  kill -TERM "$1" 2>/dev/null && wait "$1" 2>/dev/null
  forget_pid "$1"
}

cleanup() {
  trap - EXIT INT TERM
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
  [ -n "$STATS_SAVED" ] && sysctl -qw "$STATS_SYSCTL=$STATS_SAVED"
  if [ -e /var/run/netns/"$GW" ]; then
    # Through smtpgatectl, so that libxdp's own pins go too.
    ctl detach gw0 >/dev/null 2>&1
    in_gw nft delete table ip "$NFT_TABLE" 2>/dev/null
  fi
  ip netns del "$GW" 2>/dev/null
  ip netns del "$TX" 2>/dev/null
  rm -rf "$PIN" "$WORK"
  rmdir /sys/fs/bpf/xdp 2>/dev/null  # libxdp's shared directory, if nothing else uses it
  bpffs_release
}
. "$(dirname "$0")/../scripts/bpffs.sh"
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Leftovers of runs that died without cleaning up (their pid is gone).
for p in /var/run/netns/sgf*gw /var/run/netns/sgf*tx /sys/fs/bpf/sgf*; do
  [ -e "$p" ] || continue
  n=$(basename "$p"); pid=${n#sgf}; pid=${pid%%[!0-9]*}
  [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null || continue
  case "$p" in /var/run/netns/*) ip netns del "$n" ;; *) rm -rf "$p" ;; esac
done

# --- the two hosts ------------------------------------------------------------
setup_hosts() {
  ip netns add "$GW" && ip netns add "$TX" || return 1
  ip -n "$GW" link add gw0 address $GW_MAC type veth peer name tx0 address $TX_MAC netns "$TX" || return 1
  ip -n "$GW" link set lo up && ip -n "$TX" link set lo up &&
  ip -n "$GW" addr add $GW_V4/24 dev gw0 &&
  ip -n "$TX" addr add 192.0.2.2/24 dev tx0 || return 1
  for a in "${EOP_SOURCES[@]}"; do ip -n "$TX" addr add "$a/32" dev tx0 || return 1; done
  ip -n "$GW" link set gw0 up && ip -n "$TX" link set tx0 up &&
  ip -n "$GW" route add default via 192.0.2.2 &&
  ip -n "$GW" neigh replace 192.0.2.2 lladdr $TX_MAC dev gw0 &&
  ip -n "$TX" neigh replace $GW_V4 lladdr $GW_MAC dev tx0 || return 1
  # The second pair: the floor, attached for the whole run.
  ip -n "$GW" link add gw1 address $GW1_MAC type veth peer name tx1 address $TX1_MAC netns "$TX" &&
  ip -n "$GW" link set gw1 up && ip -n "$TX" link set tx1 up &&
  ip -n "$GW" link set dev gw1 xdpdrv obj "$XDP_DROP" sec xdp
}
bpffs_acquire || { echo "flood.sh: could not mount bpffs at /sys/fs/bpf" >&2; exit 1; }
setup_hosts || { echo "flood.sh: could not create the namespaces and veth pair" >&2; exit 1; }

bg_in "$GW" "$WORK/listen.out" "$GEN" listen --port 25
LISTENER=$BG_PID
for _ in $(seq 50); do grep -q listening "$WORK/listen.out" 2>/dev/null && break; sleep 0.1; done
grep -q listening "$WORK/listen.out" || { echo "flood.sh: listener did not start: $(cat "$WORK/listen.out")" >&2; exit 1; }

# --- measuring ---------------------------------------------------------------
busy_total() {  # busy and all jiffies of the machine so far
  local _cpu user nice system idle iowait irq softirq steal _rest
  read -r _cpu user nice system idle iowait irq softirq steal _rest </proc/stat
  echo "$((user + nice + system + irq + softirq)) $((user + nice + system + idle + iowait + irq + softirq + steal))"
}

# Share of the machine busy with other work in the second before a flood: a
# reading to judge the noise by, not subtracted from anything.
background_pct() {
  local b0 t0 b1 t1
  read -r b0 t0 < <(busy_total)
  sleep 1
  read -r b1 t1 < <(busy_total)
  echo $(( (b1 - b0) * 100 / (t1 - t0 > 0 ? t1 - t0 : 1) ))
}

attached_prog_id() { ip -n "$GW" -j -d link show "$1" | jq -r '.[0].xdp.prog.id // empty'; }

prog_run() {  # "run_time_ns run_cnt" of a program
  bpftool prog show id "$1" -j | jq -r '"\(.run_time_ns // 0) \(.run_cnt // 0)"'
}

kv() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p" <<<"$2"; }

# What flood sends: out of which sender interface (tx0 to smtpgate's gw0,
# tx1 to the floor's gw1), what (syn, ack, udp), from which sources (mix,
# empty, inside).
TX_IF=tx0 KIND=syn SOURCES=mix
# towards IF [KIND SOURCES]: the following floods go out of IF.
towards() { TX_IF=$1 KIND=${2:-syn} SOURCES=${3:-mix}; }

# flood NAME [CONNECTS]: one flood of $SYNS frames, with the admitted connect
# loop running if CONNECTS is "connects"; sets FLOOD_OUT and CONN_OUT.
flood() {
  local name=$1 conn_pid=
  if [ "${2:-}" = connects ]; then
    local srcs=()
    for a in "${EOP_SOURCES[@]}"; do srcs+=(--src "$a"); done
    bg_in "$TX" "$WORK/connect.out" "$GEN" connect "${srcs[@]}" --dst $GW_V4 --port 25
    conn_pid=$BG_PID
    sleep 0.2
  fi
  # In the background and waited for, so that Ctrl-C stops the run at once.
  local smac=$TX_MAC dmac=$GW_MAC
  [ "$TX_IF" = tx1 ] && smac=$TX1_MAC dmac=$GW1_MAC
  bg_in "$TX" "$WORK/send.out" "$GEN" send --interface "$TX_IF" --src-mac $smac --dst-mac $dmac --dst $GW_V4 \
        --port 25 --count "$SYNS" --seed "$SEED" --pool "$POOL" --ring "$RING" --kind "$KIND" --sources "$SOURCES" \
        --ranges "$RANGES"
  local send_pid=$BG_PID rc
  wait "$send_pid"
  rc=$?
  forget_pid "$send_pid"
  FLOOD_OUT=$(cat "$WORK/send.out")
  CONN_OUT=
  if [ -n "$conn_pid" ]; then
    stop_pid "$conn_pid"
    CONN_OUT=$(cat "$WORK/connect.out")
  fi
  [ $rc = 0 ] || { fail "$name at $SCALE: the flood generator failed: $FLOOD_OUT"; return 1; }
}

# stats_flood NAME SYNS [CONNECTS]: a flood of SYNS SYNs with the kernel
# timing the attached XDP program; sets PROG_NS (ns per run) and PROG_CNT,
# and CONN_OUT as flood does. Never the flood whose CPU is counted: the
# timing itself costs two clock reads per packet.
stats_flood() {
  local name=$1 n=$2 conn=${3:-} id rc=0 gw=${TX_IF/tx/gw}
  id=$(attached_prog_id "$gw")
  [ -n "$id" ] || { fail "$name at $SCALE: no XDP program attached to $gw"; return 1; }
  STATS_SAVED=$(sysctl -n $STATS_SYSCTL)
  sysctl -qw $STATS_SYSCTL=1
  local r0 c0 r1 c1
  read -r r0 c0 < <(prog_run "$id")
  local saved_syns=$SYNS
  SYNS=$n
  flood "$name (timed)" $conn || rc=1
  SYNS=$saved_syns
  read -r r1 c1 < <(prog_run "$id")
  sysctl -qw $STATS_SYSCTL="$STATS_SAVED"
  STATS_SAVED=
  PROG_CNT=$((c1 - c0))
  PROG_NS=$(awk -v t=$((r1 - r0)) -v c=$PROG_CNT 'BEGIN { printf "%.1f", c ? t / c : 0 }')
  return $rc
}

# cpu_per_syn: N1 and T1, the whole machine's and the flood's tasks' CPU per
# SYN (ns) of the flood whose output is FLOOD_OUT; also SENT and SECS.
cpu_per_syn() {
  local jif hz
  SENT=$(kv sent "$FLOOD_OUT"); SECS=$(kv seconds "$FLOOD_OUT")
  jif=$(kv busy_jiffies "$FLOOD_OUT"); hz=$(kv clk_tck "$FLOOD_OUT")
  N1=$(awk -v j="$jif" -v hz="$hz" -v n="$SENT" 'BEGIN { printf "%.0f", j * 1e9 / hz / n }')
  T1=$(awk -v s="$(kv sender_cpu_s "$FLOOD_OUT")" -v k="$(kv ksoftirqd_jiffies "$FLOOD_OUT")" -v hz="$hz" \
        -v n="$SENT" 'BEGIN { printf "%.0f", (s * 1e9 + k * 1e9 / hz) / n }')
}

# The floor is what every other figure is taken above, so a noisy phase of
# the machine during its floods would move every ratio of the scale (a
# shared machine goes through such phases for minutes). So besides its own
# turn, last, the floor is flooded ($ROUNDS counted floods) before each
# other configuration, and the lowest figure of all its floods is kept:
# FLOOR_NS and FLOOR_TNS, FLOOR_FLOODS of them so far at this scale.
floor_between() {
  setup_floor || { fail "floor at $SCALE prefixes: could not attach between the configurations"; return 1; }
  for ((r = 1; r <= ROUNDS; r++)); do
    flood "floor (between)" || break
    cpu_per_syn
    { [ -z "$FLOOR_NS" ] || [ "$N1" -lt "$FLOOR_NS" ]; } && FLOOR_NS=$N1
    { [ -z "$FLOOR_TNS" ] || [ "$T1" -lt "$FLOOR_TNS" ]; } && FLOOR_TNS=$T1
    FLOOR_FLOODS=$((FLOOR_FLOODS + 1))
  done
  teardown_floor
}

# --- the configurations ----------------------------------------------------
# load_failed RC WHAT OUTPUT: true (and LOAD_ERR set) if a load did not succeed.
load_failed() {
  case $1 in
    0) return 1 ;;
    124) LOAD_ERR="$2 did not finish within ${LOAD_TIMEOUT}s (--load-timeout)" ;;
    *) LOAD_ERR="$2 failed (exit $1): $(head -c 300 <<<"$3" | tr '\n' ' ')" ;;
  esac
}

setup_none() { :; }
teardown_none() { :; }
dropped_none() { echo -; }

setup_nftables() {
  local nft=$WORK/set.nft t0 t1
  {
    echo "table ip $NFT_TABLE {"
    echo "  set admitted { type ipv4_addr; flags interval; elements = {"
    grep -v '^#' "$RANGES" | sed 's/$/,/'
    echo "  } }"
    echo "  chain prerouting { type filter hook prerouting priority raw; policy accept;"
    echo "    tcp dport 25 tcp flags & (fin|syn|rst|ack) == syn ip saddr != @admitted counter drop"
    echo "  }"
    echo "}"
  } >"$nft"
  t0=$(date +%s.%N)
  out=$(timeout "$LOAD_TIMEOUT" nsenter --net=/var/run/netns/"$GW" nft -f "$nft" 2>&1)
  load_failed $? "nft -f of $(grep -vc '^#' "$RANGES") elements" "$out" && return 1
  t1=$(date +%s.%N)
  LOAD_S=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
}
teardown_nftables() { in_gw nft delete table ip "$NFT_TABLE" 2>/dev/null; }
dropped_nftables() {
  in_gw nft -j list chain ip "$NFT_TABLE" prerouting | jq '[.. | .counter? | select(. != null) | .packets] | add'
}

setup_smtpgate() {
  rm -rf "$WORK/state" "$PIN"
  mkdir -p "$WORK/state"
  local want t0 t1 out
  want=$(grep -vc '^#' "$RANGES")
  # Room for every range (rule ids 1..N) and a stride table that holds them
  # all, so that no block is left to the trie, for each of the two slots: an
  # entry per /24 block a prefix of /24 or shorter covers, and per /24 block
  # cut by longer prefixes a node, taken at its largest (a bitmap node: 8
  # words and a leaf per run, two runs and one more per prefix, with room to
  # spare). No metrics port.
  local need
  need=$(grep -v '^#' "$RANGES" | awk -F'[./]' '$5 <= 24 { e += 2 ^ (24 - $5) }
                                              $5 > 24 { cut[$1 "." $2 "." $3]++ }
                                              END { for (b in cut) e += 1 + 12 + 2 * cut[b]; print int(e / 256) + 1 }')
  local chunks=$(( 2 * need + 64 ))
  printf 'max_rules = %d\ntable_chunks = %d\n[metrics]\nlisten = ""\n' $((want + 16)) "$chunks" >"$WORK/smtpgate.toml"
  bg_in "$GW" "$WORK/smtpgated.log" "$SMTPGATED" -c "$WORK/smtpgate.toml" --interface gw0 --pin-dir "$PIN" \
        --state-dir "$WORK/state" --action drop --no-feed --allow-empty
  DAEMON=$BG_PID
  for _ in $(seq 100); do
    [ "$(ctl -j status 2>/dev/null | jq '.interfaces | length')" = 1 ] && break
    kill -0 $DAEMON 2>/dev/null || break
    sleep 0.2
  done
  if [ "$(ctl -j status 2>/dev/null | jq '.interfaces | length')" != 1 ]; then
    LOAD_ERR="smtpgated did not attach: $(tail -n 3 "$WORK/smtpgated.log" | tr '\n' ' ')"
    return 1
  fi
  # Generic (skb) mode would be a different, slower path than the floor's.
  local mode
  mode=$(ctl -j status | jq -r '.interfaces[0].mode')
  [ "$mode" = native ] || { LOAD_ERR="smtpgated attached in $mode mode, not native"; return 1; }
  t0=$(date +%s.%N)
  out=$(timeout "$LOAD_TIMEOUT" nsenter --net=/var/run/netns/"$GW" \
        "$CTL" --pin-dir "$PIN" --state-dir "$WORK/state" ranges import "$RANGES" 2>&1)
  load_failed $? "smtpgatectl ranges import of $want ranges" "$out" && return 1
  t1=$(date +%s.%N)
  LOAD_S=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
  local total
  total=$(ctl -j status | jq '.ranges.total')
  [ "$total" = "$want" ] || { LOAD_ERR="smtpgate holds $total ranges after importing $want"; return 1; }
}
teardown_smtpgate() {
  [ -n "${DAEMON:-}" ] && stop_pid "$DAEMON"
  DAEMON=
  ctl detach gw0 >/dev/null 2>&1  # stopping leaves the gate attached
  rm -rf "$PIN" "$WORK/state"
}
# Not 'smtpgatectl stats', which also reports every rule: slow at 100,000.
dropped_smtpgate() { kv drop "$("$GEN" verdicts --pin-dir "$PIN")"; }

setup_floor() { ip -n "$GW" link set dev gw0 xdpdrv obj "$XDP_DROP" sec xdp || { LOAD_ERR="xdp_drop did not attach"; return 1; }; LOAD_S=0.0; }
teardown_floor() { ip -n "$GW" link set dev gw0 xdpdrv off 2>/dev/null; }
dropped_floor() { echo -; }


# --- modes and pairs: smtpgate on gw0, the floor on gw1 -------------------------
# mode_flood MODE: what the mode's floods send (KIND and SOURCES).
mode_flood() {
  case $1 in
    empty) KIND=syn SOURCES=empty ;;
    inside) KIND=syn SOURCES=inside ;;
    ack) KIND=ack SOURCES=mix ;;
    udp) KIND=udp SOURCES=mix ;;
  esac
}

# check_drops WHAT BEFORE: smtpgate's drops since BEFORE must be the flood's
# SYNs from outside the prefixes (at least 99% of them, never more), and none
# of an ACK or UDP flood.
check_drops() {
  local what=$1 d0=$2 d expect
  d=$(dropped_smtpgate)
  [[ "$d" =~ ^[0-9]+$ && "$d0" =~ ^[0-9]+$ ]] && d=$((d - d0))
  DROPPED=$d
  expect=$(kv outside "$FLOOD_OUT")
  [ "$(kv kind "$FLOOD_OUT")" = syn ] || expect=0
  if ! [[ "$d" =~ ^[0-9]+$ ]] || [ "$d" -gt "$expect" ] || [ $((d * 100)) -lt $((expect * 99)) ]; then
    fail "$what at $SCALE prefixes: smtpgate dropped $d, expected $expect ($(kv kind "$FLOOD_OUT") from $(kv sources "$FLOOD_OUT"), $(kv outside "$FLOOD_OUT") from outside the prefixes)"
  fi
}

# lower A B: the lower of two figures, either possibly empty.
lower() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || (b != "" && b + 0 < a + 0)) print b; else print a }'; }

# run_modes: for each mode, --rounds times, the floor's flood and then
# smtpgate's, the programs timed by the kernel; the lowest of each. Sets
# MODE_F[SCALE:MODE] and MODE_S[SCALE:MODE] (ns per packet).
run_modes() {
  local round mode d0 f s cnt inside outside dropped sent kind sources mode_list
  IFS=, read -ra mode_list <<<"$MODES"
  for mode in "${mode_list[@]}"; do
    f= s= cnt= dropped=
    mode_flood "$mode"
    kind=$KIND sources=$SOURCES
    for ((round = 1; round <= ROUNDS; round++)); do
      towards tx1 "$kind" "$sources"
      PROG_NS=
      stats_flood "floor/$mode" "$SYNS" && f=$(lower "$f" "$PROG_NS")
      towards tx0 "$kind" "$sources"
      d0=$(dropped_smtpgate)
      PROG_NS=
      if stats_flood "smtpgate/$mode" "$SYNS"; then
        check_drops "smtpgate/$mode, flood $round" "$d0"
        s=$(lower "$s" "$PROG_NS") cnt=$PROG_CNT dropped=$DROPPED
        sent=$(kv sent "$FLOOD_OUT") inside=$(kv inside "$FLOOD_OUT") outside=$(kv outside "$FLOOD_OUT")
      fi
    done
    towards tx0
    MODE_F[$SCALE:$mode]=$f MODE_S[$SCALE:$mode]=$s
    printf '%-26s smtpgate %7s ns per packet, floor %7s ns (bpf_stats, lowest of %d each, alternating)\n' \
      "$mode ($kind from $sources):" "${s:--}" "${f:--}" "$ROUNDS"
    [ -n "$TSV" ] && printf '%s\tsmtpgate/%s\t%s\t%s\t%s\t%s\t\t\t\t\t\t%s\t\t\t%s\t%s\t\t\t\t\t\n' "$SCALE" "$mode" \
      "$([ -n "$s" ] && echo ok || echo flood-failed)" "${sent:-}" "${inside:-}" "${outside:-}" "${dropped:-}" "$s" \
      "${cnt:-}" >>"$TSV"
    [ -n "$TSV" ] && printf '%s\tfloor/%s\t%s\t\t\t\t\t\t\t\t\t\t\t\t%s\t\t\t\t\t\t\n' "$SCALE" "$mode" \
      "$([ -n "$f" ] && echo ok || echo flood-failed)" "$f" >>"$TSV"
  done
}

# median N...: the median of the figures.
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR) print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }

# run_pairs: --pairs pairs of SYN floods from spread sources, smtpgate and the
# floor alternating (which goes first alternates too), whole-machine CPU per
# SYN; the median of each and of the differences. Sets PAIR_DIFF[SCALE] and
# PAIR_N[SCALE].
run_pairs() {
  local i first d0 fl=() sg=() diff=() f s
  for ((i = 1; i <= PAIRS; i++)); do
    f= s=
    for first in floor smtpgate; do
      [ $((i % 2)) = 0 ] && first=$([ "$first" = floor ] && echo smtpgate || echo floor)
      if [ "$first" = floor ]; then
        towards tx1
        flood "floor (pair $i)" && cpu_per_syn && f=$N1
      else
        towards tx0
        d0=$(dropped_smtpgate)
        flood "smtpgate (pair $i)" && cpu_per_syn && s=$N1 && check_drops "smtpgate (pair $i)" "$d0"
      fi
    done
    { [ -n "$f" ] && [ -n "$s" ]; } || continue
    fl+=("$f") sg+=("$s") diff+=($((s - f)))
  done
  towards tx0
  [ ${#diff[@]} -gt 0 ] || return 0
  PAIR_DIFF[$SCALE]=$(median "${diff[@]}") PAIR_N[$SCALE]=${#diff[@]}
  echo "pairs, whole machine per SYN: smtpgate ${sg[*]}; floor ${fl[*]} ns; median of the differences ${PAIR_DIFF[$SCALE]} ns (${#diff[@]} pairs)"
  [ -n "$TSV" ] && printf '%s\tpairs\tok\t%s\t\t\t\t%s\t%s\t\t\t\t\t\t\t\t\t\t\t\t\n' "$SCALE" "$SYNS" \
    "$(median "${sg[@]}")" "${PAIR_DIFF[$SCALE]}" >>"$TSV"
}

# smtpgate_parts: the parts that run while smtpgate is attached to gw0.
smtpgate_parts() {
  if has_part modes; then
    echo
    echo "== $SCALE prefixes: smtpgate and the floor program per packet, by flood =="
    run_modes
  fi
  if has_part pairs; then
    has_part modes || echo
    run_pairs
  fi
}

# --- the run -------------------------------------------------------------------
CONFIGS=(none nftables smtpgate floor)
declare -A LABEL=([none]="no filter" [nftables]="nftables set" [smtpgate]="smtpgate" [floor]="floor (XDP drop)")
[ -n "$TSV" ] && printf 'scale\tconfig\tstatus\tsyns\tinside\toutside\tseconds\tcpu_ns_per_syn\tabove_floor_ns\ttasks_ns_per_syn\ttasks_above_floor_ns\tdropped\tconnects_attempted\tconnects_succeeded\tprog_ns_per_pkt\tprog_run_cnt\tbackground_pct\tload_s\ttarget\tvalue\tbound\n' >"$TSV"
declare -A MODE_F=() MODE_S=() PAIR_DIFF=() PAIR_N=() RATIO=() PROBE_NS=()

echo "smtpgate end-to-end floods on veth: $SYNS frames per flood from $POOL sources in turn ($([ "$RING" = 0 ] && echo "a frame built per source" || echo "a ring of $RING frames, the source rewritten per frame")), seed $SEED, parts $PARTS, $(nproc) CPUs, kernel $(uname -r)"
IFS=, read -ra SCALE_LIST <<<"$SCALES"
for SCALE in "${SCALE_LIST[@]}"; do
  RANGES=$WORK/ranges-$SCALE.txt
  if ! "$GEN" prefixes --count "$SCALE" --seed "$SEED" --out "$RANGES" >/dev/null; then
    fail "could not generate $SCALE prefixes"
    continue
  fi
  if ! has_part table; then
    if has_part modes || has_part pairs; then
      LOAD_ERR=
      if setup_smtpgate; then smtpgate_parts; else fail "smtpgate at $SCALE prefixes: could not load: $LOAD_ERR"; fi
      teardown_smtpgate
    fi
    continue
  fi
  declare -A R=()
  FLOOR_NS= FLOOR_TNS= FLOOR_FLOODS=0
  for c in "${CONFIGS[@]}"; do
    [ "$c" != floor ] && floor_between
    LOAD_ERR= LOAD_S=- PROG_NS=- PROG_CNT=- FLOOD_OUT= CONN_OUT=
    if ! "setup_$c"; then
      fail "$c at $SCALE prefixes: could not load: $LOAD_ERR"
      R[$c]="load-failed"
      "teardown_$c"
      continue
    fi
    bg=$(background_pct)
    # The floods whose CPU is counted run alone, $ROUNDS of them; the lowest
    # figure of each measure is kept (the noise of a shared machine only
    # adds). Each must have dropped exactly its SYNs from outside the
    # prefixes. The admitted connect loop runs in a further flood of the
    # same size: its connects, the listener and their wake-ups put work on
    # the other CPU that the floor, which drops the connects, would never
    # carry, a bias of tens of ns per SYN in the whole-machine figure of
    # every configuration but the floor's.
    ns= tns= secs_best= dropped= ran=0
    for ((round = 1; round <= ROUNDS; round++)); do
      dropped0=$("dropped_$c")
      flood "$c" || break
      d=$("dropped_$c")
      [[ "$d" =~ ^[0-9]+$ && "$dropped0" =~ ^[0-9]+$ ]] && d=$((d - dropped0))
      outside=$(kv outside "$FLOOD_OUT"); inside=$(kv inside "$FLOOD_OUT")
      cpu_per_syn
      sent=$SENT
      { [ -z "$ns" ] || [ "$N1" -lt "$ns" ]; } && ns=$N1 secs_best=$SECS
      { [ -z "$tns" ] || [ "$T1" -lt "$tns" ]; } && tns=$T1
      # The filters must have dropped the flood from outside the prefixes, and
      # nothing else: a few lost in the kernel before the filter are tolerated.
      if [ "$c" = nftables ] || [ "$c" = smtpgate ]; then
        if ! [[ "$d" =~ ^[0-9]+$ ]] || [ "$d" -gt "$outside" ] || [ $((d * 100)) -lt $((outside * 99)) ]; then
          fail "$c at $SCALE prefixes, flood $round: dropped $d SYNs, expected the $outside from outside the prefixes"
        fi
      fi
      dropped=$d
      ran=$round
    done
    if [ "$c" = floor ] && [ -n "$ns" ]; then
      # The lowest of all the floor's floods at this scale, its own and
      # those between the other configurations.
      FLOOR_FLOODS=$((FLOOR_FLOODS + ran))
      [ -n "$FLOOR_NS" ] && [ "$FLOOR_NS" -lt "$ns" ] && ns=$FLOOR_NS
      [ -n "$FLOOR_TNS" ] && [ "$FLOOR_TNS" -lt "$tns" ] && tns=$FLOOR_TNS
    fi
    if [ "$ran" = "$ROUNDS" ]; then
      # The further flood: the connects (not for the floor, which drops
      # them) and, for the XDP configurations, the program's own time. If
      # it fails, flood has said why; the counted figures still stand.
      conn=$([ "$c" != floor ] && echo connects)
      CONN_OUT=
      further=ok
      if [ "$c" = smtpgate ] || [ "$c" = floor ]; then
        stats_flood "$c" "$SYNS" $conn || further=failed
      else
        flood "$c (connects)" $conn || further=failed
      fi
      att=$(kv attempted "$CONN_OUT"); ok=$(kv succeeded "$CONN_OUT")
      [ -n "$CONN_OUT" ] || att=- ok=-
      R[$c]="ok $sent $inside $outside $secs_best $ns $tns $dropped ${att:--} ${ok:--} $PROG_NS $PROG_CNT $bg $LOAD_S"
      if [ "$further" = ok ] && [ "$c" != floor ] && { [ -z "$att" ] || [ "$att" = - ] || [ "$att" = 0 ] || [ "$att" != "$ok" ]; }; then
        fail "$c at $SCALE prefixes: admitted connects $ok of $att succeeded ($CONN_OUT)"
      fi
    else
      R[$c]="flood-failed"
    fi
    [ "$c" = smtpgate ] && smtpgate_parts
    "teardown_$c"
  done

  # The table of this scale.
  read -r st _ _ _ _ floor_ns floor_tns _ <<<"${R[floor]}"
  [ "$st" = ok ] || floor_ns= floor_tns=
  echo
  echo "== $SCALE prefixes (aggregated) =="
  echo "ns/SYN: CPU per SYN of the whole machine | of the flood's own tasks; above: the same minus the floor's"
  echo "(the floor's: the lowest of its $FLOOR_FLOODS floods, $ROUNDS before each other configuration and its own)"
  printf '%-17s %8s %6s %5s %14s %12s %17s %10s %8s %4s %6s\n' configuration SYNs secs Mpps "ns/SYN" "above" \
    "dropped/outside" "connects" "prog ns" "bg%" "load s"
  for c in "${CONFIGS[@]}"; do
    read -r st sent inside outside secs ns tns dropped att ok pns pcnt bg load <<<"${R[$c]}"
    if [ "$st" != ok ]; then
      printf '%-18s %s\n' "${LABEL[$c]}" "$st"
      [ -n "$TSV" ] && printf '%s\t%s\t%s\n' "$SCALE" "$c" "$st" >>"$TSV"
      continue
    fi
    above=- tabove=-
    [ -n "$floor_ns" ] && above=$((ns - floor_ns)) tabove=$((tns - floor_tns))
    mpps=$(awk -v n="$sent" -v s="$secs" 'BEGIN { printf "%.2f", (s > 0 ? n / s / 1e6 : 0) }')
    printf '%-17s %8s %6.2f %5s %14s %12s %17s %10s %8s %4s %6s\n' "${LABEL[$c]}" "$sent" "$secs" "$mpps" "$ns | $tns" \
      "$above | $tabove" "$dropped/$outside" "$ok/$att" "$pns" "$bg" "$load"
    [ -n "$TSV" ] && printf '%s\t%s\tok\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\t\t\n' "$SCALE" "$c" \
      "$sent" "$inside" "$outside" "$secs" "$ns" "$above" "$tns" "$tabove" "$dropped" "$att" "$ok" "$pns" "$pcnt" \
      "$bg" "$load" >>"$TSV"
  done
  read -r _ _ _ _ _ nft_ns nft_tns _ <<<"${R[nftables]}"
  read -r _ _ _ _ _ sg_ns sg_tns _ <<<"${R[smtpgate]}"
  if [ -n "$floor_ns" ] && [ "${R[nftables]%% *}" = ok ] && [ "${R[smtpgate]%% *}" = ok ]; then
    ratio() {
      awk -v what="$1" -v s="$2" -v n="$3" 'BEGIN {
        if (n > 0) printf "smtpgate/nftables above the floor (%s): %d/%d ns = %.2f\n", what, s, n, s / n
        else printf "smtpgate/nftables above the floor (%s): %d/%d ns (nftables not above the floor: no ratio)\n", what, s, n }'
    }
    ratio "whole machine" $((sg_ns - floor_ns)) $((nft_ns - floor_ns))
    RATIO[$SCALE]="$((sg_ns - floor_ns)) $((nft_ns - floor_ns))"
    ratio "flood's tasks" $((sg_tns - floor_tns)) $((nft_tns - floor_tns))
    # Both filters admit the flood's SYNs from inside the prefixes, and the
    # TCP stack answers those (the floor drops them): a cost in both figures
    # that is not the filter's. Estimated from this run's own "no filter"
    # row, and shown beside the target's figure, never instead of it.
    read -r none_st none_sent none_inside _ _ none_ns none_tns _ <<<"${R[none]}"
    if [ "$none_st" = ok ]; then
      read -r _ sg_sent sg_inside _ <<<"${R[smtpgate]}"
      awk -v i="$sg_inside" -v n="$sg_sent" -v nm=$((none_ns - floor_ns)) -v nt=$((none_tns - floor_tns)) \
          -v sm=$((sg_ns - floor_ns)) -v st=$((sg_tns - floor_tns)) \
          -v fm=$((nft_ns - floor_ns)) -v ft=$((nft_tns - floor_tns)) 'BEGIN {
        if (n <= 0) exit
        am = i / n * nm; at = i / n * nt
        printf "less the stack answering the %.1f%% of SYNs from inside the prefixes (that share of no filter'"'"'s cost above the floor: %.0f | %.0f ns): ", 100 * i / n, am, at
        if (fm - am > 0 && ft - at > 0) printf "%.0f/%.0f = %.2f | %.0f/%.0f = %.2f\n", sm - am, fm - am, (sm - am) / (fm - am), st - at, ft - at, (st - at) / (ft - at)
        else printf "nftables not above it: no ratio\n" }'
    fi
  fi
  read -r _ _ _ _ _ _ _ _ _ _ sg_pns _ <<<"${R[smtpgate]}"
  read -r _ _ _ _ _ _ _ _ _ _ floor_pns _ <<<"${R[floor]}"
  if [[ "$sg_pns" =~ ^[0-9.]+$ && "$floor_pns" =~ ^[0-9.]+$ ]]; then
    awk -v s="$sg_pns" -v f="$floor_pns" 'BEGIN { printf "smtpgate program per SYN (bpf_stats): %.1f ns, the floor program %.1f ns: %.2fx\n", s, f, s / f }'
  fi
  unset R
done

# --- the yardstick --------------------------------------------------------------
# What any lookup structure of a given size costs here: a program that reads
# one random bit of an S-byte bitmap and drops, under the same flood,
# alternating with the floor on gw1, the lowest of --rounds each. A structure
# that must tell a million prefixes apart needs megabytes.
if has_part yardstick; then
  echo
  echo "== yardstick: one random read per packet in a bitmap of S KiB, then drop (program time, bpf_stats) =="
  SCALE=yardstick
  # A quarter of the frames (at least 100,000, or all of them if fewer): a
  # program's time per packet needs no more.
  YARDSTICK_SYNS=$(( SYNS / 4 > 100000 ? SYNS / 4 : (SYNS < 100000 ? SYNS : 100000) ))
  saved_syns=$SYNS
  SYNS=$YARDSTICK_SYNS
  YF=
  # The direct_2048 probe reads 2 MiB too, split over 16 KiB inner arrays that
  # the kernel allocates in its direct map: whether the 4 KiB pages of the
  # others, or the size itself, sets the cost.
  for kib in "${PROBES[@]}"; do
    if [ "$kib" = direct_2048 ]; then
      out=$(in_gw "$GEN" attach-probe --obj "$BUILD/bpf/testprogs/read_$kib.bpf.o" --interface gw0 2>&1)
    else
      out=$(ip -n "$GW" link set dev gw0 xdpdrv obj "$BUILD/bpf/testprogs/read_$kib.bpf.o" sec xdp 2>&1)
    fi || {
      fail "the $kib read probe did not attach: $out"
      continue
    }
    p= f= cnt=
    for ((round = 1; round <= ROUNDS; round++)); do
      towards tx1
      PROG_NS=
      stats_flood "floor (yardstick)" "$SYNS" && f=$(lower "$f" "$PROG_NS")
      towards tx0
      PROG_NS=
      stats_flood "read_$kib" "$SYNS" && p=$(lower "$p" "$PROG_NS") cnt=$PROG_CNT
    done
    towards tx0
    YF=$(lower "$YF" "$f")
    PROBE_NS[$kib]=$p
    label="${kib#direct_} KiB"
    [ "$kib" = "${kib#direct_}" ] || label="$label, direct map"
    printf '%22s: %7s ns per packet (floor program alternating: %s ns)\n' "$label" "${p:--}" "${f:--}"
    [ -n "$TSV" ] && printf 'yardstick\tread_%s\t%s\t\t\t\t\t\t\t\t\t\t\t\t%s\t%s\t\t\t\t\t\n' "$kib" \
      "$([ -n "$p" ] && echo ok || echo flood-failed)" "$p" "$cnt" >>"$TSV"
    ip -n "$GW" link set dev gw0 xdpdrv off
  done
  SYNS=$saved_syns
  echo "floor program (XDP drop) in the same floods: $YF ns"
fi

# --- the targets -------------------------------------------------------------------
# target SCALE NAME VALUE BOUND HOW: one line, and a row of the TSV: met if
# VALUE <= BOUND; unmeasured if either is empty (HOW then says why).
TARGETS_SHOWN=0
target() {
  local scale=$1 name=$2 value=$3 bound=$4 how=$5 verdict
  if [ "$TARGETS_SHOWN" = 0 ]; then
    echo
    echo "== targets (F: the floor program's ns per packet in the same floods; P(S): the yardstick's S-byte probe) =="
    TARGETS_SHOWN=1
  fi
  if [ -z "$value" ] || [ -z "$bound" ]; then
    verdict=unmeasured
  else
    verdict=$(awk -v v="$value" -v b="$bound" 'BEGIN { print (v + 0 <= b + 0 ? "met" : "missed") }')
  fi
  printf '%-10s %-58s %8s <= %8s  %-9s %s\n' "$scale" "$name" "${value:--}" "${bound:--}" "$verdict" "$how"
  [ -n "$TSV" ] && printf '%s\ttarget\t%s\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t%s\t%s\t%s\n' "$scale" "$verdict" "$name" "$value" \
    "$bound" >>"$TSV"
}
calc() { awk "BEGIN { printf \"%.1f\", $1 }"; }
P256=${PROBE_NS[256]:-} P2048=${PROBE_NS[2048]:-}
for SCALE in "${SCALE_LIST[@]}"; do
  f=${MODE_F[$SCALE:empty]:-} s=${MODE_S[$SCALE:empty]:-}
  if [ -n "$f$s" ]; then
    target "$SCALE" "SYN flood from empty space: smtpgate ns <= F+7" "$s" "$([ -n "$f" ] && calc "$f + 7")" "F $f"
    [ "$SCALE" = 100000 ] && target "$SCALE" "SYN flood from empty space: smtpgate ns <= P(256 KiB)+2" "$s" \
      "$([ -n "$P256" ] && calc "$P256 + 2")" "P(256 KiB) ${P256:-unmeasured: part yardstick}"
    [ "$SCALE" = 1000000 ] && target "$SCALE" "SYN flood from empty space: smtpgate ns <= F+0.5(P(2 MiB)-F)" "$s" \
      "$([ -n "$P2048" ] && [ -n "$f" ] && calc "$f + 0.5 * ($P2048 - $f)")" "F $f, P(2 MiB) ${P2048:-unmeasured: part yardstick}"
  fi
  s=${MODE_S[$SCALE:inside]:-}
  [ "$SCALE" = 1000000 ] && [ -n "$s" ] && target "$SCALE" "admitted SYN (inside-only flood): smtpgate ns <= P(2 MiB)+10" \
    "$s" "$([ -n "$P2048" ] && calc "$P2048 + 10")" "P(2 MiB) ${P2048:-unmeasured: part yardstick}"
  for mode in ack udp; do
    f=${MODE_F[$SCALE:$mode]:-} s=${MODE_S[$SCALE:$mode]:-}
    [ -n "$f$s" ] && target "$SCALE" "${mode^^} flood: smtpgate ns <= F+3" "$s" "$([ -n "$f" ] && calc "$f + 3")" "F $f"
  done
  if [ -n "${RATIO[$SCALE]:-}" ] && [ "$SCALE" -ge 1000 ]; then
    read -r sg nft <<<"${RATIO[$SCALE]}"
    target "$SCALE" "whole machine above the floor, smtpgate/nftables <= 0.15" \
      "$([ "$nft" -gt 0 ] && awk -v s="$sg" -v n="$nft" 'BEGIN { printf "%.2f", s / n }')" "$([ "$nft" -gt 0 ] && echo 0.15)" \
      "$sg / $nft ns (table part)"
  fi
  if [ "$SCALE" = 10 ] && [ -n "${PAIR_N[$SCALE]:-}" ]; then
    if [ "${PAIR_N[$SCALE]}" -ge 5 ]; then
      target "$SCALE" "whole machine, smtpgate minus floor, median of pairs <= 20 ns" "${PAIR_DIFF[$SCALE]}" 20 \
        "${PAIR_N[$SCALE]} pairs"
    else
      target "$SCALE" "whole machine, smtpgate minus floor, median of pairs <= 20 ns" "${PAIR_DIFF[$SCALE]}" "" \
        "unmeasured: ${PAIR_N[$SCALE]} pairs, the target needs 5 (--pairs)"
    fi
  fi
done

stop_pid "$LISTENER"
echo
if [ ${#FAILURES[@]} -gt 0 ]; then
  echo "${#FAILURES[@]} check(s) failed:"
  printf '  %s\n' "${FAILURES[@]}"
  exit 1
fi
if has_part table; then
  echo "all checks passed: every admitted connect succeeded, the filters dropped the flood"
else
  echo "all checks passed: smtpgate dropped exactly the floods' SYNs from outside the prefixes"
fi
