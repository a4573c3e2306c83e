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
# The two VPC ids this peering joins, from connections.json.
vpcs=$(sed -n 's/^ *"id": "\(vpc-[0-9a-f]*\)",*$/\1/p' connections.json | tr '\n' ' ')
set -- $vpcs
printf '{"peering": {"id": "%s", "requester": "%s", "accepter": "%s"}}\n' \
  "$id" "${1:-unknown}" "${2:-unknown}" > "$CAPSTAN_ARTIFACTS"
echo "Peering $id joins ${1:-?} and ${2:-?} for $CAPSTAN_INSTANCE"
