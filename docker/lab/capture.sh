#!/bin/bash
# Capture every SIP packet sipcti sends or receives (run in sipcti's network
# namespace: docker/compose.yaml, service `capture`), both sides, into a pcap
# for `sipcti replay`. Loopback (the HEALTHCHECK's OPTIONS) is left out.
# /tmp/capturing appears once tcpdump listens (the service's healthcheck).
#
#   capture.sh <file.pcap>
set -euo pipefail
out="${1:?usage: capture.sh <file.pcap>}"
rm -f "$out" /tmp/capturing
# -U: write each packet at once, so the file is complete while tcpdump runs
tcpdump -i any -U -n -s 0 -Z root -w "$out" 'port 5060 and not host 127.0.0.1' 2>/tmp/tcpdump.err &
pid=$!
until grep -q 'listening on' /tmp/tcpdump.err; do
  kill -0 "$pid" 2>/dev/null || { cat /tmp/tcpdump.err >&2; exit 1; }
  sleep 0.1
done
touch /tmp/capturing
cat /tmp/tcpdump.err
wait "$pid"
