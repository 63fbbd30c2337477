#!/bin/bash
# The Docker lab's test (docker/compose.yaml, service `runner`): checks that
# only sipcti reaches across the networks, places a fixed set of calls
# between the PSTN (SIPp behind the Kamailio provider) and the phones
# (baresip registered through sipcti), checks each at the SIP side, then
# checks the Zammad double's caller log call by call. Exit code 0 when every
# call and every CTI event is as expected, 1 otherwise.
#
# It drives the peers through their agents (agent.sh, the shared /ctl
# volume) and reads the double over the cti network. What it finds goes to
# /results: runner.log (this output), zammad-log.json (the double's log),
# zammad-events.jsonl (the accepted CTI requests, for the replay check in
# scripts/lab.sh), calls.tsv (name and Call-ID of each call), the SIPp traces
# and the phones' SIP traces.
set -euo pipefail

ZAMMAD="${ZAMMAD:-http://172.28.30.10:8080}"
PROVIDER=172.28.20.5
PSTN_IP=172.28.20.9
SIPCTI_INSIDE=172.28.10.2
RESULTS=/results
CALLER="+491701234567" # the PSTN's usual caller
BLOCKED="+491715000000" # on the double's block list (zammad-rules.toml)

mkdir -p "$RESULTS"
exec > >(tee "$RESULTS/runner.log") 2>&1
tee_pid=$!
# at exit, let tee write the last lines before the container ends
trap 'exec >&- 2>&-; wait "$tee_pid"' EXIT
failures=0
fail() {
  echo "runner: FAIL: $*"
  failures=$((failures + 1))
}
ok() { echo "runner: ok: $*"; }
step() { echo "runner: --- $*"; }

# ---------------------------------------------------------------------------
# The control channel (agent.sh): run a shell script in a peer container.

# start PEER SCRIPT: hand SCRIPT to PEER's agent; the job's path is in $JOB
# (unique also when started from a $(...) subshell)
start() {
  JOB="/ctl/$1/j$(date +%s%N)-$BASHPID"
  printf '%s\n' "$2" >"$JOB.tmp"
  mv "$JOB.tmp" "$JOB.sh"
}
# finish JOB [SECONDS]: wait for JOB (default 30 s); its output in $OUT;
# returns its exit code (124 on timeout)
finish() {
  local job="$1" limit=$((${2:-30} * 10)) i=0
  while [ ! -e "$job.rc" ]; do
    sleep 0.1
    i=$((i + 1))
    if [ "$i" -ge "$limit" ]; then
      OUT="(no answer from $job within $((limit / 10)) s)"
      return 124
    fi
  done
  OUT="$(cat "$job.out")"
  return "$(cat "$job.rc")"
}
# on PEER SCRIPT [SECONDS]: run SCRIPT in PEER and wait for it
on() {
  start "$1" "$2"
  finish "$JOB" "${3:-30}"
}

# ---------------------------------------------------------------------------
# The PSTN side (SIPp in the pstn container) and the phones (baresip).

