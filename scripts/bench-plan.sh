#!/usr/bin/env bash
# `capstan plan --base HEAD~1 --head HEAD` and its read+parse floor (examples/floor.rs),
# side by side, alternating, on a packed synthetic monorepo (examples/synth.rs). Prints
# the median wall time and the peak RSS of each, and the ratio. Needs GNU time
# (/usr/bin/time, Debian package `time`).
#
#     scripts/bench-plan.sh [PROJECTS ENVIRONMENTS PACKAGES]     # default 1000 4 10
#     RUNS=9 scripts/bench-plan.sh 2000 4 10
set -euo pipefail
cd "$(dirname "$0")/.."

projects=${1:-1000} environments=${2:-4} packages=${3:-10}
runs=${RUNS:-5}
target=${CARGO_TARGET_DIR:-target}
repo="$target/bench-synth-$projects-$environments-$packages"

cargo build --quiet --release --bin capstan --example floor --example synth
if [ ! -d "$repo" ]; then
  "$target/release/examples/synth" "$repo" "$projects" "$environments" "$packages" > /dev/null
fi

measure() {
  # prints "seconds kib"
  /usr/bin/time -f '%e %M' "$@" 2>&1 > /dev/null | tail -1
}

plan=() floor=() plan_kib=0 floor_kib=0
for _ in $(seq "$runs"); do
  read -r s k < <(measure "$target/release/examples/floor" "$repo")
  floor+=("$s"); (( k > floor_kib )) && floor_kib=$k
  read -r s k < <(measure "$target/release/capstan" plan --repo "$repo" --base HEAD~1 --head HEAD)
  plan+=("$s"); (( k > plan_kib )) && plan_kib=$k
done

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
p=$(median "${plan[@]}") f=$(median "${floor[@]}")
instances=$((projects * environments * packages))
echo "$instances instances ($projects x $environments x $packages), $runs runs each, $(nproc) cores"
printf 'capstan plan --base HEAD~1 --head HEAD   %6.2f s   %4d MiB\n' "$p" $((plan_kib / 1024))
printf 'floor (read + parse both revisions)      %6.2f s   %4d MiB\n' "$f" $((floor_kib / 1024))
awk -v p="$p" -v f="$f" 'BEGIN { printf "ratio                                     %5.1fx\n", p / f }'
