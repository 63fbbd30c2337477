#!/bin/bash
# The runner's hand inside a peer container (phone, pstn), with no network
# path between them and no Docker socket: the runner drops a shell script
# /ctl/<name>/<id>.sh on the shared `ctl` volume; this agent runs it here, in
# the background, and leaves its output in <id>.out and its exit code in
# <id>.rc. /ctl/<name>/ready says the agent is up.
#
#   agent.sh <name>
set -euo pipefail
name="${1:?usage: agent.sh <name>}"
dir="/ctl/$name"

# 1. A fresh directory for this run.
mkdir -p "$dir"
rm -rf "${dir:?}"/*
touch "$dir/ready"

# 2. Run each new script once, in the background; the .rc appears last
#    (written, then renamed) so the runner never reads half of it.
while :; do
  for f in "$dir"/*.sh; do
    [ -e "$f" ] || continue
    id="${f%.sh}"
    mv "$f" "$id.run"
    (
      rc=0
      bash "$id.run" >"$id.out" 2>&1 || rc=$?
      echo "$rc" >"$id.rc.tmp"
      mv "$id.rc.tmp" "$id.rc"
    ) &
  done
  sleep 0.1
done
