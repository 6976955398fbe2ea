#!/usr/bin/env bash
# The chart's checks: helm lint, renders with KEDA and the ServiceMonitor on and off, strict
# schema validation for Kubernetes 1.29-1.31, and render assertions. Tools come from PyPI only.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bin="$("$here/tools.sh")"
"$(dirname "$bin")/venv/bin/python" "$here/chart_test.py" "$bin/helm"
