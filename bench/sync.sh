#!/usr/bin/env bash
# Workdir sync of a 10,000-file tree over SSH: sindri's first sync against
# `tar -c | ssh host tar -x` to the same loopback sshd, and what a re-run with one
# changed file sends, as a share of the first sync. Prints a Markdown table.
#
#   bench/sync.sh [--files N] [--runs R]
#
# Needs what the SSH tests need (.ci/setup): OpenSSH server and client, and moto
# (`pip install 'moto[server]'`), which answers the EC2 API for sindri's aws provider.
# Every byte on the SSH connection is counted by a relay in front of sshd; sindri's
# calls to the EC2 API (moto) are not on that connection and not counted.
#
# The harness is crates/sindri-runs/benches/sync_ssh.rs, built with the release
# profile's optimisation level (opt-level "s") but without its fat LTO, which would
# only make the build slower.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v ssh >/dev/null && [ -x /usr/sbin/sshd ] || {
    echo "needs OpenSSH (apt-get install -y openssh-server openssh-client; see .ci/setup)" >&2
    exit 1
}
python3 -c 'import moto' 2>/dev/null || {
    echo "needs moto (pip install 'moto[server]'; see .ci/setup)" >&2
    exit 1
}
export CARGO_PROFILE_BENCH_LTO=off CARGO_PROFILE_BENCH_CODEGEN_UNITS=16
# The tree, the "remote" home and the staged archives live in memory by default, so the
# numbers measure the sync rather than a disk shared with other work; set
# SINDRI_BENCH_TMPDIR to a disk directory to include it.
bench_tmp=${SINDRI_BENCH_TMPDIR:-/dev/shm}
if [ -d "$bench_tmp" ] && [ -w "$bench_tmp" ]; then export TMPDIR="$bench_tmp"; fi
exec cargo bench --quiet -p sindri-runs --bench sync_ssh -- "$@"
