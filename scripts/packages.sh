#!/usr/bin/env bash
# Installs the Debian packages tribune's build and tests need, only those missing.
# Usage: scripts/packages.sh build|test
set -euo pipefail

need=(cmake pkg-config)            # cmake builds the bundled libopus
need+=(libssl-dev)                 # OpenSSL's DTLS for WebRTC (RSA and ECDSA client certificates)
if [[ "${1:-build}" == test ]]; then
  need+=(ffmpeg nginx)             # ffmpeg/ffprobe decode what the tests record; nginx is the edge
  need+=(chromium)                 # the headless browser of tests/browser (hls.js, MSE)
  need+=(fonts-noto-color-emoji)   # emoji in the web app test's screenshots
  need+=(fonts-dejavu-core)        # text in `tribune loadtest --png` charts (read at run time)
  need+=(iproute2)                 # `ip link set lo up` in the web app test's network namespace
  # Software we did not write, tested against: players, a relay, WHIP publishers.
  need+=(vlc-bin vlc-plugin-base mpv icecast2)
  need+=(simple-whip-client gstreamer1.0-nice gstreamer1.0-plugins-base gstreamer1.0-plugins-good)
  need+=(gstreamer1.0-plugins-bad gstreamer1.0-tools)
  need+=(python3-venv)             # aiortc (PyPI) in a virtualenv of the tests
  need+=(espeak-ng)                # the speech the captions tests transcribe
  need+=(python3-icalendar)        # parses the .ics a space serves (tests/browser/states.mjs)
  need+=(varnish)                  # the Varnish edge of deploy/varnish (tests/edge_varnish.rs)
  need+=(redis-server)             # the cluster's shared state (tests/cluster.rs starts its own)
  # node and npm run tests/browser; a NodeSource nodejs (which bundles npm) counts as present.
  command -v node >/dev/null || need+=(nodejs)
  command -v npm >/dev/null || need+=(npm)
fi

missing=()
for p in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  SUDO=""
  [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [[ "${1:-build}" == test ]]; then
  # playwright-core (tests/browser) needs node 20 or later; Debian 12's nodejs is 18. Stop here,
  # saying so, rather than let the browser tests fail later for a reason they cannot name.
  major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
  if ((major < 20)); then
    echo "error: node $(node --version 2>/dev/null || echo missing) is older than 20; tests/browser needs 20+ (e.g. NodeSource's nodejs)" >&2
    exit 1
  fi
fi
