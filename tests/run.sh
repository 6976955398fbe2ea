#!/usr/bin/env bash
# Run the test suite against the real services: bring the local stack up, run every test (the
# fault-injection suite included), then the lint and licence gates.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
. deploy/local/env.sh
deploy/local/up.sh
cargo fmt --all --check
helm/test/run.sh
rm -f target/tmp/fault-suite.log
cargo test --workspace --locked "$@"
if [ -f target/tmp/fault-suite.log ]; then echo "fault suite: $(cat target/tmp/fault-suite.log)"; fi
cargo clippy --workspace --all-targets --locked -- -D warnings
# Licences, banned crates and sources (advisories need a network database: not here).
if ! cargo deny --version 2>/dev/null | grep -q '^cargo-deny 0.20.2'; then
  echo "run: installing cargo-deny 0.20.2 (once)"
  cargo install cargo-deny@0.20.2 --locked --quiet
fi
cargo deny check licenses bans sources
