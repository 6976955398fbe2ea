#!/usr/bin/env bash
# vadflow end to end on the local stack: real recordings go from PostgreSQL through RabbitMQ to two
# workers, which fetch them from S3, run WebRTC VAD, upload the results and ack; the
# collector records every outcome in the database. Safe to run again: it resets its own schema,
# queues and results first.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
. deploy/local/env.sh
export VADFLOW_QUEUE_PREFIX=vadflow-demo
export VADFLOW_DB_SCHEMA=vadflow_demo
export VADFLOW_RESULTS_BUCKET=vadflow-demo
# Health and metrics on any free loopback port (several workers run side by side).
export VADFLOW_HTTP_ADDR=127.0.0.1:0
export VADFLOW_RESULTS_PREFIX=results/
export LOG_FORMAT="${LOG_FORMAT:-text}"
export RUST_LOG="${RUST_LOG:-info}"
demo_dir="$root/.local/demo"
logs="$demo_dir/logs"

step() { printf '\n== %s\n' "$*"; }

step "local stack"
deploy/local/up.sh

step "build (release)"
cargo build --release --locked -p vadflow-producer -p vadflow-worker -p vadflow-demo --bins
bin="$root/target/release"

step "reset the demo's schema, queues and bucket"
"$bin/vadflow-demo" reset
rm -rf "$demo_dir"
mkdir -p "$logs"

step "record speech (espeak-ng, known silences) in five formats, plus one corrupt file"
"$bin/vadflow-demo" prepare "$demo_dir/audio"
ls -l "$demo_dir/audio"

step "migrate, upload to S3 and register"
"$bin/producer" migrate
"$bin/producer" register --from "$demo_dir/audio" "s3://$VADFLOW_RESULTS_BUCKET/incoming/"

step "enqueue --since yesterday"
"$bin/producer" enqueue --since yesterday

step "two workers and the collector, until every file is finished"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
"$bin/producer" collect >"$logs/collect.log" 2>&1 & pids+=($!)
VADFLOW_WORKER_ID=worker-1 "$bin/worker" --concurrency 1 >"$logs/worker-1.log" 2>&1 & pids+=($!)
VADFLOW_WORKER_ID=worker-2 "$bin/worker" --concurrency 1 >"$logs/worker-2.log" 2>&1 & pids+=($!)
"$bin/vadflow-demo" wait --timeout-s 300
# A clean stop: SIGTERM drains and exits 0.
kill -TERM "${pids[@]}"
for p in "${pids[@]}"; do wait "$p"; done
trap - EXIT
echo "jobs per worker: worker-1=$(grep -c 'job done\|dead-lettered' "$logs/worker-1.log" || true) worker-2=$(grep -c 'job done\|dead-lettered' "$logs/worker-2.log" || true) (logs in $logs)"

step "summary"
"$bin/vadflow-demo" report "$demo_dir/audio"

step "producer status"
"$bin/producer" status
