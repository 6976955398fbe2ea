#!/usr/bin/env bash
# Creates the venv of the Python references (from PyPI), idempotently, and prints its python. It
# lives outside the source tree (third-party code stays out of it): $VADFLOW_BENCH_VENV, by default
# ~/.cache/vadflow/bench-venv.
#   default: py-webrtcvad (webrtcvad-wheels), for the quality comparison and the parity test
#   --full:  also soundfile, soxr, pika, boto3, psycopg, msgpack, numpy, for the benchmarks
#   --onnx:  also onnx, onnxruntime, numpy and soundfile, for the Silero weights and parity fixture
#   --wds:   also webdataset (and numpy), for the test that reads vadflow's training shards
#   --real:  a venv of its own ($VADFLOW_REAL_VENV, by default ~/.cache/vadflow/real-venv) with
#            torch and silero-vad, for the real-audio references and the end-of-file fixture
# Flags combine; packages already installed stay.
set -euo pipefail
venv="${VADFLOW_BENCH_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/vadflow/bench-venv}"
mkdir -p "$(dirname "$venv")"
python="${PYTHON:-python3}"
want=(webrtcvad-wheels==2.0.14)
for flag in "$@"; do
  case "$flag" in
    --full) want+=(numpy==2.4.6 soundfile==0.14.0 soxr==1.1.0 pika==1.4.4 boto3==1.44.8 "psycopg[binary]==3.3.9" msgpack==1.2.4) ;;
    --onnx) want+=(numpy==2.4.6 onnx==1.23.2 onnxruntime==1.32.0 soundfile==0.14.0) ;;
    --wds) want+=(numpy==2.4.6 webdataset==1.0.2 braceexpand==0.1.7 PyYAML==6.0.2) ;;
    # The real-audio references (bench/reference/realaudio.py): silero-vad's own code needs torch
    # (several GB with its CUDA libraries, from PyPI), so they live in a venv of their own.
    --real)
      venv="${VADFLOW_REAL_VENV:-$(dirname "$venv")/real-venv}"
      want+=(numpy==2.4.6 onnxruntime==1.32.0 soundfile==0.14.0 soxr==1.1.0 torch==2.9.1
        silero-vad==6.2.3 packaging) ;;
    *) echo "usage: bench/setup-venv.sh [--full] [--onnx] [--wds] [--real]" >&2; exit 2 ;;
  esac
done
stamp="$venv/.installed-$(printf '%s\n' "${want[@]}" | sort -u | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  [ -x "$venv/bin/python" ] || "$python" -m venv "$venv" >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${want[@]}" >&2
  touch "$stamp"
fi
echo "$venv/bin/python"
