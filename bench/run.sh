#!/usr/bin/env bash
# Whole-command benchmarks, printed as a table. Ratios are measured side by side in one
# run on this machine; medians of repeated runs (hyperfine).
#
#   bench/run.sh            everything
#   bench/run.sh cli        only --version / config validate / plan and the binary size
#   bench/run.sh docker     only deploy/destroy/status against bare docker
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
what=${1:-all}
command -v hyperfine >/dev/null || { apt-get update -qq && apt-get install -y -qq hyperfine >/dev/null; }
[ -x .ci/images/build.sh ] && .ci/images/build.sh >/dev/null

cargo build --release --quiet -p sindri
S="$root/target/release/sindri"
# A fixed directory: the project id (part of every label) stays the same between runs,
# so a run interrupted half way is cleaned up by the next one.
work="$root/target/bench-work"
mkdir -p "$work"
export SINDRI_STATE_DIR="$work/state"
cp bench/fixtures/realistic.yaml "$work/sindri.yaml"
cd "$work"

median() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); [print(r["command"], "\t", "%.2f" % (r["median"]*1000)) for r in d["results"]]' "$1"; }

if [ "$what" = all ] || [ "$what" = cli ]; then
    hyperfine -N --warmup 10 --runs 100 --export-json cli.json \
        -n "sindri --version" "$S --version" \
        -n "sindri config validate" "$S config validate" \
        -n "sindri plan" "$S plan" >/dev/null
    echo "## CLI (median wall time, ms)"
    echo
    echo "| command | median ms |"
    echo "|---|---|"
    median cli.json | while IFS=$'\t' read -r name ms; do echo "| $name | $ms |"; done
    size=$(stat -c %s "$S")
    echo "| release binary size | $(python3 -c "print(f'{$size/1048576:.1f} MiB ({$size/1e6:.1f} MB)')") |"
    echo
fi

if [ "$what" = all ] || [ "$what" = docker ]; then
    img=sindri-test/busybox:latest
    cat > sindri.yaml <<YAML
name: bench-docker
deployment:
  provider: docker
  image: "$img"
YAML
    raw=sindri-bench-raw
    cleanup_raw="docker rm -f $raw >/dev/null 2>&1 || true; docker volume rm -f $raw-home >/dev/null 2>&1 || true; docker network rm $raw >/dev/null 2>&1 || true"
    keepalive="sh -c 'trap \"exit 0\" TERM; while :; do sleep 3600 & wait \$!; done'"
    cleanup_sindri="$S destroy --volumes --yes >/dev/null 2>&1; true"
    # Deploy-to-ready: sindri waits until an exec succeeds; the bare baseline is
    # `docker run -d` (returns once started) followed by the same readiness exec. The
    # second baseline does what sindri does: its own network (the engine takes ~60 ms
    # to create one, and starting a container on it costs more than on the default bridge).
    hyperfine --runs 15 --export-json deploy.json \
        --prepare "$cleanup_raw" -n "docker run -d + exec true" \
        "docker run -d --init --name $raw -v $raw-home:/root $img $keepalive >/dev/null && docker exec $raw true" \
        --prepare "$cleanup_raw" -n "docker network create + run -d --network + exec true" \
        "docker network create $raw >/dev/null && docker run -d --init --name $raw --network $raw -v $raw-home:/root $img $keepalive >/dev/null && docker exec $raw true" \
        --prepare "$cleanup_sindri" -n "sindri deploy" "$S -q deploy" >/dev/null
    # The last timed runs leave their containers: start the status round from both fresh.
    eval "$cleanup_raw"; eval "$cleanup_sindri"
    "$S" -q deploy >/dev/null
    docker run -d --init --name $raw -v $raw-home:/root $img sh -c 'sleep 3600' >/dev/null
    hyperfine -N --warmup 3 --runs 30 --export-json status.json \
        -n "docker inspect" "docker inspect $raw" \
        -n "sindri status" "$S status" \
        -n "sindri deploy (unchanged)" "$S -q deploy" >/dev/null
    eval "$cleanup_raw"
    hyperfine --runs 15 --export-json destroy.json \
        --prepare "docker run -d --init --name $raw -v $raw-home:/root $img sh -c 'sleep 3600' >/dev/null 2>&1 || true" -n "docker rm -f + volume rm" \
        "docker rm -f $raw >/dev/null && docker volume rm $raw-home >/dev/null" \
        --prepare "$cleanup_raw; docker network create $raw >/dev/null && docker run -d --init --name $raw --network $raw -v $raw-home:/root $img sh -c 'sleep 3600' >/dev/null" -n "docker rm -f + volume rm + network rm" \
        "docker rm -f $raw >/dev/null && docker volume rm $raw-home >/dev/null && docker network rm $raw >/dev/null" \
        --prepare "$S -q deploy >/dev/null" -n "sindri destroy --volumes" "$S -q destroy --volumes --yes" >/dev/null
    eval "$cleanup_raw"; eval "$cleanup_sindri"
    echo "## Docker provider vs bare docker (median wall time, ms)"
    echo
    python3 - deploy.json status.json destroy.json <<'PY'
import json, sys
rows = []
for f in sys.argv[1:]:
    rows += [(r["command"], r["median"] * 1000) for r in json.load(open(f))["results"]]
d = dict(rows)
print("| command | median ms |")
print("|---|---|")
for name, ms in rows:
    print(f"| {name} | {ms:.1f} |")
print()
print("| ratio | value |")
print("|---|---|")
print(f"| sindri deploy / (docker run -d + exec) | {d['sindri deploy'] / d['docker run -d + exec true']:.2f} |")
print(f"| sindri deploy / (network create + run -d --network + exec) | {d['sindri deploy'] / d['docker network create + run -d --network + exec true']:.2f} |")
print(f"| sindri destroy --volumes / (docker rm -f + volume rm) | {d['sindri destroy --volumes'] / d['docker rm -f + volume rm']:.2f} |")
print(f"| sindri destroy --volumes / (rm -f + volume rm + network rm) | {d['sindri destroy --volumes'] / d['docker rm -f + volume rm + network rm']:.2f} |")
print(f"| sindri status / docker inspect | {d['sindri status'] / d['docker inspect']:.2f} |")
PY
fi
