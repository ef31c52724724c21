#!/usr/bin/env bash
# Runs tests/browser/captions_page.mjs (live captions in a browser) inside a private
# network namespace that has only loopback. Needs root (or unprivileged user namespaces, then
# `unshare -rn`) and iproute2's `ip`.
#
# Environment: as tests/browser/captions_page.mjs (TRIBUNE_BIN, CHROMIUM_BIN, DEADLINE_MS, ARTIFACTS,
# VERBOSE). The `timeout` is a backstop behind the script's own deadline (SIGTERM cleans up).
set -euo pipefail
cd "$(dirname "$0")/../.."
ns=(-n)
[[ $(id -u) -eq 0 ]] || ns=(-r -n)
limit=$(( ${DEADLINE_MS:-180000} / 1000 + 30 ))
exec timeout -k 10 "$limit" unshare "${ns[@]}" bash -c 'ip link set lo up && exec node tests/browser/captions_page.mjs'
