# shellcheck shell=bash
# Development defaults for the local stack. Source it: `. deploy/local/env.sh`.
# Every value can be overridden by exporting it before sourcing.
# The S3 key pair below is a documented development key for the local S3 server only.

: "${VADFLOW_ROOT:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
export VADFLOW_ROOT
export AMQP_URL="${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}"
export DATABASE_URL="${DATABASE_URL:-postgres://vadflow:vadflow@127.0.0.1:5432/vadflow}"
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-vadflow-dev}"
export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-vadflow-dev-secret}"
export AWS_REGION="${AWS_REGION:-us-east-1}"
export AWS_ENDPOINT_URL="${AWS_ENDPOINT_URL:-http://127.0.0.1:9000}"
# Never let the AWS SDK probe a cloud metadata endpoint: all traffic stays on loopback.
export AWS_EC2_METADATA_DISABLED=true
export VADFLOW_S3_DATA="${VADFLOW_S3_DATA:-$VADFLOW_ROOT/.local/s3}"