# pstn_call NAME SCENARIO NUMBER CALLER: the PSTN calls NUMBER at the
# provider from CALLER (fixtures/sipp/SCENARIO.xml); the job in $JOB, the
# trace in /ctl/pstn/NAME.msg. Each call from its own port (5070, 5071, ...):
# a late retransmission of an earlier call's response then cannot reach (and
# abort) a later SIPp; the answering SIPp alone has the provider's PSTN_URI
# port 5060.
uac_port=5069
pstn_call() {
  uac_port=$((uac_port + 1))
  start pstn "sipp -sf /lab/sipp/$2.xml -t u1 -i $PSTN_IP -p $uac_port -m 1 \
    -timeout 20s -timeout_error -nostdin \
    -trace_msg -message_file /ctl/pstn/$1.msg -trace_err -error_file /ctl/pstn/$1.err \
    -key user '$4' -key display PSTN $PROVIDER:5060 -s $3"
}
# pstn_answer NAME SCENARIO: the PSTN waits for one call (fixtures/sipp/
# SCENARIO.xml); returns once SIPp listens; the job in $JOB
pstn_answer() {
  start pstn "sipp -sf /lab/sipp/$2.xml -t u1 -i $PSTN_IP -p 5060 -m 1 \
    -timeout 20s -timeout_error -nostdin \
    -trace_msg -message_file /ctl/pstn/$1.msg -trace_err -error_file /ctl/pstn/$1.err \
    -key answer_user pstn"
  local job="$JOB"
  on pstn "until ss -Hlun 'sport = :5060' | grep -q .; do sleep 0.05; done" 5 \
    || fail "$1: SIPp on the PSTN side did not listen"
  JOB="$job"
}
# sipp_done NAME JOB: wait for a SIPp job; fail the call unless its scenario passed
sipp_done() {
  if finish "$2" 30; then
    ok "$1: the PSTN's SIPp scenario passed"
  else
    fail "$1: the PSTN's SIPp scenario failed: $(tail -n 5 "/ctl/pstn/$1.err" 2>/dev/null || true) $OUT"
  fi
  cp "/ctl/pstn/$1.msg" "$RESULTS/pstn-$1.msg" 2>/dev/null || true
}
# first_request NAME: the first SIP message in the PSTN's trace of call NAME
# (the INVITE it sent or received), header lines only, CRs removed. (Every
# reader in a pipe here reads to the end: with pipefail, a reader that quits
# early would fail the pipe with the writer's SIGPIPE.)
first_request() {
  tr -d '\r' <"/ctl/pstn/$1.msg" | awk '
    /^(UDP|TCP) message (sent|received)/ { n++; next }
    n != 1 || ended { next }
    !started && /^$/ { next }   # the blank line after the trace header
    /^$/ { ended = 1; next }    # the end of the header lines
    { started = 1; print }'
}
# call_id NAME: the Call-ID of the PSTN's call NAME
call_id() { first_request "$1" | awk 'tolower($1) == "call-id:" && !id { id = $2 } END { print id }'; }
# invites PHONE: how many INVITEs the phone has received so far
invites() {
  on "$1" "/lab/phone-received INVITE | wc -l" 5 && echo "$OUT" || echo "?"
}
# phone PHONE COMMAND [PARAMS]: a baresip command through ctrl_tcp
phone() {
  on "$1" "/lab/baresip-ctl '$2' '${3:-}'" 10 || fail "$1: baresip $2 $3: $OUT"
}

# what each call should give Zammad: lines "NAME<TAB>summary" (see summary below)
expected=()
expect() {
  local name="$1"
  shift
  local l
  for l in "$@"; do expected+=("$name	$l"); done
}
calls=()
record_call() {
  local cid
  cid="$(call_id "$1")"
  [ -n "$cid" ] || fail "$1: no Call-ID in the PSTN's trace"
  calls+=("$1	$cid")
}

# ---------------------------------------------------------------------------
step "waiting for the peers"
for peer in phone1 phone2 pstn; do
  for _ in $(seq 1 300); do
    [ -e "/ctl/$peer/ready" ] && break
    sleep 0.1
  done
  [ -e "/ctl/$peer/ready" ] || { fail "$peer's agent did not start"; exit 1; }
done
for _ in $(seq 1 100); do
  curl -fsS -o /dev/null "$ZAMMAD/api/v1/cti/log" && break
  sleep 0.2
done
# both phones registered (through sipcti, with digest auth): baresip prints
# the registrar's 200 OK with its binding count
for p in phone1 phone2; do
  if on "$p" "for i in \$(seq 1 100); do grep -q '200 OK.*\[1 binding\]' /tmp/baresip.log && exit 0; sleep 0.2; done; exit 1" 30; then
    ok "$p registered with the provider through sipcti"
  else
    fail "$p did not register"
  fi
done

step "isolation: only sipcti reaches across"
# positive controls: the probe does get answers where there is a path
on phone1 "/lab/sip-probe $SIPCTI_INSIDE 5060" 10 && ok "phone1 reaches sipcti ($OUT)" \
  || fail "phone1 gets no answer from sipcti $SIPCTI_INSIDE"
on pstn "/lab/sip-probe $PROVIDER 5060" 10 && ok "pstn reaches the provider ($OUT)" \
  || fail "pstn gets no answer from the provider"
# and none across
on phone1 "! /lab/sip-probe $PROVIDER 5060" 10 && ok "phone1 cannot reach the provider" \
  || fail "phone1 reaches the provider directly: $OUT"
on phone1 "! timeout 3 bash -c 'exec 3<>/dev/tcp/172.28.30.10/8080'" 10 \
  && ok "phone1 cannot reach the Zammad double" || fail "phone1 reaches the Zammad double"
on pstn "! /lab/sip-probe 172.28.10.21 5060" 10 && ok "pstn cannot reach phone1" \
  || fail "pstn reaches phone1 directly: $OUT"
on pstn "! timeout 3 bash -c 'exec 3<>/dev/tcp/172.28.30.10/8080'" 10 \
  && ok "pstn cannot reach the Zammad double" || fail "pstn reaches the Zammad double"

