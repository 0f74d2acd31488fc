#!/usr/bin/env bash
# Webhook ingest benchmark: Foreman side by side with @octokit/webhooks (and any other peer of the bench
# harness) in one run, loopback only, bounded in time. Prints the bench's table; the README quotes one run of it.
# The harness (load generator and reference peers, with its run.sh) is not part of this repository: BENCH_DIR
# names a copy of it.
#
#   BENCH_DIR=/path/to/bench benches/ingest.sh                 # PEERS="node-octokit foreman" CONNS=64
#   PEERS="node-octokit node-probot rust-verify foreman" CONNS="1 16 64" BENCH_DIR=/path/to/bench benches/ingest.sh
#   BENCH_DIR=/tmp/bench SKIP_BUILD=1 benches/ingest.sh   # a writable copy of the harness, tools built
#
# The binary is built into $CARGO_TARGET_DIR (or target/) unless FOREMAN_BIN names one. For an A/B of two binaries on a shared machine, run
# the bench alternately with FOREMAN_BIN set to each (old, new, old, new, …) and compare the rows with the
# least foreign load: the bench prints, per row, how much CPU other processes used.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
: "${BENCH_DIR:?set BENCH_DIR to a copy of the webhook ingest bench harness (its run.sh, loadgen and peers)}"
if [ -z "${FOREMAN_BIN:-}" ]; then
  cargo build --release --locked --bin foreman
  export FOREMAN_BIN="${CARGO_TARGET_DIR:-$root/target}/release/foreman"
fi
export PEERS=${PEERS:-"node-octokit foreman"}
export CONNS=${CONNS:-64}
export PAYLOAD=${PAYLOAD:-$root/vendor/github/webhooks/examples/api.github.com/issues/labeled.payload.json}
cd "$BENCH_DIR"
exec ./run.sh
