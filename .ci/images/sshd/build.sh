#!/usr/bin/env bash
# Builds sindri-test/sshd:bookworm, the stand-in for a cloud instance in the run tests
# (crates/sindri-runs/tests/container_runs.rs): Debian 12 with OpenSSH's server (root
# logs in by key only), procps and tini, and `shutdown`/`poweroff`/`halt`/`reboot`
# stand-ins that record their call in /var/log/sindri-power.log and stop the
# container. FROM sindri-test/debian:bookworm, which ../debian/build.sh builds first
# when it is missing (there is no registry here); the packages come from Debian's
# mirrors through apt inside `docker build`.
#
# Idempotent: exits at once when the image exists with the current version label and
# was built on the current base image. Safe to run concurrently (tests call it from
# parallel processes): a lock serialises the builds.
set -euo pipefail

VERSION=1
IMAGE=sindri-test/sshd:bookworm
BASE=sindri-test/debian:bookworm
LABEL=sindri.test-image-version
BASE_LABEL=sindri.test-image-base
here=$(cd "$(dirname "$0")" && pwd)

label() { # $1: image, $2: label
    docker image inspect --format "{{ index .Config.Labels \"$2\" }}" "$1" 2>/dev/null
}

# The base first: a no-op when it is current; when it changes, this image follows.
"$here/../debian/build.sh"
base_id=$(docker image inspect --format '{{.Id}}' "$BASE")

image_current() {
    [ "$(label "$IMAGE" "$LABEL")" = "$VERSION" ] && [ "$(label "$IMAGE" "$BASE_LABEL")" = "$base_id" ]
}

if image_current; then
    exit 0
fi

lock_dir=${XDG_RUNTIME_DIR:-/tmp}
exec 9>"$lock_dir/sindri-test-sshd.lock"
flock 9
# Another process may have built it while this one waited for the lock.
if image_current; then
    exit 0
fi

old_id=$(docker image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
echo "sshd/build.sh: building $IMAGE (apt-get install openssh-server procps tini; a minute or two)" >&2
# The classic builder needs no buildx plugin; its deprecation notice is noise here.
if ! DOCKER_BUILDKIT=0 docker build -q \
    --label "$LABEL=$VERSION" --label "$BASE_LABEL=$base_id" \
    -t "$IMAGE" "$here" >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "sshd/build.sh: docker build failed (Debian's mirrors must be reachable from containers)" >&2
    exit 1
fi
# The image this one replaces would linger untagged; nothing else refers to it.
if [ -n "$old_id" ] && [ "$old_id" != "$(docker image inspect --format '{{.Id}}' "$IMAGE")" ]; then
    docker image rm "$old_id" >/dev/null 2>&1 || true
fi
echo "built $IMAGE"