# ---------------------------------------------------------------------------
step "1. inbound, answered: PSTN $CALLER -> DID 4930123456 -> phone1 (201)"
before="$(invites phone1)"
pstn_call in_answered uac_hangup 4930123456 "$CALLER"
sipp_done in_answered "$JOB"
record_call in_answered
on phone1 "/lab/phone-received INVITE | tail -n 1" 5 || true
[ "$(invites phone1)" = "$((before + 1))" ] && [[ "$OUT" == "$SIPCTI_INSIDE:5060 INVITE "* ]] \
  && ok "in_answered: phone1 got one INVITE, from sipcti" \
  || fail "in_answered: phone1's INVITEs: before $before, last: $OUT"
expect in_answered \
  "newCall in from=491701234567 to=4930123456 user=Alice Lab" \
  "answer in from=491701234567 to=4930123456 user=Alice Lab answeringNumber=201" \
  "hangup in from=491701234567 to=4930123456 answeringNumber=201 cause=normalClearing"

step "2. inbound from a blocked number: PSTN $BLOCKED -> DID 4930123456: 486, no phone rings"
b1="$(invites phone1)"
b2="$(invites phone2)"
pstn_call in_blocked uac_expect_486 4930123456 "$BLOCKED"
sipp_done in_blocked "$JOB"
record_call in_blocked
sleep 0.5
[ "$(invites phone1)" = "$b1" ] && [ "$(invites phone2)" = "$b2" ] \
  && ok "in_blocked: no phone got an INVITE" || fail "in_blocked: a phone rang"
expect in_blocked \
  "newCall in from=491715000000 to=4930123456 user=Alice Lab" \
  "hangup in from=491715000000 to=4930123456 cause=busy"

step "3. outbound, answered: phone1 dials 0301234567; the PSTN sees Zammad's caller id"
pstn_answer out_answered uas_answer_bye
job="$JOB"
phone phone1 dial "sip:0301234567@$PROVIDER"
sipp_done out_answered "$job"
record_call out_answered
invite="$(first_request out_answered)"
from="$(printf '%s\n' "$invite" | grep -i '^From:' || true)"
[[ "$from" == *"sip:4930111222@"* ]] \
  && ok "out_answered: the PSTN's From carries Zammad's caller id: $from" \
  || fail "out_answered: the PSTN's From is not the caller id 4930111222: $from"
# sipcti's double Record-Route (RFC 5658): its trunk address, then its
# inside address (advertise_trunk, advertise_inside)
rr="$(printf '%s\n' "$invite" | grep -i '^Record-Route:' | grep -oE '172\.28\.(10|20)\.2:5060' | tr '\n' ' ')"
[ "$rr" = "172.28.20.2:5060 172.28.10.2:5060 " ] \
  && ok "out_answered: sipcti's double Record-Route: trunk side, then inside" \
  || fail "out_answered: sipcti's Record-Route entries at the PSTN: $rr"
# topology hiding: no header but Via shows the extension or a phone's
# address (sipcti's own inside address is in the second Record-Route of the
# double Record-Route, RFC 5658, as it should be)
leak="$(printf '%s\n' "$invite" | grep -iv '^Via:' | grep -E '201@|172\.28\.10\.2[12]([^0-9]|$)' || true)"
[ -z "$leak" ] && ok "out_answered: the PSTN's INVITE shows no extension or phone address" \
  || fail "out_answered: the PSTN's INVITE leaks: $leak"
expect out_answered \
  "newCall out from=201 to=49301234567 user=Alice Lab" \
  "answer out from=201 to=49301234567" \
  "hangup out from=201 to=49301234567 cause=normalClearing"

step "4. inbound, cancelled: PSTN -> DID 4930123457 -> phone2 (202) rings; the caller hangs up"
b2="$(invites phone2)"
pstn_call in_cancelled uac_cancel 4930123457 "$CALLER"
sipp_done in_cancelled "$JOB"
record_call in_cancelled
on phone2 "/lab/phone-received | tail -n 2" 5 || true
[ "$(invites phone2)" = "$((b2 + 1))" ] && [[ "$OUT" == *"CANCEL "* ]] \
  && ok "in_cancelled: phone2 rang and got the CANCEL" \
  || fail "in_cancelled: phone2's last requests: $OUT"
expect in_cancelled \
  "newCall in from=491701234567 to=4930123457 user=Bob Lab" \
  "hangup in from=491701234567 to=4930123457 cause=cancel"

step "5. outbound, busy: phone1 dials 0301234569; the PSTN answers 486"
pstn_answer out_busy uas_reject_486
job="$JOB"
phone phone1 dial "sip:0301234569@$PROVIDER"
sipp_done out_busy "$job"
record_call out_busy
expect out_busy \
  "newCall out from=201 to=49301234569 user=Alice Lab" \
  "hangup out from=201 to=49301234569 cause=busy"

