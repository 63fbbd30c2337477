#!/usr/bin/env bash
# The project's one test command: formatting, lints, then every test
# (unit, wire corpus, replay fixtures, shared captures, demo, and the SIPp
# end-to-end suite through the real binary).
# Needs SIPp and tcpdump for the e2e tests: apt-get install -y sip-tester tcpdump
# (tcpdump on the loopback interface needs root).
set -euo pipefail
cd "$(dirname "$0")/.."
missing=""
command -v sipp >/dev/null 2>&1 || missing="$missing sip-tester"
command -v tcpdump >/dev/null 2>&1 || missing="$missing tcpdump"
if [ -n "$missing" ]; then
  echo "scripts/test.sh: missing:$missing (apt-get install -y$missing)" >&2
  exit 1
fi
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
