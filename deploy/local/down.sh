#!/usr/bin/env bash
# Stop the S3 server that up.sh started. RabbitMQ and PostgreSQL are system services and stay up.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$here/env.sh"
pidfile="$VADFLOW_ROOT/.local/s3s-fs.pid"
if [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null; then
  echo "down: stopped s3s-fs" >&2
fi
rm -f "$pidfile"
