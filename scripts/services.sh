# Sourced by scripts/test: starts a private Redis and PostgreSQL on free,
# non-default loopback ports under $BATCHQ_SVC_DIR and stops them on exit.
# Exports BATCHQ_TEST_REDIS_PORT and BATCHQ_TEST_PG_PORT (tests/support/test_env.hpp).
# Never touches a server that was already running: every port is checked first.

PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}

port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# A random port below the kernel's ephemeral range (net.ipv4.ip_local_port_range):
# a port from that range can be the local port of some outgoing connection, which
# nothing listens on (so the check above passes) but which a server cannot bind.
free_port() {
  local p low=32768
  if [ -r /proc/sys/net/ipv4/ip_local_port_range ]; then
    read -r low _ </proc/sys/net/ipv4/ip_local_port_range
  fi
  [ "$low" -gt 11000 ] || low=32768
  for _ in $(seq 1 200); do
    p=$(( 10000 + RANDOM % (low - 10000) ))
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

# Waits up to 20 s for a command to succeed.
wait_for() {
  for _ in $(seq 1 400); do
    "$@" && return 0
    sleep 0.05
  done
  return 1
}

redis_answers() {
  redis-cli -p "$BATCHQ_TEST_REDIS_PORT" ping 2>/dev/null | grep -q PONG
}

pg_answers() {
  pg_isready -q -h 127.0.0.1 -p "$BATCHQ_TEST_PG_PORT"
}

# on_free_port LABEL START LOG CLEANUP: sets $svc_port to a free port and runs START,
# which starts the server there and waits until it answers. A start that fails
# (the port was taken after all, a slow machine) prints the server's own LOG,
# runs CLEANUP and is tried again on another port, up to 5 times, so that a
# failed CI run says why.
on_free_port() {
  local label=$1 start=$2 log=$3 cleanup=$4 attempt
  for attempt in 1 2 3 4 5; do
    svc_port=$(free_port) || return 1
    "$start" && return 0
    echo "batchq: $label did not start on 127.0.0.1:$svc_port (attempt $attempt of 5):" >&2
    tail -n 20 "$log" >&2 2>/dev/null || true
    "$cleanup"
  done
  return 1
}

# Redis writes its log to redis.log; what it says before it daemonizes (a bad
# argument) goes to the same file.
redis_start() {
  BATCHQ_TEST_REDIS_PORT=$svc_port
  rm -f "$BATCHQ_SVC_DIR/redis.log" "$BATCHQ_SVC_DIR/redis.pid"
  redis-server --port "$svc_port" --bind 127.0.0.1 --daemonize yes \
    --save '' --appendonly no --pidfile "$BATCHQ_SVC_DIR/redis.pid" \
    --logfile "$BATCHQ_SVC_DIR/redis.log" --dir "$BATCHQ_SVC_DIR" \
    >>"$BATCHQ_SVC_DIR/redis.log" 2>&1 && wait_for redis_answers
}

redis_cleanup() {
  if [ -s "$BATCHQ_SVC_DIR/redis.pid" ]; then
    kill -9 "$(cat "$BATCHQ_SVC_DIR/redis.pid")" 2>/dev/null || true
  fi
}

pg_start() {
  BATCHQ_TEST_PG_PORT=$svc_port
  as_pg_owner "$PGBIN/pg_ctl" -D "$BATCHQ_SVC_DIR/pg/data" -l "$BATCHQ_SVC_DIR/pg/log" -w -t 30 \
    -o "-p $svc_port -k $BATCHQ_SVC_DIR/pg -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300" \
    start >/dev/null 2>&1 && wait_for pg_answers
}

pg_cleanup() {
  as_pg_owner "$PGBIN/pg_ctl" -D "$BATCHQ_SVC_DIR/pg/data" -m immediate stop >/dev/null 2>&1 || true
}

# The PostgreSQL cluster, made once; then started like Redis.
pg_init() {
  mkdir -p "$BATCHQ_SVC_DIR/pg"
  if [ "$(id -u)" -eq 0 ]; then chown postgres:postgres "$BATCHQ_SVC_DIR/pg"; fi
  if ! as_pg_owner "$PGBIN/initdb" -D "$BATCHQ_SVC_DIR/pg/data" -A trust -U postgres -E UTF8 \
       --no-sync >"$BATCHQ_SVC_DIR/initdb.log" 2>&1; then
    echo "batchq: initdb failed:" >&2
    tail -n 20 "$BATCHQ_SVC_DIR/initdb.log" >&2
    return 1
  fi
}

start_services() {
  BATCHQ_SVC_DIR=$(mktemp -d /tmp/batchq-test.XXXXXX)
  chmod 755 "$BATCHQ_SVC_DIR"
  export BATCHQ_SVC_DIR
  on_free_port Redis redis_start "$BATCHQ_SVC_DIR/redis.log" redis_cleanup ||
    { echo "batchq: could not start a test Redis" >&2; return 1; }
  pg_init && on_free_port PostgreSQL pg_start "$BATCHQ_SVC_DIR/pg/log" pg_cleanup ||
    { echo "batchq: could not start a test PostgreSQL" >&2; return 1; }
  export BATCHQ_TEST_REDIS_PORT BATCHQ_TEST_PG_PORT
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
