#!/usr/bin/env bash
# The cluster benchmark: participants (join + event stream, `tribune loadtest --events`) held by
# one node, then by three nodes sharing one Redis, on this machine; and Redis's load.
#
#   1 node:   PARTICIPANTS_1 participants join one node at RAMP/s and hold HOLD s;
#   3 nodes:  PARTICIPANTS_3 participants per node join each of three nodes at once (RAMP/s
#             each); the space runs on n1, so n2 and n3 forward the joins and serve their event
#             streams from their mirrors of n1's log in Redis;
#   listeners: LISTENERS live.opus listeners on each of n2 and n3 (relayed from n1), to count
#             what listeners cost Redis.
# A tone speaker is on the space throughout (levels ~4 events/s). Redis's commands are counted
# with `redis-cli info stats` before and after each hold.
#
# Prints one line per run and writes each loadtest's JSON under OUT. Loopback only; every process
# started here is stopped on exit.
#
# usage: bench/cluster/run.sh   (env: PARTICIPANTS_1=9000 PARTICIPANTS_3=9000 LISTENERS=3000
#                                      RAMP=500 HOLD=30 OUT=bench/json/cluster)
set -euo pipefail
cd "$(dirname "$0")/../.."
P1=${PARTICIPANTS_1:-9000}
P3=${PARTICIPANTS_3:-9000}
LISTENERS=${LISTENERS:-3000}
RAMP=${RAMP:-500}
HOLD=${HOLD:-30}
OUT=${OUT:-bench/json/cluster}
KEY=cluster-bench-operator-key-000000
SECRET=cluster-bench-jwt-secret-0000000000
mkdir -p "$OUT"
scripts/packages.sh test >/dev/null
cargo build --release -q -p tribune
BIN=$PWD/target/release/tribune
TMP=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

RPORT=$(free_port)
redis-server --bind 127.0.0.1 --port "$RPORT" --save "" --appendonly no --dir "$TMP" >/dev/null &
PIDS+=($!)
until redis-cli -p "$RPORT" ping >/dev/null 2>&1; do sleep 0.1; done
commands() { redis-cli -p "$RPORT" info stats | awk -F: '/^total_commands_processed/ {print $2+0}'; }

# start_node NAME: a cluster node on a free port; sets NODE_URL and NODE_PID.
start_node() {
  local port; port=$(free_port)
  mkdir -p "$TMP/$1"
  "$BIN" serve --listen "127.0.0.1:$port" --udp 127.0.0.1:0 --admin-key "$KEY" --jwt-secret "$SECRET" \
    --data-dir "$TMP/$1" --log warn --ip-rate 0 --join-rate 0 --max-conns-per-ip 0 --shield off \
    --redis "redis://127.0.0.1:$RPORT" --node-id "$1" --public-url "http://127.0.0.1:$port" \
    >"$TMP/$1.out" 2>"$TMP/$1.log" &
  NODE_PID=$!
  PIDS+=("$NODE_PID")
  NODE_URL="http://127.0.0.1:$port"
  until curl -fs "$NODE_URL/healthz" >/dev/null; do sleep 0.1; done
}

start_node n1; N1=$NODE_URL; N1_PID=$NODE_PID
start_node n2; N2=$NODE_URL; N2_PID=$NODE_PID
start_node n3; N3=$NODE_URL; N3_PID=$NODE_PID
until [[ $(curl -fs -H "authorization: Bearer $KEY" "$N1/api/cluster" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["nodes"]))' 2>/dev/null) == 3 ]]; do sleep 0.2; done
created=$(curl -fs -X POST -H "authorization: Bearer $KEY" -H 'content-type: application/json' \
  -d '{"title":"cluster bench","node":"n1"}' "$N1/api/spaces")
SPACE=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["id"])' "$created")
HOST=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["host_token"])' "$created")
"$BIN" speak --whip "$N1/api/spaces/$SPACE/whip" --token "$HOST" --tone 440 --seconds 100000 >/dev/null 2>&1 &
PIDS+=($!)
sleep 2

# load NAME URL PARTICIPANTS LISTENERS: one loadtest against one node (in the background).
load() {
  "$BIN" loadtest --url "$2" --space "$SPACE" --events "$3" --listeners "$4" --ramp "$RAMP" \
    --hold "$HOLD" --json "$OUT/$1.json" >"$TMP/$1.txt" 2>&1 &
  PIDS+=($!)
}
# "target / subscribed / held / gapped, ids missing" of a loadtest report's event streams, and its
# listeners "target / joined / held / gapped".
held() { python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); e=r["events"]; l=r["listeners"]; print("event streams %s/%s/%s/%s gapped, %s ids missing; listeners %s/%s/%s" % (e["target"], e["subscribed"], e["held"], e["gapped"], e["missing_ids"], l.get("target"), l.get("joined"), l.get("held")))' "$1"; }
cpu() { ps -o times= -p "$1" | tr -d ' '; }

report() { # report LABEL SECONDS PARTICIPANTS BEFORE AFTER
  local ops; ops=$(python3 -c "print(round(($5-$4)/$2))")
  echo "$1: Redis $ops commands/s over the run ($3 in all)"
}

# 1 node.
c0=$(commands); t0=$(date +%s)
load one-node "$N1" "$P1" 0
wait "${PIDS[-1]}" || true
c1=$(commands); t1=$(date +%s)
echo "1 node, $P1 participants: $(held "$OUT/one-node.json")"
report "1 node" $((t1 - t0)) "$P1 participants" "$c0" "$c1"

# 3 nodes at once.
c0=$(commands); t0=$(date +%s)
load three-n1 "$N1" "$P3" 0; a=${PIDS[-1]}
load three-n2 "$N2" "$P3" 0; b=${PIDS[-1]}
load three-n3 "$N3" "$P3" 0; c=${PIDS[-1]}
wait "$a" "$b" "$c" || true
c1=$(commands); t1=$(date +%s)
for n in n1 n2 n3; do echo "3 nodes, $n, $P3 participants: $(held "$OUT/three-$n.json")"; done
metric() { curl -fs -H "authorization: Bearer $KEY" "$1/metrics" | awk -v m="$2" '$1 == m {print $2}'; }
for u in "$N1" "$N2" "$N3"; do
  echo "  $u: frames dropped $(metric "$u" tribune_cluster_event_frames_dropped_total), slow subscribers dropped $(metric "$u" tribune_events_dropped_slow_total)"
done
report "3 nodes" $((t1 - t0)) "$((3 * P3)) participants" "$c0" "$c1"

# Listeners relayed by n2 and n3: what they cost Redis.
c0=$(commands); t0=$(date +%s)
load relay-n2 "$N2" 0 "$LISTENERS"; a=${PIDS[-1]}
load relay-n3 "$N3" 0 "$LISTENERS"; b=${PIDS[-1]}
wait "$a" "$b" || true
c1=$(commands); t1=$(date +%s)
for n in n2 n3; do echo "relayed by $n: $(held "$OUT/relay-$n.json")"; done
report "listeners relayed by n2 and n3" $((t1 - t0)) "$((2 * LISTENERS)) listeners" "$c0" "$c1"
c0=$(commands); sleep 10; c1=$(commands)
echo "idle (1 space, 3 nodes, nobody on): Redis $(( (c1 - c0) / 10 )) commands/s"
echo "CPU time (user+sys) n1 $(cpu "$N1_PID"), n2 $(cpu "$N2_PID"), n3 $(cpu "$N3_PID")"
