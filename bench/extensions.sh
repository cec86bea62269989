#!/usr/bin/env bash
# Install time of an extension profile through sindri, compared with the same apt
# packages installed by one hand-written `apt-get install` line, in the same image
# (sindri-test/debian:bookworm, built by .ci/images/debian/build.sh).
#
#   bench/extensions.sh                 # profile `shell` (apt-only), 2 rounds
#   PROFILE=minimal ROUNDS=3 bench/extensions.sh
#
# Both sides start from a fresh container and run `apt-get update` first; sindri's side
# is everything its installer does (probe, env files, batched apt per wave, hooks,
# validation, markers, state). A warm-up run of the hand-written line goes first so
# both sides meet the same (possibly cached) mirror. Prints each round and the ratio
# sindri / hand-written of the means.
set -euo pipefail
cd "$(dirname "$0")/.."

PROFILE=${PROFILE:-shell}
ROUNDS=${ROUNDS:-2}
IMAGE=${IMAGE:-sindri-test/debian:bookworm}

.ci/images/debian/build.sh
cargo build -q -p sindri-extensions --example install
EX=target/debug/examples/install

pkgs=$("$EX" --profile "$PROFILE" --print-apt)
echo "profile $PROFILE: apt packages: $pkgs"

cids=()
cleanup() { [ "${#cids[@]}" -eq 0 ] || docker rm -f "${cids[@]}" >/dev/null 2>&1 || true; }
trap cleanup EXIT

now_ms() { date +%s%3N; }

hand() { # one fresh container, one apt-get line; prints milliseconds
    local cid start end
    cid=$(docker run -d --label sindri.bench=extensions --init "$IMAGE" sleep infinity)
    cids+=("$cid")
    start=$(now_ms)
    # $pkgs is a list of package names: word splitting is intended.
    docker exec -e DEBIAN_FRONTEND=noninteractive "$cid" sh -c \
        "apt-get update -q && apt-get install -y -q --no-install-recommends $pkgs" >/dev/null
    end=$(now_ms)
    docker rm -f "$cid" >/dev/null
    echo $((end - start))
}

sindri() { # prints milliseconds
    "$EX" --image "$IMAGE" --profile "$PROFILE" | sed -n 's/^install_millis=//p'
}

echo "warm-up (not measured): $(hand) ms"
hand_total=0
sindri_total=0
for r in $(seq 1 "$ROUNDS"); do
    h=$(hand)
    s=$(sindri)
    echo "round $r: hand-written apt-get ${h} ms, sindri ${s} ms"
    hand_total=$((hand_total + h))
    sindri_total=$((sindri_total + s))
done
hand_mean=$((hand_total / ROUNDS))
sindri_mean=$((sindri_total / ROUNDS))
ratio=$(awk -v s="$sindri_mean" -v h="$hand_mean" 'BEGIN { printf "%.2f", s / h }')
echo "mean: hand-written ${hand_mean} ms, sindri ${sindri_mean} ms"
echo "ratio sindri / hand-written: ${ratio}"
