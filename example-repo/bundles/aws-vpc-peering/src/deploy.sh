#!/bin/sh
# Simulates deploying an AWS VPC peering connection on the local machine (docs/deploying.md).
# The file $cloud/<instance>.json stands for the cloud resource: its id is generated on
# the first deploy and kept by every later one (a deploy may run again after a crash, so
# it must be idempotent), and it records the params and the connection data it was made
# with, which is how artifacts are seen flowing between projects. The artifacts go to
# $CAPSTAN_ARTIFACTS as {field: data}.
set -eu
cloud="${CAPSTAN_CLOUD_DIR:-${CAPSTAN_STATE_DIR:-${TMPDIR:-/tmp}}/cloud}"
mkdir -p "$cloud"
res="$cloud/$CAPSTAN_INSTANCE"
[ -s "$res.id" ] || printf 'pcx-%s\n' "$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')" > "$res.id"
id=$(cat "$res.id")
# A param of the pretty-printed params.json, one key per line.
param() { sed -n "s/^  \"$1\": \"\{0,1\}\([^\",]*\)\"\{0,1\},\{0,1\}$/\1/p" params.json; }
{
  printf '{"id": "%s", "type": "aws-vpc-peering",\n"params": ' "$id"
  cat params.json
  printf ',\n"connections": '
  cat connections.json
  printf '}\n'
} > "$res.json.tmp"
mv "$res.json.tmp" "$res.json"
# The VPC id of one connection of the pretty-printed connections.json (one top-level key per
# connection, its fields indented below it), by the connection's name: the file's keys are
# sorted, so their order says nothing about which VPC is which.
vpc_of() {
  awk -v want="$1" '
    /^  "[^"]*": / { split($0, k, "\""); key = k[2] }
    key == want && /^    "id": "vpc-/ { split($0, v, "\""); print v[4]; exit }
  ' connections.json
}
requester=$(vpc_of requester)
accepter=$(vpc_of accepter)
printf '{"peering": {"id": "%s", "requester": "%s", "accepter": "%s"}}\n' \
  "$id" "${requester:-unknown}" "${accepter:-unknown}" > "$CAPSTAN_ARTIFACTS"
echo "Peering $id joins ${requester:-?} (requester) and ${accepter:-?} (accepter) for $CAPSTAN_INSTANCE"
