#!/usr/bin/env bash
# What the scores on every segment cost: `worker vad` (the whole job: decode, resample, VAD,
# segment, render, write every default output) on 1 hour of 44.1 kHz stereo speech in FLAC, with
# --segment-scores false and true, in interleaved rounds (off, on, off, on, ...) so a slow spell
# of the shared machine falls on both. Prints each run's CPU time (user + system), the medians
# and the median of the per-round ratios (on / off) with their range, per engine.
#   bench/scores_cost.sh [RUNS] [ENGINE...]        (default: 5 webrtc silero)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
runs="${1:-5}"
shift || true
engines=("$@")
[ ${#engines[@]} -gt 0 ] || engines=(webrtc silero)
cargo build --release --locked -q -p vadflow-worker --bins
bin="$root/target/release/worker"
work="$root/.local/bench-scores"
mkdir -p "$work/in"
file="$work/in/speech-1h.flac"
[ -f "$file" ] || bench/speech.sh "$file" 3600 -r 44100 -c 2

cpu() { # engine scores -> "user+sys seconds"
  rm -rf "$work/out"
  /usr/bin/time -f '%U %S' -o "$work/time" "$bin" vad --no-progress --engine "$1" \
    --segment-scores "$2" --out "$work/out" "$work/in" >/dev/null 2>&1
  awk '{printf "%.3f\n", $1 + $2}' "$work/time"
}
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

for engine in "${engines[@]}"; do
  offs=() ons=() ratios=()
  for r in $(seq "$runs"); do
    off=$(cpu "$engine" false)
    on=$(cpu "$engine" true)
    offs+=("$off") ons+=("$on")
    ratios+=("$(echo "$on / $off" | bc -l)")
    printf '%-7s round %d: off %7.2f s  on %7.2f s  ratio %.4f\n' "$engine" "$r" "$off" "$on" "${ratios[-1]}"
  done
  lo=$(printf '%s\n' "${ratios[@]}" | sort -g | head -n 1)
  hi=$(printf '%s\n' "${ratios[@]}" | sort -g | tail -n 1)
  printf '%-7s CPU s, median: off %.2f, on %.2f; on / off median %.4f (range %.4f to %.4f): %+.2f %%\n' \
    "$engine" "$(printf '%s\n' "${offs[@]}" | median)" "$(printf '%s\n' "${ons[@]}" | median)" \
    "$(printf '%s\n' "${ratios[@]}" | median)" "$lo" "$hi" \
    "$(echo "($(printf '%s\n' "${ratios[@]}" | median) - 1) * 100" | bc -l)"
done
rm -rf "$work/out"
