#!/usr/bin/env bash
# Runs every test: formatting, lints, unit, property and end-to-end tests (real processes,
# ffmpeg). Installs the system packages it needs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/packages.sh test
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
