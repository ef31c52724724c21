#!/usr/bin/env bash
# Time until audible in headless Chromium for tribune's live.opus (see audible.mjs).
# Needs Debian's chromium (apt-get install -y chromium) and a release build of tribune
# (cargo build --release -p tribune). TRIBUNE_BIN, if set, is taken relative to the caller's
# directory; unset, it is ../../target/release/tribune from this directory.
set -euo pipefail
if [[ -n "${TRIBUNE_BIN:-}" && "$TRIBUNE_BIN" != /* ]]; then
  TRIBUNE_BIN="$PWD/$TRIBUNE_BIN"
fi
cd "$(dirname "$0")"
export TRIBUNE_BIN="${TRIBUNE_BIN:-../../target/release/tribune}"
npm ci --no-audit --no-fund || npm install --no-audit --no-fund
exec node audible.mjs "$@"
