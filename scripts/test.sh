#!/usr/bin/env bash
# Runs every test: formatting, lints, unit, property and end-to-end tests (real processes,
# ffmpeg, headless Chromium). Installs the system packages it needs.
set -euo pipefail
cd "$(dirname "$0")/.."
# A clean clone gains nothing from incremental caches (2.9 GB of them); keep CI's disk for binaries.
export CARGO_INCREMENTAL=0
scripts/packages.sh test
# The speech model of the captions tests (pinned, checked; kept in target/ between runs).
scripts/captions-model.sh target/models/whisper-base
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
# The web app's retry policy against a loopback server that resets, then refuses, then answers.
node tests/web/retry.mjs
# The listener page's pure parts: in-band merge, ID3 reader, count sampling, reaction batches.
node tests/web/public.mjs
# The replay page's pure parts: a moment in a shared link (?t=), chapters from the timeline.
node tests/web/moments.mjs
# A real browser (headless Chromium + hls.js, MSE, low-latency mode) plays a space's LL-HLS.
(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
TRIBUNE_BIN=$PWD/target/debug/tribune node tests/browser/hls_browser.mjs
# A plain <audio> element (Chromium's own Ogg demuxer and Opus decoder) plays live.opus.
TRIBUNE_BIN=$PWD/target/debug/tribune node tests/browser/ogg_audio.mjs
# The web app end to end: host, guest and listener in three headless Chromium processes with fake
# microphones, in a private network namespace (screenshots in target/browser-artifacts/webapp).
TRIBUNE_BIN=$PWD/target/debug/tribune tests/browser/run_webapp.sh
# The web app state by state (scheduled, live, interrupted, ended, replay; listener and host)
# at 1280×800 and 390×844 with the longest unbroken text the server takes: no page wider than
# its viewport, exactly the controls each state should show, axe-core, the links (copy, host,
# speaker), the .ics (Python icalendar), the reminder (screenshots in target/browser-artifacts/states).
TRIBUNE_BIN=$PWD/target/debug/tribune tests/browser/run_states.sh
# Live captions in a browser: the page's caption line, hls.js reading the WebVTT rendition,
# the replay's captions (Whisper base on espeak-ng speech; screenshots in target/browser-artifacts/captions).
TRIBUNE_BIN=$PWD/target/debug/tribune tests/browser/run_captions_page.sh
# The listener page through real nginx and Varnish edges: no join, event stream or presence
# reaches the origin until the listener raises a hand (private network namespace).
TRIBUNE_BIN=$PWD/target/debug/tribune tests/browser/run_edge_page.sh
# The web app across a cluster: three nodes on one Redis; the host's page on n1, the guest's on
# n2, the space on n3, a listener through an nginx edge over all three (private namespace).
TRIBUNE_BIN=$PWD/target/debug/tribune tests/browser/run_cluster_page.sh
