#!/usr/bin/env bash
# Run the test suite against the real services: bring the local stack up, then cargo test.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
. deploy/local/env.sh
deploy/local/up.sh
cargo test --workspace --locked "$@"
