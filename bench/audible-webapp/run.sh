#!/usr/bin/env bash
# Time until audible in tribune's web app: click on "Play" on /spaces/{id} → the speaker's 440 Hz
# tone in window.tribune.outputAnalyser, in headless Chromium. See the header of
# audible_webapp.mjs.
#
#   bench/audible-webapp/run.sh            # mode hls (the app as it is: hls.js + MSE, LL-HLS)
#   bench/audible-webapp/run.sh hls ogg    # also the app's Ogg fallback (MSE hidden)
#
# Builds the release binary first (the web app is embedded in it), unless TRIBUNE_BIN is set
# (relative: from the caller's directory). Needs Debian's chromium (apt-get install -y chromium)
# and tests/browser/node_modules (npm ci there; playwright-core 1.65.1, pinned). TRIALS (default
# 10), TRIAL_TIMEOUT_MS, JSON_OUT (default bench/json/audible-webapp.json), DEADLINE_MS, VERBOSE.
# The `timeout` is a backstop behind the script's own deadline (SIGTERM cleans up).
set -euo pipefail
if [[ -n "${TRIBUNE_BIN:-}" && "$TRIBUNE_BIN" != /* ]]; then
  TRIBUNE_BIN="$PWD/$TRIBUNE_BIN"
fi
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
if [[ -z "${TRIBUNE_BIN:-}" ]]; then
  (cd "$root" && cargo build --release -p tribune)
  export TRIBUNE_BIN="$root/target/release/tribune"
fi
if [[ ! -d "$root/tests/browser/node_modules/playwright-core" ]]; then
  (cd "$root/tests/browser" && npm ci --no-audit --no-fund)
fi
exec timeout -k 10 900 node "$here/audible_webapp.mjs" "$@"
