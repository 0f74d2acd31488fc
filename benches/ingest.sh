#!/usr/bin/env bash
# Webhook ingest benchmark: Foreman side by side with @octokit/webhooks (and any other peer of ../shared/bench)
# in one run, loopback only, bounded in time. Prints the bench's table; the README quotes one run of it.
#
#   benches/ingest.sh                          # PEERS="node-octokit foreman" CONNS=64
#   PEERS="node-octokit node-probot rust-verify foreman" CONNS="1 16 64" benches/ingest.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
cargo build --release --locked --bin foreman
export FOREMAN_BIN="$root/target/release/foreman"
export PEERS=${PEERS:-"node-octokit foreman"}
export CONNS=${CONNS:-64}
cd ../shared/bench
exec ./run.sh
