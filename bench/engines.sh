#!/usr/bin/env bash
# The whole process per engine on a 1-hour file in local mode: `worker vad -j 1 --engine E` on
# 16 kHz mono speech (bench/speech.sh), default outputs (decode, detect, segment, write the
# segments and the speech-only audio). The engines run interleaved, RUNS times each, so that the
# machine's noise falls on all alike. Prints per engine the CPU seconds (user + sys) of every run,
# the median, real time per core (audio seconds per CPU second), the ratio to webrtc, and the
# peak RSS. `auto f32` is the auto engine with `--auto-precision f32`: its arithmetic on CPUs
# without AVX-512 VNNI.
#   bench/engines.sh [RUNS] [SECONDS]        (default: 5 runs, 3600 s)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export AWS_EC2_METADATA_DISABLED=true
runs="${1:-5}" seconds="${2:-3600}"
engines=(webrtc silero auto "auto f32")
cargo build --release --locked -q -p vadflow-worker --bin worker
file="$root/.local/bench/speech-${seconds}s.wav"
[ -f "$file" ] || { mkdir -p "$(dirname "$file")"; bench/speech.sh "$file" "$seconds"; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for ((r = 1; r <= runs; r++)); do
  for e in "${engines[@]}"; do
    rm -rf "$work/out"
    /usr/bin/time -f "%U %S %M" -o "$work/time" \
      target/release/worker vad -j 1 --no-progress --engine ${e%% *} \
      $([ "$e" = "auto f32" ] && echo --auto-precision f32) --out "$work/out" "$file" \
      >/dev/null 2>"$work/log" || { cat "$work/log" >&2; exit 1; }
    read -r user sys rss <"$work/time"
    echo "${e// /_} $user $sys $rss" >>"$work/all"
  done
done
echo "## Whole process per engine, ${seconds} s of audio ($(date -u +%F), $(git rev-parse --short HEAD), $runs runs)"
echo
echo "| engine | CPU s per run | median CPU s | real time per core (median) | vs webrtc | peak RSS |"
echo "|---|---|---|---|---|---|"
python3 - "$work/all" "$seconds" "${engines[@]// /_}" <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
seconds = float(sys.argv[2])
med = {}
for e in sys.argv[3:]:
    cpu = [float(u) + float(s) for n, u, s, _ in rows if n == e]
    rss = max(int(m) for n, _, _, m in rows if n == e)
    med[e] = statistics.median(cpu)
    ratio = med[e] / med[sys.argv[3]]
    print(f"| {e.replace('_', ' ')} | {', '.join(f'{c:.2f}' for c in cpu)} | {med[e]:.2f} | "
          f"{seconds / med[e]:,.0f}x | {ratio:.2f}x the CPU | {rss / 1024:.0f} MB |")
EOF
