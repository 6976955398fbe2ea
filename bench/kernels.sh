#!/usr/bin/env bash
# Kernel benchmarks, one thread each, vadflow and the Python references in the same run:
#   - VAD core on 1 hour of 16 kHz speech: WebRTC against py-webrtcvad's raw per-frame loop,
#     Silero (blocks, and one frame at a time) against PyPI onnxruntime on the same model;
#   - decode + resample to 16 kHz, per format (WAV, FLAC, MP3, Vorbis, Opus, MP4 AAC and ALAC,
#     ADTS, WebM Opus, MP3 in Matroska, AIFF, CAF, MP2; 10 minutes of 44.1 kHz stereo speech,
#     Opus 48 kHz) against soundfile + soxr, or ffmpeg where libsndfile has no reader.
# Prints the table: real-time factor per core (audio seconds per second of one core) and ratios.
#   bench/kernels.sh [--runs N]        (default: 5 interleaved rounds, medians)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export AWS_EC2_METADATA_DISABLED=true
runs=5
[ "${1:-}" != "--runs" ] || runs="$2"
python="$(bench/setup-venv.sh --full --onnx)"
models/silero-vad/extract.sh >/dev/null
model="$root/.local/silero-vad/silero_vad/data/silero_vad_16k_sequence.onnx"
work="$root/.local/bench"
mkdir -p "$work/formats"

# Speech with pauses: 1 hour at 16 kHz, and 10 minutes of 44.1 kHz stereo in each format.
[ -f "$work/speech-1h.wav" ] || bench/speech.sh "$work/speech-1h.wav" 3600
if [ ! -f "$work/formats/speech.opus" ]; then
  bench/speech.sh "$work/formats/speech.wav" 600 -r 44100 -c 2
  src="$work/formats/speech.wav"
  ffmpeg -v error -y -i "$src" -c:a flac "$work/formats/speech.flac"
  ffmpeg -v error -y -i "$src" -c:a libmp3lame -b:a 128k "$work/formats/speech.mp3"
  ffmpeg -v error -y -i "$src" -c:a libvorbis -q:a 4 "$work/formats/speech.ogg"
  ffmpeg -v error -y -i "$src" -ar 48000 -c:a libopus -b:a 48k "$work/formats/speech.opus"
fi
# The containers of #12: MP4 (AAC, ALAC), ADTS, WebM (Opus), Matroska (MP3), AIFF, CAF, MP2.
if [ ! -f "$work/formats/speech.mp2" ]; then
  src="$work/formats/speech.wav"
  ffmpeg -v error -y -i "$src" -c:a aac -b:a 96k "$work/formats/speech.m4a"
  ffmpeg -v error -y -i "$src" -c:a alac "$work/formats/speech-alac.m4a"
  ffmpeg -v error -y -i "$src" -c:a aac -b:a 96k "$work/formats/speech.aac"
  ffmpeg -v error -y -i "$src" -ar 48000 -c:a libopus -b:a 48k "$work/formats/speech.webm"
  ffmpeg -v error -y -i "$src" -c:a libmp3lame -b:a 128k "$work/formats/speech-mp3.mkv"
  ffmpeg -v error -y -i "$src" -c:a pcm_s16be "$work/formats/speech.aiff"
  ffmpeg -v error -y -i "$src" -c:a pcm_s16le "$work/formats/speech.caf"
  ffmpeg -v error -y -i "$src" -c:a mp2 -b:a 192k "$work/formats/speech.mp2"
fi

# Interleaved rounds: each round runs every reference kernel once, then every vadflow kernel
# once against that round's reference figures, so a slow spell of this shared machine falls on
# both sides of a ratio. The table gives medians over the rounds, ratios as the median of the
# per-round ratios with their range.
cargo bench --locked -q -p vadflow-worker --bench kernels --no-run 2>/dev/null
rounds="$work/rounds"
rm -rf "$rounds"; mkdir -p "$rounds"
for r in $(seq "$runs"); do
  echo "bench: round $r of $runs: reference (Python, one thread), then vadflow (release, one thread)" >&2
  OMP_NUM_THREADS=1 "$python" bench/reference/kernels.py --audio "$work/speech-1h.wav" --model "$model" \
    --formats "$work/formats" --runs 1 >"$rounds/reference-$r.json"
  cargo bench --locked -q -p vadflow-worker --bench kernels -- \
    --audio "$work/speech-1h.wav" --formats "$work/formats" --reference "$rounds/reference-$r.json" \
    --runs 1 >"$rounds/vadflow-$r.md"
done
"$python" bench/kernels_table.py "$rounds"/vadflow-*.md
