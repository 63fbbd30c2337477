#!/usr/bin/env bash
# Build the fuzz targets in fuzz/ on the stable toolchain (libfuzzer-sys with
# sanitizer-coverage flags, no nightly, no cargo-fuzz) and run each for
# SECONDS seconds, seeded from ../shared/corpus (SIP torture messages) and
# fixtures/captures (pcaps). Exits non-zero on any crash, on a build failure,
# and when ../shared/corpus is missing.
#
#   scripts/fuzz.sh SECONDS [TARGET...]     (targets: wire capture core)
#
# Crash inputs are kept in fuzz/artifacts/TARGET/; reproduce one with
#   fuzz/target/x86_64-unknown-linux-gnu/release/TARGET fuzz/artifacts/TARGET/crash-...
# Needs a C++ compiler (libfuzzer-sys builds libFuzzer): apt-get install -y g++
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
secs=${1:?usage: scripts/fuzz.sh SECONDS [TARGET...]}
shift
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(wire capture core)
corpus="$root/../shared/corpus"
if [ ! -d "$corpus/rfc4475" ] || [ ! -d "$corpus/rfc5118" ]; then
  echo "scripts/fuzz.sh: FAILED: the seed corpus $corpus (rfc4475/, rfc5118/) is missing" >&2
  exit 1
fi
command -v c++ >/dev/null 2>&1 || { echo "scripts/fuzz.sh: FAILED: no C++ compiler (apt-get install -y g++)" >&2; exit 1; }

triple=$(rustc -vV | sed -n 's/^host: //p')
# --target keeps RUSTFLAGS off build scripts and proc macros.
export RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table -Cllvm-args=-sanitizer-coverage-trace-compares"
(cd fuzz && cargo build --release --locked --target "$triple" --bins)
bin="$root/fuzz/target/$triple/release"

work=$(mktemp -d "${TMPDIR:-/tmp}/sipcti-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT

# Seeds are copied at run time, never committed.
mkdir -p "$work/wire" "$work/capture" "$work/core"
# u16 big-endian as two \x escapes
be16() { printf '\\x%02x\\x%02x' $(( $1 >> 8 & 255 )) $(( $1 & 255 )); }
n=0
for f in "$corpus"/rfc4475/*.dat "$corpus"/rfc5118/*; do
  [ -f "$f" ] || continue
  case "$f" in *.md) continue ;; esac
  n=$((n + 1))
  name="$(basename "$(dirname "$f")")-$(basename "$f")"
  cp "$f" "$work/wire/$name"
  # core op script (fuzz/src/lib.rs, mod op): RAW from a phone over UDP, RAW from
  # the trunk over UDP, then ADVANCE 2.56 s
  len=$(stat -c %s "$f")
  [ "$len" -gt 65535 ] && continue
  { printf "\\x01\\x00\\x00$(be16 "$len")"; cat "$f";
    printf "\\x01\\x02\\x00$(be16 "$len")"; cat "$f";
    printf '\x02\x01\x00'; } > "$work/core/$name"
done
[ "$n" -gt 0 ] || { echo "scripts/fuzz.sh: FAILED: no messages in $corpus" >&2; exit 1; }
for p in fixtures/captures/*/capture.pcap; do
  [ -f "$p" ] && cp "$p" "$work/capture/$(basename "$(dirname "$p")").pcap"
done
# core: whole calls (op bytes as in fuzz/src/lib.rs): INVITE (seed 0 from a phone,
# seed 1 from the trunk), newCall continue, 180 and 200 from where it went, ACK,
# 1 s, BYE, 200, 2 s; a CANCEL; a transport error.
printf '\x00\x00\x01\x00\x00\x03\x00\x00\x05\x00\x01\x04\x00\x05\x00\x03\x04\x00\x00\x02\x01\x00\x00\x02\x00\x64\x00\x03\x01\x00\x00\x05\x01\x03\x04\x00\x02\x00\xc8' > "$work/core/call-out"
printf '\x00\x01\x01\x02\x00\x03\x00\x00\x05\x00\x01\x04\x00\x05\x00\x03\x04\x00\x00\x02\x01\x02\x00\x02\x00\x64\x00\x03\x01\x02\x00\x05\x01\x03\x04\x00\x02\x00\xc8' > "$work/core/call-in"
printf '\x00\x00\x02\x00\x00\x03\x00\x01\x05\x00\x01\x04\x00\x00\x04\x02\x00\x00\x02\x02\x00' > "$work/core/cancel"
printf '\x00\x00\x03\x00\x01\x03\x00\x03\x04\x00\x02\x04\x00' > "$work/core/transport-error"

status=0
for t in "${targets[@]}"; do
  mkdir -p "fuzz/artifacts/$t" "$work/$t"
  echo "=== fuzz $t for ${secs}s ($(ls "$work/$t" | wc -l) seeds)"
  start=$(date +%s)
  if "$bin/$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
      -print_final_stats=1 -artifact_prefix="fuzz/artifacts/$t/" \
      "$work/$t" > "$work/$t.log" 2>&1; then
    echo "fuzz $t: ok ($(( $(date +%s) - start ))s, $(grep -o 'stat::number_of_executed_units: *[0-9]*' "$work/$t.log" | grep -o '[0-9]*$') runs)"
  else
    status=1
    echo "fuzz $t: FAILED, crash input in fuzz/artifacts/$t/:" >&2
    grep -E -A25 "panicked at|ERROR: libFuzzer|SUMMARY" "$work/$t.log" | head -60 >&2 || tail -40 "$work/$t.log" >&2
  fi
done
exit $status
