#!/usr/bin/env bash
# Speech detection on real recordings with human labels: vadflow's engines and the references
# (py-webrtcvad's example.py in every mode, silero-vad from PyPI with its own
# get_speech_timestamps, and TEN VAD from PyPI when --ten is given), all in one run, scored alike:
# per set and pooled frame precision / recall / F1 (10 ms) and segment F1 (IoU >= 0.5) on speech,
# and on speech-free recordings the share of their time called speech and segments per minute.
#   bench/realaudio.sh [--ten] [DIR]     (DIR: a folder with labels.json; default
#                                          ../shared/realaudio, the development set)
# The audio is read from DIR, never copied into the repository. TEN VAD is a reference only: the
# bench installs it (PyPI ten-vad, and Debian's libc++ for its library) and vadflow never ships it
# (its licence restricts use in competing products).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export AWS_EC2_METADATA_DISABLED=true
ten=no
[ "${1:-}" != "--ten" ] || { ten=yes; shift; }
dir="${1:-$root/../shared/realaudio}"
[ -f "$dir/labels.json" ] || { echo "realaudio: no labels.json in $dir" >&2; exit 2; }
python="$(bench/setup-venv.sh --real)"
if [ "$ten" = yes ] && ! "$python" -c 'import ten_vad' 2>/dev/null; then
  if ! ldconfig -p | grep -q 'libc++.so.1'; then
    apt-get install -y -qq libc++1 libc++abi1 >/dev/null 2>&1 ||
      sudo apt-get install -y -qq libc++1 libc++abi1 >/dev/null
  fi
  "$python" -m pip install --quiet --disable-pip-version-check ten-vad==1.0.6.9 >&2
fi
cargo build --release --locked -q -p vadflow-eval --bin vadflow-eval
echo "## Real recordings ($(date -u +%F), $(git rev-parse --short HEAD))"
echo
target/release/vadflow-eval real --labels "$dir" --python "$python" \
  --system "vadflow --engine auto=--engine auto" \
  --system "vadflow --engine silero --min-silence 300ms=--engine silero --min-silence 300ms" \
  2> >(grep -v -i warn >&2)
