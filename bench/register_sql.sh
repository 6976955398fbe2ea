#!/usr/bin/env bash
# `producer register --sql` on a catalog table shaped like a user's (calls(id, s3_uri,
# created_at)) of 100,000 and 1,000,000 rows: wall time, rows per second and peak memory
# (max RSS) of the producer process, each size run $RUNS times (default 3, medians printed), and
# the 1,000,000 / 100,000 memory ratio (flat memory: close to 1). Reference in the same run: the
# same rows registered by one INSERT … SELECT inside PostgreSQL (what the database alone costs).
#   bench/register_sql.sh [ROWS...]        (default: 100000 1000000)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
. deploy/local/env.sh
deploy/local/up.sh >/dev/null
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(100000 1000000)
runs="${RUNS:-3}"
export VADFLOW_DB_SCHEMA=vadflow_bench_register
export LOG_FORMAT=json RUST_LOG=warn
cargo build --release --locked -q -p vadflow-producer --bins
bin="$root/target/release/producer"
export PGOPTIONS="-c client_min_messages=warning"
psql_() { psql -X -q -v ON_ERROR_STOP=1 "$DATABASE_URL" "$@"; }

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

printf '%-10s %-24s %10s %12s %12s\n' rows system "wall s" "rows/s" "max RSS MiB"
declare -A rss
for n in "${sizes[@]}"; do
  psql_ -c "DROP SCHEMA IF EXISTS bench_catalog CASCADE; CREATE SCHEMA bench_catalog;
    CREATE TABLE bench_catalog.calls (id BIGINT PRIMARY KEY, s3_uri TEXT NOT NULL, created_at TIMESTAMPTZ NOT NULL);
    INSERT INTO bench_catalog.calls
      SELECT i, 's3://speech-raw/calls/' || (i % 365) || '/call-' || i || '.wav', now() - (i % 86400) * interval '1 second'
      FROM generate_series(1, $n) AS i;
    ANALYZE bench_catalog.calls;"
  walls=() ; rsss=() ; refs=()
  for _ in $(seq "$runs"); do
    psql_ -c "DROP SCHEMA IF EXISTS $VADFLOW_DB_SCHEMA CASCADE"
    "$bin" migrate >/dev/null
    out=$( { /usr/bin/time -f '%e %M' "$bin" register \
      --sql "SELECT id AS external_id, s3_uri AS uri, created_at FROM bench_catalog.calls" \
      >/dev/null; } 2>&1 | tail -n 1)
    walls+=("${out% *}"); rsss+=("${out#* }")
    got=$(psql_ -t -A -c "SELECT count(*) FROM $VADFLOW_DB_SCHEMA.audio_files WHERE external_id IS NOT NULL")
    [ "$got" = "$n" ] || { echo "register_sql: $got rows registered, expected $n" >&2; exit 1; }
    # Reference: the database alone, one statement, into a fresh copy of the table.
    psql_ -c "DROP SCHEMA IF EXISTS $VADFLOW_DB_SCHEMA CASCADE"
    "$bin" migrate >/dev/null
    start=$(date +%s.%N)
    psql_ -c "INSERT INTO $VADFLOW_DB_SCHEMA.audio_files (bucket, key, created_at, external_id)
      SELECT split_part(substr(s3_uri, 6), '/', 1), substr(s3_uri, 7 + length(split_part(substr(s3_uri, 6), '/', 1))),
             created_at, id::text
      FROM bench_catalog.calls ON CONFLICT (bucket, key) DO NOTHING"
    refs+=("$(echo "$(date +%s.%N) - $start" | bc)")
  done
  wall=$(printf '%s\n' "${walls[@]}" | median)
  kib=$(printf '%s\n' "${rsss[@]}" | median)
  ref=$(printf '%s\n' "${refs[@]}" | median)
  rss[$n]=$kib
  printf '%-10s %-24s %10.2f %12.0f %12.1f\n' "$n" "vadflow register --sql" "$wall" "$(echo "$n / $wall" | bc -l)" "$(echo "$kib / 1024" | bc -l)"
  printf '%-10s %-24s %10.2f %12.0f %12s\n' "$n" "INSERT … SELECT (psql)" "$ref" "$(echo "$n / $ref" | bc -l)" "-"
  printf '%-10s %-24s %10.2f\n' "$n" "ratio (vadflow / ref)" "$(echo "$wall / $ref" | bc -l)"
done
if [ ${#sizes[@]} -ge 2 ]; then
  first=${sizes[0]}; last=${sizes[-1]}
  printf 'peak memory, %s rows / %s rows: %.3f\n' "$last" "$first" "$(echo "${rss[$last]} / ${rss[$first]}" | bc -l)"
fi
psql_ -c "DROP SCHEMA IF EXISTS bench_catalog CASCADE; DROP SCHEMA IF EXISTS $VADFLOW_DB_SCHEMA CASCADE"
