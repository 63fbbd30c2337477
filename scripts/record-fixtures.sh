#!/usr/bin/env bash
# Re-record the replay fixtures in fixtures/captures/ from the SIPp e2e
# scenarios: each scenario runs through the real sipcti binary while
# tcpdump records the lab's loopback traffic; the events Zammad (the
# double) accepted are written beside the capture as expected.jsonl.
# Needs root (tcpdump on lo), SIPp and tcpdump:
#   apt-get install -y sip-tester tcpdump
# Then checks that replaying every fixture gives exactly its events.
set -euo pipefail
cd "$(dirname "$0")/.."
out="$PWD/fixtures/captures"
rm -rf "$out"
mkdir -p "$out"
SIPCTI_RECORD_FIXTURES="$out" cargo test -p sipcti-proxy --test e2e -- \
  e2e_01 e2e_02 e2e_03 e2e_04 e2e_05 e2e_06 e2e_07 e2e_08
echo "recorded:"
for d in "$out"/*/; do
  printf '  %-22s %6s bytes, %s events\n' "$(basename "$d")" "$(stat -c %s "$d/capture.pcap")" "$(wc -l < "$d/expected.jsonl")"
done
cargo test -p sipcti-proxy --test replay_fixtures
