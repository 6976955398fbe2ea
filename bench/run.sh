#!/usr/bin/env bash
# Every performance benchmark, one after the other (docs/performance.md holds a run's figures):
#   bench/kernels.sh   VAD engines, decode and resample, one thread, against the Python references
#   bench/e2e.sh       end to end through RabbitMQ, S3 and PostgreSQL, and local mode, against
#                      references (a) and (b); job overhead on 1-s files
#   bench/per_format.py  CPU per format, vadflow against reference (a)'s per-file work
#   bench/collect.py   the collector's capacity, events/s
#   bench/rss.sh       the worker's peak RSS on 1-hour and 10-hour inputs
# Each script sets up what it needs (local stack, reference venv from PyPI, test audio) and prints
# its figures with the ratios measured in the same run. Quality is bench/eval.sh.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export AWS_EC2_METADATA_DISABLED=true
echo "## Machine"
echo
echo "$(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(free -g | awk '/^Mem:/ {print $2}') GiB, $(uname -sr), $(rustc --version)"
echo
echo "## Kernels"
bench/kernels.sh
echo
echo "## End to end"
bench/e2e.sh batch overhead
echo
echo "### Where the CPU goes, per format (one thread, the batch's files)"
echo
"$(bench/setup-venv.sh --full)" bench/per_format.py --bin "$root/target/release" --batch "$root/.local/bench/e2e/batch-200x30"
echo
echo "### The collector's capacity (5000 queued result events)"
echo
(. deploy/local/env.sh && "$(bench/setup-venv.sh --full)" bench/collect.py --bin "$root/target/release")
echo
echo "## Memory"
echo
bench/rss.sh 1 10
