#!/bin/sh
# Simulates deploying an Amazon EKS cluster on the local machine (docs/deploying.md).
# The file $cloud/<instance>.json stands for the cloud resource: its id is generated on
# the first deploy and kept by every later one (a deploy may run again after a crash, so
# it must be idempotent), and it records the params and the connection data it was made
# with, which is how artifacts are seen flowing between projects. The artifacts go to
# $CAPSTAN_ARTIFACTS as {field: data}.
set -eu
cloud="${CAPSTAN_CLOUD_DIR:-${CAPSTAN_STATE_DIR:-${TMPDIR:-/tmp}}/cloud}"
mkdir -p "$cloud"
res="$cloud/$CAPSTAN_INSTANCE"
[ -s "$res.id" ] || printf 'eks-%s\n' "$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')" > "$res.id"
id=$(cat "$res.id")
# A param of the pretty-printed params.json, one key per line.
param() { sed -n "s/^  \"$1\": \"\{0,1\}\([^\",]*\)\"\{0,1\},\{0,1\}$/\1/p" params.json; }
{
  printf '{"id": "%s", "type": "aws-eks-cluster",\n"params": ' "$id"
  cat params.json
  printf ',\n"connections": '
  cat connections.json
  printf '}\n'
} > "$res.json.tmp"
mv "$res.json.tmp" "$res.json"
version=$(param version)
[ -s "$res.token" ] || od -An -N16 -tx1 /dev/urandom | tr -d ' \n' > "$res.token"
token=$(cat "$res.token")
printf '{"cluster": {"name": "%s", "endpoint": "https://%s.eks.local", "version": "%s", "token": "%s"}}\n' \
  "$CAPSTAN_INSTANCE" "$id" "$version" "$token" > "$CAPSTAN_ARTIFACTS"
echo "EKS cluster $id (Kubernetes $version) is up for $CAPSTAN_INSTANCE"
