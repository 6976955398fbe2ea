#!/usr/bin/env bash
# Writes OUT: SECONDS of speech (about 12 s of espeak-ng sentences with pauses, repeated), 16 kHz
# mono 16-bit unless sox output options say otherwise; the format follows OUT's extension.
#   bench/speech.sh OUT SECONDS [SOX OUTPUT OPTIONS...]     e.g. bench/speech.sh x.wav 600 -r 44100 -c 2
set -euo pipefail
out="$1" seconds="$2"
shift 2
base="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.local/bench/base.wav"
if [ ! -f "$base" ]; then
  mkdir -p "$(dirname "$base")"
  tmp="$(mktemp -d)"
  espeak-ng -v en-us -s 160 -w "$tmp/a.wav" "The quarterly report is due on Friday, so please send me your figures."
  espeak-ng -v en-us -s 150 -w "$tmp/b.wav" "Thank you for calling. Your call is important to us."
  sox "$tmp/a.wav" "$tmp/b.wav" -r 16000 -c 1 -b 16 "$base" pad 0.8 1.5
  rm -rf "$tmp"
fi
reps="$(python3 -c "import math; print(max(0, math.ceil($seconds / $(soxi -D "$base")) - 1))")"
sox "$base" "$@" "$out" repeat "$reps" trim 0 "$seconds"
