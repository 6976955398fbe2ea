#!/usr/bin/env bash
# Quality evaluation: generate the labelled corpus, then print vadflow's frame- and segment-level
# precision, recall and F1 per noise condition, side by side with the reference (py-webrtcvad's
# example.py, set up from PyPI by bench/setup-venv.sh), and the format comparison.
#   bench/eval.sh [--files N] [--seed S]   (defaults: 20 files, seed 7; the defaults were chosen
#                                          by `vadflow-eval sweep` on a different seed, 2026)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
files=20 seed=7
while [ $# -gt 0 ]; do
  case "$1" in
    --files) files="$2"; shift 2 ;;
    --seed) seed="$2"; shift 2 ;;
    *) echo "usage: bench/eval.sh [--files N] [--seed S]" >&2; exit 2 ;;
  esac
done
python="$(bench/setup-venv.sh)"
cargo build --release --locked -q -p vadflow-eval --bin vadflow-eval
corpus="$root/.local/corpus-$seed-$files"
[ -f "$corpus/truth.json" ] || target/release/vadflow-eval generate --out "$corpus" --files "$files" --seed "$seed"
echo "## Noise conditions"
target/release/vadflow-eval evaluate --corpus "$corpus" --python "$python"
echo
echo "## Formats (44.1 kHz stereo, Opus 48 kHz) against the 16 kHz mono WAV"
target/release/vadflow-eval formats --corpus "$corpus"
