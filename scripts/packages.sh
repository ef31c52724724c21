#!/usr/bin/env bash
# Installs the Debian packages tribune's build and tests need, only those missing.
# Usage: scripts/packages.sh build|test
set -euo pipefail

need=(cmake pkg-config)            # cmake builds the bundled libopus
if [[ "${1:-build}" == test ]]; then
  need+=(ffmpeg)                   # ffmpeg/ffprobe decode what the tests record
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
