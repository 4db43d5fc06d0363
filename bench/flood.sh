#!/usr/bin/env bash
# End to end on veth: a SYN flood from spread sources against a gateway
# namespace, for four configurations in one run, at several allowlist sizes:
#   none      no filter (the gateway's TCP stack answers every SYN)
#   nftables  an interval set of the prefixes; non-members' port-25 SYNs
#             dropped in prerouting at raw priority
#   smtpgate  smtpgated attached to the gateway's veth, action drop, the
#             prefixes loaded with 'smtpgatectl ranges import'
#   floor     an XDP program that drops everything: what the sender and the
#             veth cost anyway
# For each: CPU per SYN two ways, the lowest of --rounds floods (default 3)
# with nothing else running: whole-machine (busy jiffies of /proc/stat over
# the flood) and the flood's own tasks (the sender, which also runs most of
# the receive path, plus the ksoftirqd threads: blind to other work on a
# busy machine), each above the floor; and what the filter dropped. Then a
# further flood of the same size: admitted TCP connects from EOP addresses
# made during it (not for the floor, which drops them), and for smtpgate and
# the floor, with kernel.bpf_stats_enabled=1, the program's own run time per
# packet. Last, a yardstick: programs that only read one bit of a bitmap of
# 8 KiB to 16 MiB at the source's /24, for what a lookup structure of that
# size costs under the same flood; and the 2 MiB one again with its bitmap in
# the kernel's direct map (2 MiB pages) instead of 4 KiB vmalloc pages.
#
# Usage: bench/flood.sh BUILD_DIR [--scales 10,1000,100000,1000000]
#          [--syns 2000000] [--rounds 3] [--seed 1] [--pool 1048576]
#          [--load-timeout 120] [--tsv FILE]
# Run as root. Everything it creates (two namespaces, a veth pair, an nft
# table, pins, processes, a temporary directory) is removed on exit, also on
# failure and Ctrl-C. Exit 0 if every check passed, 1 otherwise, 2 on usage.
set -uo pipefail

usage() {
  echo "usage: $0 BUILD_DIR [--scales N,N,...] [--syns N] [--rounds N] [--seed N] [--pool N] [--load-timeout SECONDS] [--tsv FILE]" >&2
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
LOAD_TIMEOUT=120
TSV=
while [ $# -gt 0 ]; do
  case "$1" in --scales|--syns|--rounds|--seed|--pool|--load-timeout|--tsv)
    [ $# -ge 2 ] || { echo "flood.sh: $1 needs a value" >&2; usage; } ;;
  esac
  case "$1" in
    --scales) SCALES=$2; shift 2 ;;
    --syns) SYNS=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --seed) SEED=$2; shift 2 ;;
    --pool) POOL=$2; shift 2 ;;
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
[[ "$LOAD_TIMEOUT" =~ ^[0-9]+$ ]] || { echo "flood.sh: --load-timeout '$LOAD_TIMEOUT': expected seconds" >&2; exit 2; }

GEN=$BUILD/bench/flood_gen
SMTPGATED=$BUILD/loader/smtpgated
CTL=$BUILD/control/smtpgatectl
XDP_DROP=$BUILD/bpf/testprogs/xdp_drop.bpf.o
for f in "$GEN" "$SMTPGATED" "$CTL" "$XDP_DROP" "$BUILD"/bpf/testprogs/read_{8,128,256,2048,16384,direct_2048}.bpf.o; do
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
  ip -n "$TX" neigh replace $GW_V4 lladdr $GW_MAC dev tx0
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

attached_prog_id() { ip -n "$GW" -j -d link show gw0 | jq -r '.[0].xdp.prog.id // empty'; }

prog_run() {  # "run_time_ns run_cnt" of a program
  bpftool prog show id "$1" -j | jq -r '"\(.run_time_ns // 0) \(.run_cnt // 0)"'
}

kv() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p" <<<"$2"; }

