#!/usr/bin/env bash
# A throw-away PostgreSQL server for libchat's tests (issue #15), from Debian's `postgresql`
# package: a fresh cluster in a temporary directory, owned by an unprivileged user, listening
# on a Unix socket in that directory only (no TCP port, so a busy 5432 or another cluster on
# the machine changes nothing), with a role and a database for the tests. It exports
# LIBCHAT_TEST_POSTGRES_URL and stops the server and removes the directory at exit.
#
# Two ways to use it:
#   source ci-postgres.sh      # from .ci/run: starts the server in the calling shell, exports
#                              # the URL, and chains its clean-up onto the shell's EXIT trap
#   bash ci-postgres.sh CMD…   # runs CMD with the URL set, then stops the server; exits with
#                              # CMD's status (without CMD: start, print the URL, stop)
#
# Installs `postgresql` with apt-get when no server binaries are found (as root; `apt-get
# update` first), without letting the package create and start its own default cluster.
# Environment: LIBCHAT_PG_USER (the OS user that owns and runs the cluster; default `postgres`
# when run as root, else the current user), LIBCHAT_PG_PORT (the socket's port number; default
# 5432 -- only names the socket file, no TCP), LIBCHAT_PG_KEEP=1 (leave the directory behind
# for debugging).

libchat_pg_log() { printf '[ci-postgres] %s\n' "$*" >&2; }

# The newest installed server's bin directory, or nothing.
libchat_pg_bindir() {
  local d best=""
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && [ -x "$d/postgres" ] || continue
    if [ -z "$best" ] || [ "$(printf '%s\n%s\n' "$best" "$d" | sort -V | tail -n1)" = "$d" ]; then
      best=$d
    fi
  done
  printf '%s' "$best"
}

libchat_pg_install() {
  if [ "$(id -u)" != 0 ]; then
    libchat_pg_log "PostgreSQL server binaries not found and not root: apt-get install -y postgresql (as root)"
    return 1
  fi
  libchat_pg_log "installing postgresql (apt-get)"
  # Keep the package from creating (and starting) its own `main` cluster: we only want binaries.
  mkdir -p /etc/postgresql-common
  if [ ! -e /etc/postgresql-common/createcluster.conf ]; then
    printf 'create_main_cluster = false\n' > /etc/postgresql-common/createcluster.conf
  elif ! grep -q '^create_main_cluster *= *false' /etc/postgresql-common/createcluster.conf; then
    printf '\ncreate_main_cluster = false\n' >> /etc/postgresql-common/createcluster.conf
  fi
  apt-get update -qq || return 1
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql \
    > /dev/null || return 1
}

# Runs a command as the cluster's owner.
libchat_pg_as_owner() {
  if [ "$(id -un)" = "$LIBCHAT_PG_OWNER" ]; then
    "$@"
  else
    runuser -u "$LIBCHAT_PG_OWNER" -- "$@"
  fi
}

