#!/usr/bin/env bash
# Makes sure Debian's Chromium is installed (for the report test) and prints its path.
set -euo pipefail
if ! command -v chromium >/dev/null; then
  as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
  echo "setup-chromium: installing chromium (apt-get, once)" >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null \
    || { as_root apt-get update -qq >/dev/null \
         && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
fi
command -v chromium
