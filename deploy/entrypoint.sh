#!/bin/sh
# The image's entry point. Fly.io (and most volume drivers) mount a fresh volume owned by root, which the
# unprivileged `foreman` user cannot write. Started as root, this hands the data directory to `foreman` and
# then runs Foreman as `foreman` with no capabilities left; started as any other user, it runs Foreman as is.
set -eu
data="${FOREMAN_DATA_DIR:-/data}"
if [ "$(id -u)" = 0 ]; then
  mkdir -p "$data"
  chown foreman:foreman "$data"
  exec setpriv --reuid=foreman --regid=foreman --init-groups --inh-caps=-all --bounding-set=-all -- foreman "$@"
fi
exec foreman "$@"
