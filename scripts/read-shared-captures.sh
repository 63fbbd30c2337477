#!/usr/bin/env bash
# Reads every capture in ../shared/captures (real SIP traffic recorded elsewhere) with
# `sipcti replay --guess-sides` and prints per-file counts of SIP messages and calls.
# Fails if a capture cannot be read completely or the replay panics.
#
# Usage: scripts/read-shared-captures.sh [CAPTURES_DIR]
# The same check runs as a test: cargo test -p sipcti-proxy --test replay_shared_captures -- --nocapture
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${1:-$root/../shared/captures}"
if [ ! -d "$dir" ]; then
    echo "shared captures folder $dir is absent: nothing to read"
    exit 0
fi

cargo build --release -q -p sipcti-proxy --manifest-path "$root/Cargo.toml"
target="${CARGO_TARGET_DIR:-$(cargo metadata --format-version 1 --no-deps --manifest-path "$root/Cargo.toml" | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')}"
bin="$target/release/sipcti"

failed=0
shopt -s nullglob
printf '%-40s %s\n' file summary
for f in "$dir"/*; do
    case "$f" in *.md) continue ;; esac
    [ -f "$f" ] || continue
    set +e
    summary="$(SIPCTI_LOG=error "$bin" replay --guess-sides --format table "$f" 2>&1 >/dev/null)"
    rc=$?
    set -e
    line="$(printf '%s\n' "$summary" | grep '^replay: ' | head -1 | sed 's/^replay: 1 capture(s), //')"
    printf '%-40s %s\n' "$(basename "$f")" "$line"
    if [ "$rc" -ne 0 ]; then
        printf '%s\n' "$summary" | grep -v '^replay: [0-9]' >&2 || true
        echo "  -> exit code $rc" >&2
        failed=1
    fi
done
exit "$failed"
