#!/usr/bin/env bash
# Re-segmenting from stored score tracks against a full run: `worker vad --outputs
# segments.json,scores.bin` on 1 hour of 44.1 kHz stereo speech in FLAC (the full run, which
# also writes the track), then `worker resegment` with other settings on 100 copies of that
# track in one process (one hour alone is below the timer's resolution). Each RUNS times
# (default 5), interleaved; prints CPU seconds (user + system, the whole process), real time
# per core (audio seconds / CPU seconds), the track's size, and the speed ratio.
#   bench/resegment.sh [RUNS] [ENGINE...]        (default: 5 webrtc silero)
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
audio=3600

cpu() { # command... -> "user+sys seconds"
  /usr/bin/time -f '%U %S' -o "$work/time" "$@" >/dev/null 2>&1
  awk '{printf "%.4f\n", $1 + $2}' "$work/time"
}
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

copies=100
for engine in "${engines[@]}"; do
  fulls=() resegs=()
  for _ in $(seq "$runs"); do
    rm -rf "$work/stored" "$work/reseg" "$work/tracks"
    fulls+=("$(cpu "$bin" vad --no-progress --engine "$engine" --outputs segments.json,scores.bin \
      --out "$work/stored" "$work/in")")
    for i in $(seq "$copies"); do
      mkdir -p "$work/tracks/$i"
      cp "$work/stored/speech-1h.flac/scores.bin" "$work/tracks/$i/"
    done
    resegs+=("$(cpu "$bin" resegment --out "$work/reseg" --min-silence 0.5s --pad-start 0.1s \
      "$work/tracks")")
  done
  full=$(printf '%s\n' "${fulls[@]}" | median)
  reseg=$(printf '%s\n' "${resegs[@]}" | median)
  size=$(stat -c %s "$work/stored/speech-1h.flac/scores.bin")
  printf '%-7s full run (decode..render, track written): %.3f s CPU = %.0fx real time per core\n' \
    "$engine" "$full" "$(echo "$audio / $full" | bc -l)"
  printf '%-7s resegment, %d hours (whole process):     %.3f s CPU = %.0fx real time per core\n' \
    "$engine" "$copies" "$reseg" "$(echo "$audio * $copies / $reseg" | bc -l)"
  printf '%-7s track: %d bytes (%.1f KB per hour); resegment is %.0fx as fast as the full run\n' \
    "$engine" "$size" "$(echo "$size / 1000" | bc -l)" "$(echo "$full * $copies / $reseg" | bc -l)"
done
rm -rf "$work/stored" "$work/reseg" "$work/tracks"