libchat_pg_start() {
  local t0 t1 bindir port
  t0=$(date +%s.%N)
  bindir=$(libchat_pg_bindir)
  if [ -z "$bindir" ]; then
    libchat_pg_install || return 1
    bindir=$(libchat_pg_bindir)
    [ -n "$bindir" ] || { libchat_pg_log "no PostgreSQL server after installing"; return 1; }
  fi
  if [ "$(id -u)" = 0 ]; then
    LIBCHAT_PG_OWNER=${LIBCHAT_PG_USER:-postgres}
    if ! id -u "$LIBCHAT_PG_OWNER" > /dev/null 2>&1; then
      useradd --system --no-create-home --shell /usr/sbin/nologin "$LIBCHAT_PG_OWNER" || return 1
    fi
  else
    LIBCHAT_PG_OWNER=$(id -un)
  fi
  port=${LIBCHAT_PG_PORT:-5432}
  # The socket path must stay under ~100 bytes: a short directory in /tmp.
  LIBCHAT_PG_DIR=$(mktemp -d /tmp/libchat-pg.XXXXXX) || return 1
  chmod 0700 "$LIBCHAT_PG_DIR"
  [ "$(id -u)" = 0 ] && chown "$LIBCHAT_PG_OWNER" "$LIBCHAT_PG_DIR"
  LIBCHAT_PG_BINDIR=$bindir
  export LIBCHAT_PG_DIR LIBCHAT_PG_BINDIR LIBCHAT_PG_OWNER
  # trust on the socket only: the socket sits in a 0700 directory, so only its owner (and
  # root, who runs CI) can reach it. No TCP listener at all. --no-sync: the cluster is thrown
  # away at exit, so initdb need not fsync its files (the server itself keeps fsync on, for the
  # durable-commit bench).
  local t_initdb t_start
  t_initdb=$(date +%s.%N)
  if ! libchat_pg_as_owner "$bindir/initdb" -D "$LIBCHAT_PG_DIR/data" -U postgres \
      --auth-local=trust --auth-host=reject --encoding=UTF8 --locale=C.UTF-8 --no-sync \
      > "$LIBCHAT_PG_DIR/initdb.log" 2>&1; then
    libchat_pg_log "initdb failed:"; cat "$LIBCHAT_PG_DIR/initdb.log" >&2
    libchat_pg_stop; return 1
  fi
  t_start=$(date +%s.%N)
  # max_connections: parallel tests (one pool each) and the 4-process relay simulation.
  # synchronous_commit stays `on` (the default): the throughput bench measures durable commits.
  if ! libchat_pg_as_owner "$bindir/pg_ctl" -D "$LIBCHAT_PG_DIR/data" \
      -l "$LIBCHAT_PG_DIR/server.log" -w -t 60 \
      -o "-c listen_addresses='' -c unix_socket_directories='$LIBCHAT_PG_DIR' -p $port \
          -c max_connections=300 -c shared_buffers=128MB -c synchronous_commit=on" \
      start > "$LIBCHAT_PG_DIR/pg_ctl.log" 2>&1; then
    libchat_pg_log "the server did not start:"; cat "$LIBCHAT_PG_DIR/pg_ctl.log" "$LIBCHAT_PG_DIR/server.log" >&2
    libchat_pg_stop; return 1
  fi
  LIBCHAT_PG_RUNNING=1
  local t_setup
  t_setup=$(date +%s.%N)
  # A role that may create databases (per-test databases) and a database of its own.
  if ! libchat_pg_as_owner "$bindir/psql" -X -q -v ON_ERROR_STOP=1 -h "$LIBCHAT_PG_DIR" -p "$port" \
      -U postgres -d postgres \
      -c "CREATE ROLE libchat LOGIN CREATEDB" -c "CREATE DATABASE libchat OWNER libchat" \
      > "$LIBCHAT_PG_DIR/setup.log" 2>&1; then
    libchat_pg_log "creating the role and database failed:"; cat "$LIBCHAT_PG_DIR/setup.log" >&2
    libchat_pg_stop; return 1
  fi
  export LIBCHAT_TEST_POSTGRES_URL="postgresql://libchat@/libchat?host=$LIBCHAT_PG_DIR&port=$port"
  t1=$(date +%s.%N)
  libchat_pg_log "PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') up in $(awk -v a="$t0" -v b="$t1" -v i="$t_initdb" -v s="$t_start" -v u="$t_setup" 'BEGIN{printf "%.2fs (initdb %.2fs, start %.2fs, role+db %.2fs)", b-a, s-i, u-s, b-u}') on $LIBCHAT_PG_DIR (port $port, socket only)"
  libchat_pg_log "LIBCHAT_TEST_POSTGRES_URL=$LIBCHAT_TEST_POSTGRES_URL"
}

libchat_pg_stop() {
  if [ -n "${LIBCHAT_PG_RUNNING:-}" ]; then
    libchat_pg_as_owner "$LIBCHAT_PG_BINDIR/pg_ctl" -D "$LIBCHAT_PG_DIR/data" -m fast -w -t 60 stop \
      > /dev/null 2>&1 || libchat_pg_log "pg_ctl stop failed"
    unset LIBCHAT_PG_RUNNING
  fi
  if [ -n "${LIBCHAT_PG_DIR:-}" ] && [ -d "$LIBCHAT_PG_DIR" ]; then
    if [ -n "${LIBCHAT_PG_KEEP:-}" ]; then
      libchat_pg_log "kept $LIBCHAT_PG_DIR"
    else
      rm -rf "$LIBCHAT_PG_DIR"
    fi
  fi
  unset LIBCHAT_PG_DIR LIBCHAT_TEST_POSTGRES_URL
}

if [ "${BASH_SOURCE[0]}" != "$0" ]; then
  # Sourced: start now, stop when the calling shell exits (after whatever EXIT trap it has).
  libchat_pg_start || return 1
  # `trap -p` prints `trap -- 'CMD' EXIT`, quoted for the shell: parse it back into words.
  libchat_pg_previous_trap=""
  if [ -n "$(trap -p EXIT)" ]; then
    eval "libchat_pg_words=( $(trap -p EXIT) )"
    libchat_pg_previous_trap=${libchat_pg_words[2]}
  fi
  # shellcheck disable=SC2064
  trap "libchat_pg_stop; ${libchat_pg_previous_trap}" EXIT
else
  set -uo pipefail
  trap libchat_pg_stop EXIT
  trap 'exit 130' INT TERM
  libchat_pg_start || exit 1
  if [ $# -gt 0 ]; then
    "$@"
    exit $?
  fi
  echo "$LIBCHAT_TEST_POSTGRES_URL"
fi
