#!/usr/bin/env bash
# Runs tests/browser/webapp.mjs (the web app in three headless Chromium processes) inside a
# private network namespace that has only loopback: the server, the browsers and their WebRTC
# traffic cannot reach or be reached from anything else. Needs root (or unprivileged user
# namespaces, then `unshare -rn`) and iproute2's `ip`.
#
# Environment: as tests/browser/webapp.mjs (TRIBUNE_BIN, CHROMIUM_BIN, DEADLINE_MS, ARTIFACTS,
# VERBOSE). The `timeout` is a backstop behind the script's own deadline (SIGTERM cleans up).
set -euo pipefail
cd "$(dirname "$0")/../.."
ns=(-n)
[[ $(id -u) -eq 0 ]] || ns=(-r -n)
limit=$(( ${DEADLINE_MS:-150000} / 1000 + 30 ))
exec timeout -k 10 "$limit" unshare "${ns[@]}" bash -c 'ip link set lo up && exec node tests/browser/webapp.mjs'
