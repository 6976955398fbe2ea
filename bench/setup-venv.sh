#!/usr/bin/env bash
# Creates bench/.venv with the Python references (from PyPI), idempotently, and prints its python.
#   default: py-webrtcvad (webrtcvad-wheels), for the quality comparison and the parity test
#   --full:  also soundfile, soxr, pika, boto3, numpy, for the performance references (bench/)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv"
python="${PYTHON:-python3}"
want=(webrtcvad-wheels==2.0.14)
if [ "${1:-}" = "--full" ]; then
  want+=(numpy soundfile soxr pika boto3)
fi
stamp="$venv/.installed-$(printf '%s\n' "${want[@]}" | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  [ -x "$venv/bin/python" ] || "$python" -m venv "$venv" >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${want[@]}" >&2
  touch "$stamp"
fi
echo "$venv/bin/python"
