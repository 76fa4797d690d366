# Sourced by scripts/test: starts a private Redis and PostgreSQL on free,
# non-default loopback ports under $BATCHQ_SVC_DIR and stops them on exit.
# Exports BATCHQ_TEST_REDIS_PORT and BATCHQ_TEST_PG_PORT (tests/support/test_env.hpp).
# Never touches a server that was already running: every port is checked first.

PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}

port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

free_port() {
  local p
  for _ in $(seq 1 200); do
    p=$(( 20000 + RANDOM % 30000 ))
    if ! port_in_use "$p"; then
      echo "$p"
      return 0
    fi
  done
  echo "batchq: no free loopback port found" >&2
  return 1
}

# Runs a command as the unprivileged owner of the PostgreSQL cluster
# (initdb refuses to run as root).
as_pg_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

start_services() {
  BATCHQ_SVC_DIR=$(mktemp -d /tmp/batchq-test.XXXXXX)
  chmod 755 "$BATCHQ_SVC_DIR"

  BATCHQ_TEST_REDIS_PORT=$(free_port)
  redis-server --port "$BATCHQ_TEST_REDIS_PORT" --bind 127.0.0.1 --daemonize yes \
    --save '' --appendonly no --pidfile "$BATCHQ_SVC_DIR/redis.pid" \
    --logfile "$BATCHQ_SVC_DIR/redis.log" --dir "$BATCHQ_SVC_DIR" >/dev/null
  for _ in $(seq 1 200); do
    redis-cli -p "$BATCHQ_TEST_REDIS_PORT" ping 2>/dev/null | grep -q PONG && break
    sleep 0.05
  done
  redis-cli -p "$BATCHQ_TEST_REDIS_PORT" ping | grep -q PONG

  BATCHQ_TEST_PG_PORT=$(free_port)
  mkdir -p "$BATCHQ_SVC_DIR/pg"
  if [ "$(id -u)" -eq 0 ]; then chown postgres:postgres "$BATCHQ_SVC_DIR/pg"; fi
  as_pg_owner "$PGBIN/initdb" -D "$BATCHQ_SVC_DIR/pg/data" -A trust -U postgres -E UTF8 \
    --no-sync >"$BATCHQ_SVC_DIR/initdb.log"
  as_pg_owner "$PGBIN/pg_ctl" -D "$BATCHQ_SVC_DIR/pg/data" -l "$BATCHQ_SVC_DIR/pg/log" -w \
    -o "-p $BATCHQ_TEST_PG_PORT -k $BATCHQ_SVC_DIR/pg -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300" \
    start >/dev/null
  for _ in $(seq 1 200); do
    pg_isready -q -h 127.0.0.1 -p "$BATCHQ_TEST_PG_PORT" && break
    sleep 0.05
  done
  pg_isready -q -h 127.0.0.1 -p "$BATCHQ_TEST_PG_PORT"

  export BATCHQ_TEST_REDIS_PORT BATCHQ_TEST_PG_PORT BATCHQ_SVC_DIR
  echo "batchq: test Redis on 127.0.0.1:$BATCHQ_TEST_REDIS_PORT, PostgreSQL on 127.0.0.1:$BATCHQ_TEST_PG_PORT ($BATCHQ_SVC_DIR)"
}

stop_services() {
  [ -n "${BATCHQ_SVC_DIR:-}" ] || return 0
  if [ -n "${BATCHQ_TEST_REDIS_PORT:-}" ]; then
    redis-cli -p "$BATCHQ_TEST_REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
  fi
  if [ -d "$BATCHQ_SVC_DIR/pg/data" ]; then
    as_pg_owner "$PGBIN/pg_ctl" -D "$BATCHQ_SVC_DIR/pg/data" -m immediate stop >/dev/null 2>&1 || true
  fi
  rm -rf "$BATCHQ_SVC_DIR"
}
