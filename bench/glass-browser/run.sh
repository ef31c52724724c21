#!/usr/bin/env bash
# Browser glass-to-glass latency for LL-HLS: speaker → headless Chromium + hls.js (lowLatencyMode).
# See the header of glass_browser.mjs. Needs Debian's chromium (apt-get install -y chromium) and
# tests/browser/node_modules (npm ci there; hls.js 1.7.4 and playwright-core 1.65.1, pinned).
# TRIBUNE_BIN (relative: from the caller's directory) defaults to target/release/tribune, built
# with `cargo build --release -p tribune` if missing. SECONDS_ (default 60), SETTLE_S, JSON_OUT.
set -euo pipefail
if [[ -n "${TRIBUNE_BIN:-}" && "$TRIBUNE_BIN" != /* ]]; then
  TRIBUNE_BIN="$PWD/$TRIBUNE_BIN"
fi
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
export TRIBUNE_BIN="${TRIBUNE_BIN:-$root/target/release/tribune}"
if [[ ! -x "$TRIBUNE_BIN" ]]; then
  (cd "$root" && cargo build --release -p tribune)
fi
if [[ ! -d "$root/tests/browser/node_modules/hls.js" || ! -d "$root/tests/browser/node_modules/playwright-core" ]]; then
  (cd "$root/tests/browser" && npm ci --no-audit --no-fund)
fi
exec node "$here/glass_browser.mjs" "$@"
