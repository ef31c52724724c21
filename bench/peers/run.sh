#!/usr/bin/env bash
# The peer benchmark: tribune next to the servers people would otherwise pick, same machine, same
# load tool (`tribune loadtest`), one run.
#
#   Ogg/Opus 32 kb/s:  tribune's live.opus (1 s pages, then 200 ms pages)  vs  Icecast 2.4 fed by
#                      ffmpeg (1 s pages), each with LISTENERS listeners joining at RAMP/s;
#   HLS:               tribune's LL-HLS (parts + blocking reloads) and tribune's playlist polled
#                      for whole segments  vs  nginx serving the same segment files (mirrored from
#                      tribune by mirror.py; nginx cannot block, so its listeners poll).
#
# Prints a table of ratios (tribune / peer) and writes every run's JSON and PNG to OUT.
# Loopback only; every process started here is stopped on exit.
#
# usage: bench/peers/run.sh            (env: LISTENERS=5000 RAMP=1000 HOLD=30 OUT=bench/json/peers
#                                            PARTS="ogg hls icecast" to run some parts only)
set -euo pipefail
cd "$(dirname "$0")/../.."
LISTENERS=${LISTENERS:-5000}
HLS_LISTENERS=${HLS_LISTENERS:-2000}
RAMP=${RAMP:-1000}
HOLD=${HOLD:-30}
OUT=${OUT:-bench/json/peers}
PARTS=${PARTS:-ogg hls icecast}
part() { [[ " $PARTS " == *" $1 "* ]]; }
KEY=peer-bench-operator-key
mkdir -p "$OUT"

missing=()
for p in icecast2 nginx ffmpeg; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p"); done
if ((${#missing[@]})); then
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
cargo build --release -q -p tribune
BIN=$PWD/target/release/tribune
TMP=$(mktemp -d)
chmod 755 "$TMP" # icecast2 runs as its own user and must reach its directory
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.5
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 1 100); do curl -s -o /dev/null "$1" && return 0; sleep 0.1; done; echo "no answer from $1" >&2; return 1; }

# tribune with one space and a 440 Hz speaker; sets T_PID T_BASE T_SPACE.
start_tribune() {
  local page_ms=$1 port
  port=$(free_port)
  mkdir -p "$TMP/t$port"
  "$BIN" serve --listen "127.0.0.1:$port" --udp 127.0.0.1:0 --admin-key "$KEY" \
    --data-dir "$TMP/t$port" --page-ms "$page_ms" --log warn >"$TMP/t$port.log" 2>&1 &
  T_PID=$!; PIDS+=("$T_PID")
  T_BASE="http://127.0.0.1:$port"
  wait_http "$T_BASE/healthz"
  local created
  created=$(curl -s -X POST -H "authorization: Bearer $KEY" -H 'content-type: application/json' \
    -d '{"title":"peer benchmark"}' "$T_BASE/api/spaces")
  T_SPACE=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])' <<<"$created")
  local token
  token=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["host_token"])' <<<"$created")
  "$BIN" speak --whip "$T_BASE/api/spaces/$T_SPACE/whip" --token "$token" --tone 440 \
    --seconds 3600 >/dev/null 2>&1 &
  PIDS+=($!)
  sleep 3
}

stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

load() { # name, then loadtest arguments
  local name=$1; shift
  echo "== $name"
  "$BIN" loadtest --ramp "$RAMP" --hold "$HOLD" --json "$OUT/$name.json" --png "$OUT/$name.png" "$@" \
    | tail -n 25
}

# ---- Ogg: tribune (1 s and 200 ms pages) and Icecast (1 s pages) ----
if part ogg; then
start_tribune 1000
load tribune-ogg-1s --url "$T_BASE" --space "$T_SPACE" --listeners "$LISTENERS" --mix ogg=100 --server-pid "$T_PID"
stop "$T_PID"
start_tribune 200
load tribune-ogg-200ms --url "$T_BASE" --space "$T_SPACE" --listeners "$LISTENERS" --mix ogg=100 --server-pid "$T_PID"
stop "$T_PID"
fi

# ---- HLS: tribune's LL-HLS and polled HLS, then nginx serving the same segments ----
if part hls; then
start_tribune 200
TRIBUNE_HLS_BASE="$T_BASE/spaces/$T_SPACE/hls"
load tribune-llhls --url "$T_BASE" --space "$T_SPACE" --listeners "$HLS_LISTENERS" --mix hls=100 --server-pid "$T_PID"
load tribune-hls-poll --url "$T_BASE" --space "$T_SPACE" --listeners "$HLS_LISTENERS" --mix hls=100 --hls-poll --server-pid "$T_PID"

# ---- HLS: nginx serving the same segments, mirrored from the tribune above ----
NG_PORT=$(free_port)
mkdir -p "$TMP/nginx/www" "$TMP/nginx/logs"
sed -e "s#@PORT@#$NG_PORT#; s#@ROOT@#$TMP/nginx/www#; s#@PREFIX@#$TMP/nginx#g; s#@USER@#$(id -un)#" \
  bench/peers/nginx-static.conf >"$TMP/nginx/nginx.conf"
python3 bench/peers/mirror.py "$TRIBUNE_HLS_BASE" "$TMP/nginx/www" $((HOLD + 120)) &
MIRROR_PID=$!; PIDS+=("$MIRROR_PID")
sleep 8
nginx -c "$TMP/nginx/nginx.conf" -p "$TMP/nginx" -e "$TMP/nginx/logs/error.log" -g 'daemon off;' &
NG_PID=$!; PIDS+=("$NG_PID")
wait_http "http://127.0.0.1:$NG_PORT/live.m3u8"
# Both nginx processes (master and its one worker) are measured.
NG_WORKER=$(pgrep -P "$NG_PID" | head -1)
load nginx-hls-poll --hls-url "http://127.0.0.1:$NG_PORT/live.m3u8" --listeners "$HLS_LISTENERS" --hls-poll --server-pid "$NG_WORKER"
stop "$NG_PID"
stop "$MIRROR_PID"
stop "$T_PID"
fi

# ---- Icecast 2.4 fed by ffmpeg ----
if part icecast; then
IC_PORT=$(free_port)
mkdir -p "$TMP/icecast"
IC_USER=icecast2; IC_GROUP=$(id -gn icecast2 2>/dev/null || echo icecast)
chown "$IC_USER" "$TMP/icecast"
sed -e "s#@PORT@#$IC_PORT#; s#@DIR@#$TMP/icecast#g; s#@USER@#$IC_USER#g; s#@GROUP@#$IC_GROUP#g" \
  bench/peers/icecast.xml >"$TMP/icecast/icecast.xml"
icecast2 -c "$TMP/icecast/icecast.xml" >"$TMP/icecast/out.log" 2>&1 &
IC_PID=$!; PIDS+=("$IC_PID")
sleep 1
ffmpeg -v error -re -f lavfi -i sine=frequency=440:sample_rate=48000 -ac 1 -c:a libopus -b:a 32k \
  -f ogg -page_duration 1000000 -content_type application/ogg \
  "icecast://source:bench-source@127.0.0.1:$IC_PORT/stream.opus" >"$TMP/icecast/ffmpeg.log" 2>&1 &
PIDS+=($!)
sleep 4
# icecast2 drops root and stays one process: measure it.
load icecast-ogg-1s --ogg-url "http://127.0.0.1:$IC_PORT/stream.opus" --listeners "$LISTENERS" --server-pid "$IC_PID"
stop "$IC_PID"
fi

python3 bench/peers/table.py "$OUT"