# flood NAME [CONNECTS]: one flood of $SYNS SYNs, with the admitted connect
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
  bg_in "$TX" "$WORK/send.out" "$GEN" send --interface tx0 --src-mac $TX_MAC --dst-mac $GW_MAC --dst $GW_V4 \
        --port 25 --count "$SYNS" --seed "$SEED" --pool "$POOL" --ranges "$RANGES"
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
  local name=$1 n=$2 conn=${3:-} id rc=0
  id=$(attached_prog_id)
  [ -n "$id" ] || { fail "$name at $SCALE: no XDP program attached to gw0"; return 1; }
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
  # all, so that no block is left to the trie: a chunk per /16 that holds a
  # longer prefix and one per /24 that does, for each of the two slots. No
  # metrics port.
  local need
  need=$(grep -v '^#' "$RANGES" | awk -F'[./]' '$5 > 16 { a[$1 "." $2] = 1 } $5 > 24 { b[$1 "." $2 "." $3] = 1 }
                                              END { print length(a) + length(b) }')
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

# --- the run -------------------------------------------------------------------
CONFIGS=(none nftables smtpgate floor)
declare -A LABEL=([none]="no filter" [nftables]="nftables set" [smtpgate]="smtpgate" [floor]="floor (XDP drop)")
[ -n "$TSV" ] && printf 'scale\tconfig\tstatus\tsyns\tinside\toutside\tseconds\tcpu_ns_per_syn\tabove_floor_ns\ttasks_ns_per_syn\ttasks_above_floor_ns\tdropped\tconnects_attempted\tconnects_succeeded\tprog_ns_per_pkt\tprog_run_cnt\tbackground_pct\tload_s\n' >"$TSV"

echo "smtpgate end-to-end SYN flood on veth: $SYNS SYNs per configuration from at most $POOL distinct sources, seed $SEED, $(nproc) CPUs, kernel $(uname -r)"
IFS=, read -ra SCALE_LIST <<<"$SCALES"
for SCALE in "${SCALE_LIST[@]}"; do
  RANGES=$WORK/ranges-$SCALE.txt
  if ! "$GEN" prefixes --count "$SCALE" --seed "$SEED" --out "$RANGES" >/dev/null; then
    fail "could not generate $SCALE prefixes"
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
    [ -n "$TSV" ] && printf '%s\t%s\tok\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$SCALE" "$c" \
      "$sent" "$inside" "$outside" "$secs" "$ns" "$above" "$tns" "$tabove" "$dropped" "$att" "$ok" "$pns" "$pcnt" \
      "$bg" "$load" >>"$TSV"
  done
  read -r _ _ _ _ _ nft_ns nft_tns _ <<<"${R[nftables]}"
  read -r _ _ _ _ _ sg_ns sg_tns _ <<<"${R[smtpgate]}"
  if [ -n "$floor_ns" ] && [ "${R[nftables]%% *}" = ok ] && [ "${R[smtpgate]%% *}" = ok ]; then
    ratio() {
      awk -v what="$1" -v s="$2" -v n="$3" 'BEGIN {
        if (n > 0) printf "smtpgate/nftables above the floor (%s): %d/%d ns = %.2f (target: at most 0.20)\n", what, s, n, s / n
        else printf "smtpgate/nftables above the floor (%s): %d/%d ns (nftables not above the floor: no ratio)\n", what, s, n }'
    }
    ratio "whole machine" $((sg_ns - floor_ns)) $((nft_ns - floor_ns))
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
    LAST_FLOOR_PNS=$floor_pns
    awk -v s="$sg_pns" -v f="$floor_pns" 'BEGIN { printf "smtpgate program per SYN (bpf_stats): %.1f ns, the floor program %.1f ns: %.2fx (target: at most 2x)\n", s, f, s / f }'
  fi
  unset R
done

# --- the yardstick --------------------------------------------------------------
# What any lookup structure of a given size costs here: a program that reads
# one bit of an N KiB bitmap at the source's /24 and drops, under the same
# flood. A structure that must tell a million prefixes apart needs megabytes.
echo
echo "== yardstick: one random read per SYN in a bitmap of N KiB, then drop (program time, bpf_stats) =="
[ -n "${LAST_FLOOR_PNS:-}" ] && echo "floor program (XDP drop): $LAST_FLOOR_PNS ns"
SCALE=yardstick
# A quarter of the SYNs (at least 100,000, or all of them if fewer): a
# program's time per packet needs no more.
YARDSTICK_SYNS=$(( SYNS / 4 > 100000 ? SYNS / 4 : (SYNS < 100000 ? SYNS : 100000) ))
# The direct_2048 probe reads 2 MiB too, split over 16 KiB inner arrays that
# the kernel allocates in its direct map: whether the 4 KiB pages of the
# others, or the size itself, sets the cost.
for kib in 8 128 256 2048 16384 direct_2048; do
  if [ "$kib" = direct_2048 ]; then
    out=$(in_gw "$GEN" attach-probe --obj "$BUILD/bpf/testprogs/read_$kib.bpf.o" --interface gw0 2>&1)
  else
    out=$(ip -n "$GW" link set dev gw0 xdpdrv obj "$BUILD/bpf/testprogs/read_$kib.bpf.o" sec xdp 2>&1)
  fi || {
    fail "the $kib read probe did not attach: $out"
    continue
  }
  PROG_NS=-
  label="${kib#direct_} KiB"
  [ "$kib" = "${kib#direct_}" ] || label="$label, direct map"
  stats_flood "read_$kib" "$YARDSTICK_SYNS" && printf '%22s: %6s ns per SYN\n' "$label" "$PROG_NS"
  [ -n "$TSV" ] && printf 'yardstick\tread_%s\tok\t\t\t\t\t\t\t\t\t\t\t\t%s\t%s\t\t\n' "$kib" "$PROG_NS" "$PROG_CNT" >>"$TSV"
  ip -n "$GW" link set dev gw0 xdpdrv off
done

stop_pid "$LISTENER"
echo
if [ ${#FAILURES[@]} -gt 0 ]; then
  echo "${#FAILURES[@]} check(s) failed:"
  printf '  %s\n' "${FAILURES[@]}"
  exit 1
fi
echo "all checks passed: every admitted connect succeeded, the filters dropped the flood"
