#!/bin/bash
# A phone of the lab: baresip (Debian's baresip-core) with one account
# registering with the provider THROUGH sipcti (its outbound proxy), answering
# calls by itself, audio from a sine source and played nowhere. Its SIP trace
# goes to /tmp/baresip.log and to the container's log; the runner drives it
# through the agent (agent.sh) and baresip-ctl.
#
# Environment: PHONE_USER, PHONE_PASS, PHONE_NAME (display name),
# REGISTRAR (the provider's domain, default 172.28.20.5), OUTBOUND (sipcti's
# inside address, default 172.28.10.2),
# ANSWER_MODE (auto, default: baresip answers at once; manual: it rings until
# the runner answers with `baresip-ctl accept`).
set -euo pipefail
: "${PHONE_USER:?}" "${PHONE_PASS:?}"
PHONE_NAME="${PHONE_NAME:-Phone $PHONE_USER}"
REGISTRAR="${REGISTRAR:-172.28.20.5}"
OUTBOUND="${OUTBOUND:-172.28.10.2}"
ANSWER_MODE="${ANSWER_MODE:-auto}"

# 1. This container's address on the phones network.
ip="$(ip -4 -o addr show scope global | awk '!ip { ip = $4; sub(/\/.*/, "", ip) } END { print ip }')"

# 2. baresip's config and account.
cfg=/tmp/baresip
mkdir -p "$cfg"
cat >"$cfg/config" <<CFG
poll_method epoll
sip_listen $ip:5060
call_local_timeout 60
audio_source ausine,440
audio_player aufile,none
ausrc_srate 48000
ausrc_channels 2
module_path /usr/lib/baresip/modules
module g711.so
module ausine.so
module_tmp account.so
module_app menu.so
module_app ctrl_tcp.so
ctrl_tcp_listen 127.0.0.1:4444
CFG
printf '"%s" <sip:%s@%s>;auth_pass=%s;answermode=%s;regint=300;audio_codecs=PCMU;outbound="sip:%s:5060;lr"\n' \
  "$PHONE_NAME" "$PHONE_USER" "$REGISTRAR" "$PHONE_PASS" "$ANSWER_MODE" "$OUTBOUND" >"$cfg/accounts"

# 3. baresip and the agent; the container ends when either does.
: >/tmp/baresip.log
baresip -f "$cfg" -s </dev/null >>/tmp/baresip.log 2>&1 &
tail -n +1 -F /tmp/baresip.log &
/lab/agent.sh "${AGENT_NAME:-phone$PHONE_USER}" &
wait -n
