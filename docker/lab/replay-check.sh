#!/bin/bash
# The lab's replay check (scripts/lab.sh, after the calls): the CTI events
# `sipcti replay` reads from the capture of sipcti's traffic
# (/results/replay.jsonl) must be the events the Zammad double accepted
# (/results/zammad-events.jsonl, written by runner.sh): the same calls with
# the same events, fields and order within each call.
set -euo pipefail
R="${1:-/results}"
# the Zammad fields only (replay adds ts/packet), calls grouped by callId,
# each call's events in their order
norm='[.[] | {event, direction, callId, from, to, queue, answeringNumber, cause, user}
       | with_entries(select(.value != null))] | group_by(.callId) | .[][] | tojson'
jq -rs "$norm" "$R/replay.jsonl" >"$R/replay.norm"
jq -rs "$norm" "$R/zammad-events.jsonl" >"$R/zammad.norm"
n=$(wc -l <"$R/zammad.norm")
if [ "$n" -gt 0 ] && diff -u "$R/zammad.norm" "$R/replay.norm" >"$R/replay.diff"; then
  echo "replay-check: ok: sipcti replay of the capture gives the $n events Zammad got"
  exit 0
fi
echo "replay-check: FAIL: replay differs from what Zammad got ($n events):"
cat "$R/replay.diff"
exit 1
