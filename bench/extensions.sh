#!/usr/bin/env bash
# Install time of extension profiles through sindri, compared with the same apt
# packages installed by one hand-written `apt-get install` line, in the same image
# (sindri-test/debian:bookworm, built locally by .ci/images/debian/build.sh: no
# registry is needed, Debian's mirrors are).
#
#   bench/extensions.sh                          # profiles `minimal` and `shell`, 3 rounds
#   PROFILES=shell ROUNDS=5 bench/extensions.sh
#
# Both sides start from a fresh container and run `apt-get update` first; sindri's side
# is everything its installer does (probe, environment files, batched apt per wave,
# hooks, validation, markers, state), timed inside the process from the first exec to
# the last. The hand-written side is timed around one `docker exec`. A warm-up run of
# the hand-written line goes first so both sides meet the same (possibly cached)
# mirror, and the two sides alternate which goes first from round to round. Only
# profiles made of apt steps alone are accepted (anything else would not be the same
# work). Prints a Markdown table: every round, the means and medians, and their
# ratios (sindri / hand-written). Both sides download from Debian's mirrors, so rounds
# vary with the mirror: compare the ratio over several rounds, not one.
set -euo pipefail
cd "$(dirname "$0")/.."

PROFILES=${PROFILES:-${PROFILE:-minimal shell}}
ROUNDS=${ROUNDS:-3}
IMAGE=${IMAGE:-sindri-test/debian:bookworm}
[ "$ROUNDS" -ge 1 ] || { echo "ROUNDS must be at least 1" >&2; exit 2; }

command -v docker >/dev/null || { echo "bench/extensions.sh needs docker" >&2; exit 1; }
.ci/images/debian/build.sh
cargo build -q -p sindri-extensions --example install
EX=target/debug/examples/install

cids=()
cleanup() {
    [ "${#cids[@]}" -eq 0 ] || docker rm -f "${cids[@]}" >/dev/null 2>&1 || true
    # Environments of the sindri side left by an interrupted run (named bench-ext-PID).
    docker ps -a --filter label=sindri.managed=true --format '{{.ID}} {{.Label "sindri.environment"}}' |
        awk '$2 ~ /^bench-ext-/ {print $1}' | xargs -r docker rm -f -v >/dev/null 2>&1 || true
    docker network ls --filter label=sindri.managed=true --format '{{.ID}} {{.Label "sindri.environment"}}' |
        awk '$2 ~ /^bench-ext-/ {print $1}' | xargs -r docker network rm >/dev/null 2>&1 || true
    docker volume ls --filter label=sindri.managed=true --format '{{.Name}} {{.Label "sindri.environment"}}' |
        awk '$2 ~ /^bench-ext-/ {print $1}' | xargs -r docker volume rm -f >/dev/null 2>&1 || true
}
trap cleanup EXIT

now_ms() { date +%s%3N; }

median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : int((v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }

hand() { # $1: packages. One fresh container, one apt-get line; prints milliseconds.
    local cid start end
    cid=$(docker run -d --label sindri.bench=extensions --init "$IMAGE" sleep infinity)
    cids+=("$cid")
    start=$(now_ms)
    docker exec -e DEBIAN_FRONTEND=noninteractive "$cid" sh -c \
        "apt-get update -q && apt-get install -y -q --no-install-recommends $1" >/dev/null
    end=$(now_ms)
    docker rm -f "$cid" >/dev/null
    echo $((end - start))
}

with_sindri() { # $1: profile; prints milliseconds
    local out
    out=$("$EX" --image "$IMAGE" --profile "$1")
    sed -n 's/^install_millis=//p' <<<"$out"
}

rows=()
summary=()
for profile in $PROFILES; do
    pkgs=$("$EX" --profile "$profile" --print-apt)
    n=$(wc -w <<<"$pkgs")
    echo "profile $profile: $n apt packages: $pkgs" >&2
    echo "warm-up (not measured): $(hand "$pkgs") ms" >&2
    hand_total=0
    sindri_total=0
    hs=()
    ss=()
    for r in $(seq 1 "$ROUNDS"); do
        if [ $((r % 2)) -eq 1 ]; then
            h=$(hand "$pkgs"); s=$(with_sindri "$profile")
        else
            s=$(with_sindri "$profile"); h=$(hand "$pkgs")
        fi
        echo "  round $r: hand-written ${h} ms, sindri ${s} ms" >&2
        rows+=("| $profile | $r | $h | $s | $(awk -v s="$s" -v h="$h" 'BEGIN { printf "%.2f", s / h }') |")
        hand_total=$((hand_total + h))
        sindri_total=$((sindri_total + s))
        hs+=("$h")
        ss+=("$s")
    done
    hand_mean=$((hand_total / ROUNDS))
    sindri_mean=$((sindri_total / ROUNDS))
    ratio=$(awk -v s="$sindri_mean" -v h="$hand_mean" 'BEGIN { printf "%.2f", s / h }')
    hand_med=$(median "${hs[@]}")
    sindri_med=$(median "${ss[@]}")
    ratio_med=$(awk -v s="$sindri_med" -v h="$hand_med" 'BEGIN { printf "%.2f", s / h }')
    summary+=("| $profile | $n | $hand_mean | $sindri_mean | $ratio | $hand_med | $sindri_med | $ratio_med |")
done

echo
echo "## Extension install time vs one hand-written apt-get line ($IMAGE, $ROUNDS rounds)"
echo
echo "| profile | round | hand-written apt-get (ms) | sindri (ms) | ratio |"
echo "|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
echo
echo "| profile | apt packages | hand-written mean (ms) | sindri mean (ms) | ratio of means | hand-written median (ms) | sindri median (ms) | ratio of medians |"
echo "|---|---|---|---|---|---|---|---|"
printf '%s\n' "${summary[@]}"
