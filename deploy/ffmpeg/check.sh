#!/usr/bin/env bash
# Builds the image's ffmpeg (build.sh, from Debian's FFmpeg source) and checks that `worker vad`
# gives the same segments through it as through the system's ffmpeg, for the formats that go
# through ffmpeg; prints its size. Needs the system ffmpeg (to write the inputs), deb-src access
# for `apt-get source ffmpeg` (or SRC_DIR set to an unpacked FFmpeg tree), gcc, make, nasm,
# pkg-config and libspeex-dev.
#   deploy/ffmpeg/check.sh
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
export AWS_EC2_METADATA_DISABLED=true
work="$root/.local/ffmpeg-check"
mkdir -p "$work"
if [ -z "${SRC_DIR:-}" ]; then
  if [ ! -d "$work/src" ]; then
    (cd "$work" && apt-get source --download-only ffmpeg >/dev/null && tar xf ffmpeg_*.orig.tar.xz &&
      mv ffmpeg-*/ src)
  fi
  SRC_DIR="$work/src"
fi
[ -x "$work/ffmpeg" ] || deploy/ffmpeg/build.sh "$SRC_DIR" "$work/ffmpeg"
cargo build --release --locked -q -p vadflow-worker --bin worker

in="$work/inputs"
mkdir -p "$in"
bench/speech.sh "$in/s.wav" 40 >/dev/null
enc() { ffmpeg -v error -y -i "$in/s.wav" "$@"; }
enc -ar 8000 -c:a libgsm_ms "$in/gsm.wav"
enc -c:a g722 "$in/g722.wav"
enc -ar 8000 -c:a g726 -b:a 32k "$in/g726.wav"
enc -c:a wmav2 "$in/a.wma"
enc -ar 48000 -c:a ac3 "$in/a.ac3"
enc -ar 48000 -c:a eac3 "$in/a.eac3"
enc -c:a libspeex "$in/a.spx"
enc -ar 8000 -c:a pcm_mulaw -f au "$in/a.au"
ffmpeg -v error -y -f lavfi -i testsrc=size=320x240:rate=10 -i "$in/s.wav" -shortest -c:v mpeg4 \
  -c:a aac "$in/video.mp4"
files=(gsm.wav g722.wav g726.wav a.wma a.ac3 a.eac3 a.spx a.au video.mp4)

for which in system image; do
  program="$(command -v ffmpeg)"
  [ "$which" = system ] || program="$work/ffmpeg"
  rm -rf "$work/out-$which"
  (cd "$in" && "$root/target/release/worker" vad --decoder ffmpeg --ffmpeg "$program" \
    --out "$work/out-$which" "${files[@]}" 2>/dev/null | tail -n 1)
done
echo "| file | codec | segments (system ffmpeg) | segments (image ffmpeg) | same segments |"
echo "|---|---|---|---|---|"
for f in "${files[@]}"; do
  python3 - "$work" "$f" <<'PY'
import json, sys
work, f = sys.argv[1:]
def load(which):
    try:
        return json.load(open(f"{work}/out-{which}/{f}/segments.json"))
    except OSError:
        return None
a, b = load("system"), load("image")
seg = lambda d: [(s["start"], s["end"]) for s in d["segments"]] if d else None
same = "yes" if a and b and seg(a) == seg(b) else "no"
codec = (a or b or {}).get("source", {}).get("codec", "?")
n = lambda d: len(d["segments"]) if d else "failed"
print(f"| {f} | {codec} | {n(a)} | {n(b)} | {same} |")
PY
done
echo
echo "image ffmpeg: $(stat -c %s "$work/ffmpeg") bytes ($(du -h "$work/ffmpeg" | cut -f1)), static: $(file -b "$work/ffmpeg" | grep -o 'statically linked' || echo no)"
