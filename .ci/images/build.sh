#!/usr/bin/env bash
# Builds the local images the Docker provider's tests run (there is no registry here,
# so nothing can be pulled):
#
#   sindri-test/busybox:latest  busybox applets + a static bash at /bin/bash
#   sindri-test/busybox:nobash  the same without bash, to test the `sh` fallback
#
# Both are FROM scratch, built from Debian's statically linked busybox-static and
# bash-static (installed with apt when missing). Idempotent and fast when the images
# already exist: they carry a version label and are rebuilt only when it changes.
# Safe to run concurrently (tests call it from parallel processes): a lock serialises
# the builds.
set -euo pipefail

VERSION=2
REPO=sindri-test/busybox
LABEL=sindri.test-image-version

image_current() {
    [ "$(docker image inspect --format "{{ index .Config.Labels \"$LABEL\" }}" "$1" 2>/dev/null)" = "$VERSION" ]
}

if image_current "$REPO:latest" && image_current "$REPO:nobash"; then
    exit 0
fi

if ! docker info >/dev/null 2>&1; then
    echo "build.sh: the Docker daemon is not reachable; start it (sudo systemctl start docker)" >&2
    exit 1
fi

lock_dir=${XDG_RUNTIME_DIR:-/tmp}
exec 9>"$lock_dir/sindri-test-images.lock"
flock 9
# Another process may have built them while this one waited for the lock.
if image_current "$REPO:latest" && image_current "$REPO:nobash"; then
    exit 0
fi

missing=()
[ -x /bin/busybox ] && /bin/busybox --list >/dev/null 2>&1 || missing+=(busybox-static)
[ -x /bin/bash-static ] || missing+=(bash-static)
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "build.sh: missing Debian packages: ${missing[*]}; install them: sudo apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 || {
        apt-get update -qq
        apt-get install -y -qq "${missing[@]}" >/dev/null
    }
fi
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT

make_rootfs() { # $1: rootfs dir, $2: with bash (yes/no)
    local root=$1
    mkdir -p "$root/bin" "$root/tmp" "$root/root" "$root/etc" "$root/run" "$root/home"
    chmod 1777 "$root/tmp"
    chmod 0700 "$root/root"
    cp /bin/busybox "$root/bin/busybox"
    local applet
    for applet in $(/bin/busybox --list); do
        [ "$applet" = busybox ] && continue
        ln -sf busybox "$root/bin/$applet"
    done
    for applet in sh sleep echo cat ls tar env true false id mkdir rm; do
        [ -L "$root/bin/$applet" ] || { echo "build.sh: busybox lacks the $applet applet" >&2; exit 1; }
    done
    if [ "$2" = yes ]; then
        cp /bin/bash-static "$root/bin/bash"
    fi
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/sh\n' >"$root/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
}

build() { # $1: tag, $2: with bash
    local dir="$ctx/$1"
    mkdir -p "$dir"
    make_rootfs "$dir/rootfs" "$2"
    cat >"$dir/Dockerfile" <<DOCKERFILE
FROM scratch
COPY rootfs/ /
ENV PATH=/bin
LABEL $LABEL=$VERSION
CMD ["/bin/sh"]
DOCKERFILE
    # The classic builder needs no buildx plugin; its deprecation notice is noise here.
    if ! DOCKER_BUILDKIT=0 docker build -q -t "$REPO:$1" "$dir" >"$ctx/build.log" 2>&1; then
        cat "$ctx/build.log" >&2
        exit 1
    fi
    echo "built $REPO:$1"
}

build latest yes
build nobash no
