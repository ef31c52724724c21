#!/usr/bin/env bash
# Runs tests/browser/cluster_page.mjs (the web app across three nodes on one Redis and an nginx edge over them, in
# headless Chromium) inside a private network namespace with only loopback. Needs root (or
# unprivileged user namespaces, then `unshare -rn`) and iproute2's `ip`.
#
# Environment: as tests/browser/cluster_page.mjs (TRIBUNE_BIN, CHROMIUM_BIN, DEADLINE_MS, VERBOSE).
# The `timeout` is a backstop behind the script's own deadline.
set -euo pipefail
cd "$(dirname "$0")/../.."
ns=(-n)
[[ $(id -u) -eq 0 ]] || ns=(-r -n)
limit=$(( ${DEADLINE_MS:-240000} / 1000 + 30 ))
exec timeout -k 10 "$limit" unshare "${ns[@]}" bash -c 'ip link set lo up && exec node tests/browser/cluster_page.mjs'
