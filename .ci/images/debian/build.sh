#!/usr/bin/env bash
# Builds sindri-test/debian:bookworm, a minimal Debian 12 root file system imported as
# a Docker image, for the extension tests and bench/extensions.sh (there is no
# registry here, so `debian:bookworm` cannot be pulled).
#
#   debootstrap --variant=minbase bookworm <dir> http://deb.debian.org/debian
#   tar -C <dir> -c . | docker import - sindri-test/debian:bookworm
#
# Idempotent: exits at once when the image exists with the current version label.
# Safe to run concurrently (tests call it from parallel processes): a lock serialises
# the builds. Needs root (debootstrap) and Debian's mirrors; SINDRI_DEBIAN_MIRROR
# overrides the mirror.
set -euo pipefail

VERSION=2
IMAGE=sindri-test/debian:bookworm
LABEL=sindri.test-image-version
MIRROR=${SINDRI_DEBIAN_MIRROR:-http://deb.debian.org/debian}

image_current() {
    [ "$(docker image inspect --format "{{ index .Config.Labels \"$LABEL\" }}" "$IMAGE" 2>/dev/null)" = "$VERSION" ]
}

if image_current; then
    exit 0
fi

if ! docker info >/dev/null 2>&1; then
    echo "debian/build.sh: the Docker daemon is not reachable; start it (sudo systemctl start docker)" >&2
    exit 1
fi
if ! command -v debootstrap >/dev/null 2>&1; then
    echo "debian/build.sh: debootstrap is missing; install it: sudo apt-get install -y debootstrap" >&2
    exit 1
fi
if [ "$(id -u)" != 0 ]; then
    echo "debian/build.sh: debootstrap needs root; run: sudo $0" >&2
    exit 1
fi

lock_dir=${XDG_RUNTIME_DIR:-/tmp}
exec 9>"$lock_dir/sindri-test-debian.lock"
flock 9
# Another process may have built it while this one waited for the lock.
if image_current; then
    exit 0
fi

root=$(mktemp -d /var/tmp/sindri-debian.XXXXXX)
cleanup() { rm -rf --one-file-system "$root"; }
trap cleanup EXIT

echo "debian/build.sh: debootstrap bookworm from $MIRROR (a few minutes)" >&2
if ! debootstrap --variant=minbase bookworm "$root" "$MIRROR" >"$root.log" 2>&1; then
    tail -n 30 "$root.log" >&2
    echo "debian/build.sh: debootstrap failed (full log: $root.log)" >&2
    exit 1
fi
rm -f "$root.log"

# An image is not a booted system: keep services from starting during apt installs
# and drop the package lists (sindri's installer runs `apt-get update` itself), as
# Debian's official image does. apt's settings are otherwise left as debootstrap
# wrote them, so installs behave as on a stock Debian.
cat >"$root/usr/sbin/policy-rc.d" <<'POLICY'
#!/bin/sh
exit 101
POLICY
chmod 0755 "$root/usr/sbin/policy-rc.d"
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
# docker writes /etc/hostname, /etc/hosts and /etc/resolv.conf at run time.
: >"$root/etc/resolv.conf"

tar --numeric-owner -C "$root" -c . | docker import \
    --change "LABEL $LABEL=$VERSION" \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["/bin/bash"]' \
    - "$IMAGE" >/dev/null
echo "built $IMAGE"
