#!/usr/bin/env bash
# End-to-end benchmarks through the real RabbitMQ, S3 server and PostgreSQL (bench/e2e.py):
#   - batch: 200 files of about 30 s in mixed formats (WAV, FLAC, MP3, Vorbis, Opus), vadflow with
#     2 worker processes and the collector, against reference (a) (the seed design: asyncio
#     queue and a 2-process pool on local files) and reference (b) (2 pika + boto3 workers), and
#     vadflow's local mode on the same files against (a);
#     and vadflow with --engine silero on the same batch;
#   - job overhead: 1000 files of 1 s, the same runs but Silero.
# Prints the tables with ratios; the JSON reports stay in .local/bench/e2e/.
#   bench/e2e.sh [batch|overhead]...       (default: both)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
. deploy/local/env.sh
deploy/local/up.sh >/dev/null 2>&1 || deploy/local/up.sh
python="$(bench/setup-venv.sh --full)"
cargo build --release --locked -q -p vadflow-producer -p vadflow-worker -p vadflow-demo --bins
work="$root/.local/bench/e2e"
mkdir -p "$work"
suites=("$@")
[ ${#suites[@]} -gt 0 ] || suites=(batch overhead)
for suite in "${suites[@]}"; do
  case "$suite" in
    batch) count=200 seconds=30 formats=wav,flac,mp3,ogg,opus runs=vadflow,vadflow-all,vadflow-silero,a,b,local,local-all ;;
    overhead) count=1000 seconds=1 formats=wav runs=vadflow,vadflow-all,a,b,local,local-all ;;
    *) echo "usage: bench/e2e.sh [batch|overhead]..." >&2; exit 2 ;;
  esac
  batch="$work/$suite-${count}x${seconds}"
  [ -f "$batch/.done" ] || {
    "$python" bench/make_batch.py --out "$batch" --count "$count" --seconds "$seconds" --formats "$formats" >&2
    touch "$batch/.done"
  }
  "$python" bench/e2e.py --bin "$root/target/release" --batch "$batch" --name "$suite" \
    --runs "$runs" --logs "$work/logs-$suite" >"$work/$suite.json"
  "$python" bench/e2e_table.py "$work/$suite.json"
done
