#!/usr/bin/env bash
# Installs the Debian 12 packages batchq needs to build, test and run, if any is
# missing. Safe to run again: it does nothing when all are present. Needs root,
# or sudo for a normal user. docs/dependencies.md says why each package is here.
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  libcaf-dev libhiredis-dev libpqxx-dev libpq-dev nlohmann-json3-dev libcpp-httplib-dev
  libboost-dev
  libcli11-dev uuid-dev libssl-dev libgtest-dev libgmock-dev
  redis-server redis-tools postgresql-15 postgresql-client-15 curl
  clang libclang-rt-14-dev
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "batchq: installing missing Debian packages: ${missing[*]}" >&2
sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then
    sudo_cmd=(sudo)
  else
    echo "batchq: these packages are missing and you are not root (and there is no sudo):" >&2
    echo "  apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi
"${sudo_cmd[@]}" apt-get update -q
DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
