#!/usr/bin/env bash
# `capstan apply` of a synthetic monorepo (examples/synth.rs) against running the same
# bundle scripts directly, side by side. Both run the example's `deploy.sh` of every
# instance once, 4 at a time (capstan's default `--parallel`, and `xargs -P4`):
#
# - capstan: a first deploy from an empty state (waves in order, params and connections
#   written per instance, logs scrubbed, the state recorded in SQLite);
# - direct: each script in a folder of its own with the same environment variables and a
#   params.json/connections.json, in no particular order: the floor any deployer of these
#   scripts pays.
#
# Prints the median wall time of each over RUNS runs (default 3) and the ratio.
#
#     scripts/bench-deploy.sh [PROJECTS ENVIRONMENTS PACKAGES]     # default 50 4 10: 2,000 instances
set -euo pipefail
cd "$(dirname "$0")/.."

projects=${1:-50} environments=${2:-4} packages=${3:-10}
runs=${RUNS:-3}
target=${CARGO_TARGET_DIR:-target}
repo="$target/bench-synth-$projects-$environments-$packages"
bundles="$PWD/example-repo/bundles"

cargo build --quiet --release --bin capstan --example synth
if [ ! -d "$repo" ]; then
  "$target/release/examples/synth" "$repo" "$projects" "$environments" "$packages" > /dev/null
fi

# instance<TAB>bundle for every instance of the generated repository (synth.rs: net, k8s, apps).
instances() {
  local apps=$((packages > 2 ? packages - 2 : 1))
  for ((p = 0; p < projects; p++)); do
    for ((e = 0; e < environments; e++)); do
      printf 'p%s-e%s-net\taws-vpc\n' "$p" "$e"
      printf 'p%s-e%s-k8s\taws-eks-cluster\n' "$p" "$e"
      for ((a = 0; a < apps; a++)); do printf 'p%s-e%s-app%s\tcontainer-app\n' "$p" "$e" "$a"; done
    done
  done
}

# One script, run as capstan runs it: in its own folder, inputs beside it, artifacts to a file.
direct_one() {
  local instance=$1 bundle=$2 root=$3
  local work="$root/work/$instance"
  mkdir -p "$work"
  printf '{\n  "region": "us-east-1",\n  "cidr": "10.0.0.0/16"\n}\n' > "$work/params.json"
  printf '{\n  "cluster": {\n    "endpoint": "https://k8s.invalid"\n  }\n}\n' > "$work/connections.json"
  (cd "$work" && CAPSTAN_INSTANCE="$instance" CAPSTAN_ARTIFACTS="$work/artifacts.json" \
    CAPSTAN_CLOUD_DIR="$root/cloud" sh "$bundles/$bundle/src/deploy.sh" > "$work/log" 2>&1)
}
export -f direct_one
export bundles

seconds() { date +%s.%N; }
since() { awk -v now="$(seconds)" -v then="$1" 'BEGIN { print now - then }'; }
capstan=() direct=() count=0
for _ in $(seq "$runs"); do
  tmp=$(mktemp -d)
  start=$(seconds)
  out=$("$target/release/capstan" apply --yes --repo "$repo" --state "$tmp/state/state.db")
  capstan+=("$(since "$start")")
  grep -q 'deployed' <<< "$out" || { echo "capstan apply did not deploy: $out" >&2; exit 1; }
  tail -1 <<< "$out" > "$tmp/summary"

  start=$(seconds)
  instances | xargs -P4 -L1 bash -c 'direct_one "$0" "$1" "'"$tmp/direct"'"'
  direct+=("$(since "$start")")
  count=$(find "$tmp/direct/cloud" -name '*.json' | wc -l)
  summary=$(cat "$tmp/summary")
  rm -rf "$tmp"
done

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
c=$(median "${capstan[@]}") d=$(median "${direct[@]}")
echo "$((projects * environments * (packages > 2 ? packages : 3))) instances ($projects x $environments x $packages), $runs runs each, $(nproc) cores"
echo "capstan: $summary"
echo "direct: $count scripts ran"
printf 'capstan apply --yes (first deploy)        %6.2f s\n' "$c"
printf 'the same scripts, xargs -P4                %6.2f s\n' "$d"
awk -v c="$c" -v d="$d" 'BEGIN { printf "ratio                                     %5.2fx\n", c / d }'
