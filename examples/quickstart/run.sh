#!/usr/bin/env bash
# The main job on a fresh machine with Docker and no registry: build sindri, deploy
# this environment, run a command in it, show its status, and destroy it.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
if ! dpkg -s busybox-static >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq busybox-static >/dev/null
fi
cp "$(command -v busybox)" "$here/busybox"
cargo build --release --quiet --manifest-path "$root/Cargo.toml" -p sindri
sindri="$root/target/release/sindri"
cd "$here"
"$sindri" deploy
"$sindri" exec -- sh -c 'echo "$GREETING: $(uname -sr)"'
"$sindri" status
"$sindri" destroy --volumes --yes