step "6. ring group: PSTN -> DID 4930123459 -> sipcti's route rings 201 and 202; phone1 answers"
b1="$(invites phone1)"
b2="$(invites phone2)"
pstn_call ring_group uac_hangup 4930123459 "$CALLER"
sipp_done ring_group "$JOB"
record_call ring_group
on phone2 "grep -c 'Reason: SIP;cause=200;text=\"Call completed elsewhere\"' /tmp/baresip.log" 5 || true
[ "$(invites phone1)" = "$((b1 + 1))" ] && [ "$(invites phone2)" = "$((b2 + 1))" ] \
  && [ "${OUT:-0}" -ge 1 ] \
  && ok "ring_group: both phones rang; phone2 got CANCEL \"Call completed elsewhere\"" \
  || fail "ring_group: INVITEs phone1 $b1 -> $(invites phone1), phone2 $b2 -> $(invites phone2); CANCEL Reason seen $OUT times"
expect ring_group \
  'newCall in from=491701234567 to=4930123459 user=["Alice Lab","Bob Lab"] queue=lab-group' \
  "answer in from=491701234567 to=4930123459 user=Alice Lab answeringNumber=201" \
  "hangup in from=491701234567 to=4930123459 answeringNumber=201 cause=normalClearing"

# ---------------------------------------------------------------------------
step "Zammad's caller log"
# the events of one call, one line each, as the e2e tests write them
# (crates/proxy/tests/lab/mod.rs, summary)
SUMMARY='def summary: "\(.event // "?") \(.direction // "?") from=\(.from // "-") to=\(.to // "-")"
  + (if .user then " user=" + (if (.user | type) == "string" then .user else (.user | tojson) end) else "" end)
  + (if .queue then " queue=\(.queue)" else "" end)
  + (if .answeringNumber then " answeringNumber=\(.answeringNumber)" else "" end)
  + (if .cause then " cause=\(.cause)" else "" end);'
printf '%s\n' "${calls[@]}" >"$RESULTS/calls.tsv"
want=${#expected[@]}
# answer and hangup go to Zammad off the call path: wait for all of them
for _ in $(seq 1 50); do
  curl -fsS "$ZAMMAD/api/v1/cti/log" >"$RESULTS/zammad-log.json"
  got=$(jq '[.requests[] | select(.status == 200)] | length' "$RESULTS/zammad-log.json")
  [ "$got" -ge "$want" ] && break
  sleep 0.2
done
sleep 1 # and nothing more arrives
curl -fsS "$ZAMMAD/api/v1/cti/log" >"$RESULTS/zammad-log.json"
jq -c '.requests[] | select(.status == 200)
       | {event, direction, callId, from, to, queue, answeringNumber, cause, user}
       | with_entries(select(.value != null))' \
  "$RESULTS/zammad-log.json" >"$RESULTS/zammad-events.jsonl"
bad=$(jq '[.requests[] | select(.status != 200)] | length' "$RESULTS/zammad-log.json")
[ "$bad" = 0 ] && ok "the double refused no request" || fail "the double refused $bad requests"

# call by call: the accepted events with the call's Call-ID, in order
for c in "${calls[@]}"; do
  name="${c%%	*}"
  cid="${c#*	}"
  want_lines="$(printf '%s\n' "${expected[@]}" | sed -n "s/^$name	//p")"
  got_lines="$(jq -r --arg id "$cid" "$SUMMARY select(.callId == \$id) | summary" \
    "$RESULTS/zammad-events.jsonl" 2>/dev/null || true)"
  if [ "$got_lines" = "$want_lines" ]; then
    ok "$name: Zammad got $(printf '%s\n' "$got_lines" | wc -l) events, as expected"
  else
    fail "$name (callId $cid): Zammad got
$got_lines
expected
$want_lines"
  fi
done
# no other calls: every accepted event belongs to one of ours
others=$(jq -r '.callId' "$RESULTS/zammad-events.jsonl" | sort -u \
  | grep -vxF -f <(printf '%s\n' "${calls[@]}" | cut -f2) || true)
[ -z "$others" ] && ok "no events for other calls" || fail "events for calls the runner did not place: $others"

# keep the phones' SIP traces with the results
for p in phone1 phone2; do
  on "$p" "cat /tmp/baresip.log" 10 && printf '%s\n' "$OUT" >"$RESULTS/$p-baresip.log" || true
done

if [ "$failures" = 0 ]; then
  echo "runner: PASS: ${#calls[@]} calls, $want CTI events, all as expected"
  exit 0
fi
echo "runner: FAILED: $failures checks (results in $RESULTS)"
exit 1
