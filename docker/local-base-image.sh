#!/usr/bin/env bash
# Make the Docker lab's base image without a registry: a minimal Debian
# bookworm root made by debootstrap from the mirror apt already uses, loaded
# with `docker import` and tagged so that the lab's Dockerfiles find it as
# their BASE build argument (docker/Dockerfile, docker/lab/Dockerfile).
#
#   docker/local-base-image.sh            # make it unless the tag exists
#   docker/local-base-image.sh --force    # make it again
#
# Environment: TAG (default sipcti-lab/debian:bookworm), MIRROR (default: the
# first bookworm main mirror in the host's apt sources, else
# http://deb.debian.org/debian). Needs root, debootstrap and a Docker engine.
# A user with a registry does not need this: the Dockerfiles default to
# debian:bookworm-slim and rust:1-bookworm.
#
# The image is labelled sipcti-lab=1 so that scripts/lab.sh removes only
# what the lab made. Nothing is cached outside the image: the root is built
# in a temporary directory that is removed at the end.
set -euo pipefail

TAG="${TAG:-sipcti-lab/debian:bookworm}"
force=0
case "${1:-}" in
  --force) force=1 ;;
  "") ;;
  *) echo "usage: $0 [--force]" >&2; exit 2 ;;
esac

# 1. Idempotent: an existing tag is kept unless --force.
if [ "$force" = 0 ] && docker image inspect "$TAG" >/dev/null 2>&1; then
  echo "local-base-image: $TAG exists (--force to make it again)"
  exit 0
fi

# 2. The mirror: the one apt uses on this host (deb822 or one-line sources),
#    so that a machine behind a local mirror or proxy uses it too.
detect_mirror() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -e "$f" ] || continue
    # a deb822 stanza naming suite bookworm: its first URI
    awk 'BEGIN{RS=""} /Suites:[^\n]*(^|[ \t])bookworm([ \t]|$|\n)/ && /Components:[^\n]*main/ {
           if (match($0, /URIs:[ \t]*[^ \t\n]+/)) { u=substr($0,RSTART,RLENGTH); sub(/URIs:[ \t]*/,"",u); print u; exit } }' "$f"
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -e "$f" ] || continue
    awk '$1=="deb" && $0 ~ / bookworm / && $0 ~ / main/ { for (i=2;i<=NF;i++) if ($i ~ /^https?:/) { print $i; exit } }' "$f"
  done
}
# (awk, not head: a reader that quits early would SIGPIPE the pipe)
MIRROR="${MIRROR:-$(detect_mirror | awk '!/-security/ && !m { m = $0 } END { print m }')}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"

if ! command -v debootstrap >/dev/null 2>&1; then
  echo "local-base-image: debootstrap is missing: apt-get install -y debootstrap" >&2
  exit 1
fi

# 3. debootstrap a minbase root (apt, dpkg, coreutils, bash: no init, no
#    systemd) plus ca-certificates, in a temporary directory.
work="$(mktemp -d /var/tmp/sipcti-lab-base.XXXXXX)"
trap 'rm -rf "$work"' EXIT
echo "local-base-image: debootstrap bookworm from $MIRROR"
start=$(date +%s)
debootstrap --variant=minbase --include=ca-certificates bookworm "$work/root" "$MIRROR" \
  >"$work/debootstrap.log" 2>&1 || {
  tail -n 30 "$work/debootstrap.log" >&2
  exit 1
}

# 4. Slim it like debian:bookworm-slim: no downloaded .debs, no package lists
#    (the Dockerfiles run apt-get update themselves), no man pages or docs.
rm -rf "$work/root"/var/cache/apt/archives/*.deb "$work/root"/var/lib/apt/lists/* \
  "$work/root"/usr/share/man/* "$work/root"/usr/share/doc/* "$work/root"/var/log/*.log
# later apt installs keep it small too
cat >"$work/root/etc/apt/apt.conf.d/90sipcti-lab" <<'EOF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
EOF
cat >"$work/root/etc/dpkg/dpkg.cfg.d/90sipcti-lab" <<'EOF'
path-exclude /usr/share/doc/*
path-exclude /usr/share/man/*
path-exclude /usr/share/locale/*
EOF

# 5. Load it into Docker, labelled as the lab's.
tar -C "$work/root" -c . | docker import \
  --change 'LABEL sipcti-lab=1' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["bash"]' \
  - "$TAG" >/dev/null
echo "local-base-image: $TAG made in $(($(date +%s) - start)) s ($(docker image inspect -f '{{.Size}}' "$TAG" | awk '{printf "%.0f MB", $1/1e6}'))"
