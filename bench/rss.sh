#!/usr/bin/env bash
# Peak memory of one job: the worker's peak RSS (VmHWM) on a 1-hour and a 10-hour FLAC input
# (16 kHz mono speech), each processed by a fresh worker process through the real RabbitMQ, S3
# server and PostgreSQL; then the same for local mode (`worker vad`). Prints the figures and the
# 10 h / 1 h ratio. `--format m4a` uses AAC in MP4 instead, with the index (`moov`) after the
# media data as ffmpeg writes it: the worker spools it from S3 to a temporary file.
#   bench/rss.sh [--format flac|m4a] [HOURS...]        (default: flac, 1 10)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
. deploy/local/env.sh
deploy/local/up.sh >/dev/null
format=flac
if [ "${1:-}" = "--format" ]; then format="$2"; shift 2; fi
case "$format" in flac | m4a) ;; *) echo "rss: --format flac or m4a" >&2; exit 2 ;; esac
hours=("$@")
[ ${#hours[@]} -gt 0 ] || hours=(1 10)

export VADFLOW_QUEUE_PREFIX=vadflow-bench-rss
export VADFLOW_DB_SCHEMA=vadflow_bench_rss
export VADFLOW_RESULTS_BUCKET=vadflow-bench
# Health and metrics on any free loopback port (several workers run side by side).
export VADFLOW_HTTP_ADDR=127.0.0.1:0
export VADFLOW_RESULTS_PREFIX=results/
export LOG_FORMAT=json RUST_LOG=warn
cargo build --release --locked -q -p vadflow-producer -p vadflow-worker -p vadflow-demo --bins
bin="$root/target/release"
work="$root/.local/bench-rss"
mkdir -p "$work"

vmhwm_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }

for h in "${hours[@]}"; do
  in="$work/in-${h}h"
  file="$in/speech-${h}h.flac"
  if [ ! -f "$file" ]; then
    mkdir -p "$in"
    bench/speech.sh "$file" "$((h * 3600))"
  fi
  if [ "$format" = m4a ]; then
    flac_file="$file"
    in="$work/in-${h}h-m4a"
    file="$in/speech-${h}h.m4a"
    if [ ! -f "$file" ]; then
      mkdir -p "$in"
      ffmpeg -v error -y -i "$flac_file" -c:a aac -b:a 64k "$file"
    fi
  fi
  dur="$(ffprobe -v error -show_entries format=duration -of csv=p=0 "$file")"
  size="$(stat -c %s "$file")"

  "$bin/vadflow-demo" reset >/dev/null
  "$bin/producer" migrate
  "$bin/producer" register --from "$in" "s3://$VADFLOW_RESULTS_BUCKET/rss-${h}h/" >/dev/null
  "$bin/producer" enqueue --since 1h >/dev/null
  "$bin/producer" collect >"$work/collect.log" 2>&1 &
  collect=$!
  "$bin/worker" --concurrency 1 >"$work/worker-${h}h.log" 2>&1 &
  worker=$!
  start=$(date +%s.%N)
  "$bin/vadflow-demo" wait --timeout-s 7200 >/dev/null
  end=$(date +%s.%N)
  peak="$(vmhwm_kib "$worker")"
  kill -TERM "$worker" "$collect"
  wait "$worker" "$collect" || true
  status="$(psql "$DATABASE_URL" -Atc "SELECT status FROM $VADFLOW_DB_SCHEMA.audio_files")"
  printf 'distributed %3sh: audio %.0f s, %s MB %s, status %s, wall %.1f s, worker peak RSS %.1f MiB\n' \
    "$h" "$dur" "$((size / 1000000))" "$format" "$status" "$(echo "$end - $start" | bc)" "$(echo "$peak / 1024" | bc -l)"
  echo "$h $peak" >>"$work/distributed.txt.new"

  out="$(mktemp -d)"
  /usr/bin/time -f '%M' -o "$work/time.txt" "$bin/worker" vad "$file" --out "$out" >/dev/null 2>&1
  local_peak="$(tail -1 "$work/time.txt")"
  rm -rf "$out"
  printf 'local       %3sh: worker vad peak RSS %.1f MiB\n' "$h" "$(echo "$local_peak / 1024" | bc -l)"
  echo "$h $local_peak" >>"$work/local.txt.new"
done

for mode in distributed local; do
  mv "$work/$mode.txt.new" "$work/$mode.txt"
  awk -v mode="$mode" 'NR == 1 {first = $2; h1 = $1} END {
    if (NR > 1) printf "%s: peak RSS %sh / %sh = %.3f\n", mode, $1, h1, $2 / first }' "$work/$mode.txt"
done
