#!/usr/bin/env bash
# The chaos suite in one command (docs/cluster.md "The chaos suite"): installs
# what is missing, starts a private PostgreSQL (and Redis, unused by the runs,
# which start their own with an append-only file) on free loopback ports,
# builds, and runs batchq-chaos in both on-node-loss modes. Extra arguments go
# to every run, e.g. `bash cluster/chaos.sh --users 80 --keep`. CI runs the same
# two runs as the ctest entries cluster.chaos.fail / cluster.chaos.requeue.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
source scripts/services.sh
trap stop_services EXIT
start_services
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc 2>/dev/null || echo 2)" --target batchq batchq-chaos
rc=0
for mode in fail requeue; do
  build/cluster/batchq-chaos --batchq build/batchq --mode "$mode" "$@" || rc=1
done
exit $rc
