#!/usr/bin/env bash
# Hostile-load benchmark of the webhook endpoint without the secret (benches/hostile.py): peak RSS while 60
# clients hold 25 MiB unsigned bodies open, seconds until slow-header, silent and idle kept-alive connections
# are closed, and a signed delivery's answer time while the connection cap is full of idle connections (and
# with the open-file limit below the cap). Loopback only, bounded (about 3 minutes), stops by itself; prints
# one JSON line per scenario. The README (Performance) quotes one run.
#
#   benches/hostile.sh                      # every scenario
#   benches/hostile.sh slow cap             # some of them: memory, slow, cap, fds
#   FOREMAN_BIN=path/to/foreman SKIP_BUILD=1 benches/hostile.sh
#   MEMORY_SECONDS=20 MEMORY_CLIENTS=60 FLOOD_CONNECTIONS=2000 DELIVERIES=10 benches/hostile.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
if [ -z "${FOREMAN_BIN:-}" ]; then
  cargo build --release --locked --bin foreman
  export FOREMAN_BIN="${CARGO_TARGET_DIR:-$root/target}/release/foreman"
fi
exec timeout 600 python3 benches/hostile.py "$@"
