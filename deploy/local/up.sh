#!/usr/bin/env bash
# Bring up the local stack on loopback, idempotently:
#   RabbitMQ 127.0.0.1:5672 (guest/guest), PostgreSQL 127.0.0.1:5432 (role and database "vadflow"),
#   an S3-compatible server (s3s-fs) on 127.0.0.1:9000 with the development key from env.sh.
# Whatever already answers is used as it is; whatever is missing is installed (Debian packages,
# `cargo install s3s-fs`) and started. When everything is up it returns within seconds.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=env.sh
. "$here/env.sh"

log() { printf 'up: %s\n' "$*" >&2; }
die() { printf 'up: error: %s\n' "$*" >&2; exit 1; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() { # port seconds name
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    port_open "$1" && return 0
    sleep 0.1
  done
  die "$3 did not open 127.0.0.1:$1 within $2 s"
}

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else die "need root to run: $*"
  fi
}

apt_install() {
  command -v apt-get >/dev/null || die "cannot install $* automatically: no apt-get; install it and rerun"
  log "installing $* (apt-get)"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null \
    || { as_root apt-get update -qq >/dev/null && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null; }
}

ensure_rabbitmq() {
  if port_open 5672; then log "rabbitmq: already up"; return; fi
  command -v rabbitmq-server >/dev/null || apt_install rabbitmq-server
  log "rabbitmq: starting"
  as_root rabbitmq-server -detached
  wait_port 5672 90 rabbitmq
  # The port opens before the broker accepts logins; wait until it reports that it is fully booted.
  as_root rabbitmqctl await_startup --timeout 90 >/dev/null 2>&1 || true
}

pg_admin() { # run psql as a superuser, over TCP if trusted, else through the local socket as postgres
  if psql -h 127.0.0.1 -U postgres -d postgres -tAc 'select 1' >/dev/null 2>&1; then
    psql -h 127.0.0.1 -U postgres -d postgres -v ON_ERROR_STOP=1 -qtA "$@"
  else
    as_root runuser -u postgres -- psql -d postgres -v ON_ERROR_STOP=1 -qtA "$@"
  fi
}

ensure_postgres() {
  if port_open 5432; then
    log "postgresql: already up"
  else
    command -v pg_ctlcluster >/dev/null || apt_install postgresql
    local version
    version="$(ls /etc/postgresql | sort -V | tail -n 1)"
    [ -n "$version" ] || die "postgresql is installed but has no cluster under /etc/postgresql"
    log "postgresql $version: starting"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start
    wait_port 5432 60 postgresql
  fi
  if ! psql "$DATABASE_URL" -tAc 'select 1' >/dev/null 2>&1; then
    log "postgresql: creating role and database vadflow"
    pg_admin -c "do \$\$ begin
        if not exists (select from pg_roles where rolname = 'vadflow') then
          create role vadflow login password 'vadflow';
        end if; end \$\$;"
    if [ "$(pg_admin -c "select 1 from pg_database where datname = 'vadflow'")" != 1 ]; then
      pg_admin -c "create database vadflow owner vadflow"
    fi
    psql "$DATABASE_URL" -tAc 'select 1' >/dev/null || die "cannot connect with DATABASE_URL"
  fi
}

ensure_s3() {
  local port="${AWS_ENDPOINT_URL##*:}"
  port="${port%%/*}"
  if port_open "$port"; then log "s3: already up on $port"; return; fi
  local bin
  bin="$(command -v s3s-fs || true)"
  [ -n "$bin" ] || [ ! -x "$HOME/.cargo/bin/s3s-fs" ] || bin="$HOME/.cargo/bin/s3s-fs"
  if [ -z "$bin" ]; then
    command -v cargo >/dev/null || die "cargo is needed to install the S3 server (s3s-fs)"
    log "s3: installing s3s-fs 0.14.1 (cargo install, a few minutes, once)"
    cargo install s3s-fs@0.14.1 --locked --features binary --quiet
    bin="$HOME/.cargo/bin/s3s-fs"
  fi
  mkdir -p "$VADFLOW_S3_DATA" "$VADFLOW_ROOT/.local/log"
  log "s3: starting s3s-fs on 127.0.0.1:$port, data in $VADFLOW_S3_DATA"
  nohup "$bin" --host 127.0.0.1 --port "$port" \
    --access-key "$AWS_ACCESS_KEY_ID" --secret-key "$AWS_SECRET_ACCESS_KEY" \
    "$VADFLOW_S3_DATA" >>"$VADFLOW_ROOT/.local/log/s3s-fs.log" 2>&1 &
  echo $! >"$VADFLOW_ROOT/.local/s3s-fs.pid"
  wait_port "$port" 30 s3s-fs
}

ensure_tools() {
  # Build and test dependencies: pkg-config and libopus for the Opus decoder,
  # psql for this script, espeak-ng/sox/ffmpeg/flac/opus-tools/vorbis-tools for test audio.
  local missing=()
  command -v psql >/dev/null || missing+=(postgresql-client)
  command -v pkg-config >/dev/null || missing+=(pkg-config)
  pkg-config --exists opus 2>/dev/null || missing+=(libopus-dev)
  command -v espeak-ng >/dev/null || missing+=(espeak-ng)
  command -v sox >/dev/null || missing+=(sox)
  command -v ffmpeg >/dev/null || missing+=(ffmpeg)
  command -v flac >/dev/null || missing+=(flac)
  command -v opusenc >/dev/null || missing+=(opus-tools)
  command -v oggenc >/dev/null || missing+=(vorbis-tools)
  if [ ${#missing[@]} -gt 0 ]; then apt_install "${missing[@]}"; fi
}

ensure_tools
ensure_rabbitmq
ensure_postgres
ensure_s3
log "stack is up: amqp 127.0.0.1:5672, postgresql 127.0.0.1:5432, s3 $AWS_ENDPOINT_URL"
