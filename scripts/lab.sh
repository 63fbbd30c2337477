#!/usr/bin/env bash
# The Docker lab's test from nothing (README "Docker lab"): make the local
# base image (if missing), build sipcti on the host, build the lab's images,
# run the calls (docker/compose.yaml; the runner's exit code is the result),
# check that `sipcti replay` of the capture gives the events Zammad got, and
# tear everything down again.
#
#   scripts/lab.sh                 # the whole test; removes what it made
#   scripts/lab.sh --keep-images   # keep the images (a second run skips the builds' work)
#
# Needs root (debootstrap), a Docker engine with Compose (`docker compose`
# or docker-compose v1) and the Rust toolchain; no registry. Removes only
# what the lab made: the compose project's containers, networks and volume,
# and the images labelled sipcti-lab=1. Results stay in docker/lab/results
# (LAB_RESULTS): runner.log, zammad-log.json, lab.pcap, replay.jsonl, ...
set -euo pipefail
cd "$(dirname "$0")/.."

keep_images=0
case "${1:-}" in
  --keep-images) keep_images=1 ;;
  "") ;;
  *) echo "usage: $0 [--keep-images]" >&2; exit 2 ;;
esac

# The lab's images are built from the local base, with the host's binary.
export LAB_BASE=sipcti-lab/debian:bookworm
export LAB_RUST_IMAGE="$LAB_BASE"
export LAB_PREBUILT=1
export LAB_RESULTS="${LAB_RESULTS:-$PWD/docker/lab/results}"
# a real Zammad from the caller's environment would fail the runner's
# checks of the double's log: the test always uses the double
unset SIPCTI_ZAMMAD_URL
PROJECT=sipcti-lab

# Compose v2 plugin or v1.
if docker compose version >/dev/null 2>&1; then
  compose() { docker compose -p "$PROJECT" -f docker/compose.yaml "$@"; }
elif command -v docker-compose >/dev/null 2>&1; then
  compose() { docker-compose -p "$PROJECT" -f docker/compose.yaml "$@"; }
else
  echo "lab: needs Docker Compose (docker compose or docker-compose)" >&2
  exit 1
fi

t0=$(date +%s)
timing=""
lap() { # lap NAME: record how long the step since the last lap took
  local now
  now=$(date +%s)
  timing="$timing  $1: $((now - t_lap)) s\n"
  t_lap=$now
}
t_lap=$t0

# Tear down on every exit: the project's containers, networks and volume;
# the untagged images labelled sipcti-lab=1 (build stages derived from the
# base, images a rebuild replaced); unless --keep-images, also the tagged
# ones and the base.
teardown() {
  compose down --volumes --remove-orphans >/dev/null 2>&1 || true
  if [ "$keep_images" = 0 ]; then
    docker image rm sipcti-lab/sipcti:latest sipcti-lab/tools:latest "$LAB_BASE" >/dev/null 2>&1 || true
  fi
  # untagged lab images (build stages, images a rebuild replaced)
  docker image prune -f --filter label=sipcti-lab=1 >/dev/null 2>&1 || true
}
trap teardown EXIT

# 1. The base image (debootstrap; skipped when it exists).
if ! command -v debootstrap >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null
fi
docker/local-base-image.sh
lap "base image"

# 2. sipcti on the host; the image takes a copy without debug info
#    (target/docker/sipcti: 88 MB -> 11 MB), the build keeps its own.
cargo build --release -p sipcti-proxy
mkdir -p target/docker
if command -v strip >/dev/null 2>&1; then
  strip -o target/docker/sipcti target/release/sipcti
else
  cp target/release/sipcti target/docker/sipcti
fi
lap "cargo build --release"

# 3. The lab's images.
build_log="$(mktemp /tmp/sipcti-lab-build.XXXXXX)"
compose build >"$build_log" 2>&1 || {
  tail -n 40 "$build_log" >&2
  echo "lab: compose build failed (log: $build_log)" >&2
  exit 1
}
rm -f "$build_log"
lap "compose build"

# 4. The calls: the runner's exit code is the lab's result. The whole
#    compose output (every container's log) goes to results/compose.log.
rm -rf "$LAB_RESULTS"
mkdir -p "$LAB_RESULTS"
rc=0
compose up --abort-on-container-exit --exit-code-from runner >"$LAB_RESULTS/compose.log" 2>&1 || rc=$?
lap "calls (compose up)"
cat "$LAB_RESULTS/runner.log" 2>/dev/null || tail -n 60 "$LAB_RESULTS/compose.log"
if [ "$rc" != 0 ]; then
  echo "lab: the runner failed (exit $rc); every container's log: $LAB_RESULTS/compose.log"
  grep -E '^sipcti' "$LAB_RESULTS/compose.log" | tail -n 40 || true
  exit 1
fi

# 5. The capture through `sipcti replay`, compared with what Zammad got.
docker run --rm -v "$LAB_RESULTS:/results" \
  -v "$PWD/docker/lab/sipcti.toml:/etc/sipcti/sipcti.toml:ro" \
  sipcti-lab/sipcti:latest replay /results/lab.pcap --config /etc/sipcti/sipcti.toml \
  >"$LAB_RESULTS/replay.jsonl"
docker run --rm -v "$LAB_RESULTS:/results" sipcti-lab/tools:latest /lab/replay-check.sh /results
lap "replay check"

echo "lab: PASS in $(($(date +%s) - t0)) s"
printf "%b" "$timing"
