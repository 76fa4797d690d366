#!/usr/bin/env bash
# Local multi-node launcher: starts N `batchq serve --worker-only` nodes on this
# machine against one Redis and PostgreSQL, each with its own cluster.node-id
# (local-1 .. local-N), an ephemeral middleman port and a free HTTP port for
# its /health, /ready and /metrics (`http listening` in its log), and forwards
# SIGINT/SIGTERM to all of them (each drains, SPEC §7). Extra arguments are
# passed to every node, e.g.:
#
#   cluster/run-local.sh 3 build/batchq --config-file=cluster/batchq.example.ini \
#       --redis.port=6379 --postgres.port=5432
#
# Node logs go to ./batchq-local-<i>.log. Exits when every node has exited,
# with the first non-zero exit status (0 when all drained cleanly).
set -u
if [ $# -lt 2 ]; then
  echo "usage: $0 N path/to/batchq [--section.key=value ...]" >&2
  exit 2
fi
n=$1; bin=$2; shift 2
pids=()
for i in $(seq 1 "$n"); do
  "$bin" serve --worker-only --cluster.node-id="local-$i" --cluster.port=0 --http.port=0 "$@" \
    2>"batchq-local-$i.log" &
  pids+=($!)
  echo "node local-$i: pid $! (log batchq-local-$i.log)"
done
stop() { kill -TERM "${pids[@]}" 2>/dev/null; }
trap stop INT TERM
rc=0
for p in "${pids[@]}"; do
  while :; do
    wait "$p"; s=$?
    # wait returns >128 when interrupted by a trapped signal: wait again.
    if kill -0 "$p" 2>/dev/null; then continue; fi
    break
  done
  if [ "$rc" -eq 0 ] && [ "$s" -ne 0 ]; then rc=$s; fi
done
exit "$rc"
