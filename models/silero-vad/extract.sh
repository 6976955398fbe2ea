#!/usr/bin/env bash
# Re-extracts weights.bin from the PyPI wheel silero-vad==6.2.3 and checks the sha256 of the wheel,
# of the ONNX sequence model inside it and of the weights written (SHA256SUMS), and that the
# committed weights.bin is the same file.
#   models/silero-vad/extract.sh            check only
#   models/silero-vad/extract.sh --write    also (re)write the committed weights.bin
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
work="$root/.local/silero-vad"
wheel=silero_vad-6.2.3-py3-none-any.whl
model=silero_vad/data/silero_vad_16k_sequence.onnx
licence=silero_vad-6.2.3.dist-info/licenses/LICENSE
mkdir -p "$work"
python="$("$root/bench/setup-venv.sh" --onnx)"
# --no-deps: the package declares torch, and nothing of it is needed.
[ -f "$work/$wheel" ] ||
  "$python" -m pip download --quiet --disable-pip-version-check --no-deps silero-vad==6.2.3 -d "$work"
(cd "$work" && unzip -o -q "$wheel" "$model" "$licence")
"$python" "$here/extract.py" "$work/$model" "$work/weights.bin"
(cd "$work" && sha256sum --check --quiet "$here/SHA256SUMS")
cmp -s "$work/$licence" "$here/LICENSE" || { echo "extract: the wheel's licence differs from LICENSE" >&2; exit 1; }
[ "${1:-}" != "--write" ] || cp "$work/weights.bin" "$here/weights.bin"
cmp -s "$work/weights.bin" "$here/weights.bin" || { echo "extract: the committed weights.bin differs" >&2; exit 1; }
echo "extract: weights.bin is silero-vad 6.2.3's $model (sha256 checked)"
