#!/bin/sh
# Simulates deploying an Aurora PostgreSQL cluster on the local machine (docs/deploying.md).
# The file $cloud/<instance>.json stands for the cloud resource: its id is generated on
# the first deploy and kept by every later one (a deploy may run again after a crash, so
# it must be idempotent), and it records the params and the connection data it was made
# with, which is how artifacts are seen flowing between projects. The artifacts go to
# $CAPSTAN_ARTIFACTS as {field: data}.
set -eu
cloud="${CAPSTAN_CLOUD_DIR:-${CAPSTAN_STATE_DIR:-${TMPDIR:-/tmp}}/cloud}"
mkdir -p "$cloud"
res="$cloud/$CAPSTAN_INSTANCE"
[ -s "$res.id" ] || printf 'db-%s\n' "$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')" > "$res.id"
id=$(cat "$res.id")
# A param of the pretty-printed params.json, one key per line.
param() { sed -n "s/^  \"$1\": \"\{0,1\}\([^\",]*\)\"\{0,1\},\{0,1\}$/\1/p" params.json; }
{
  printf '{"id": "%s", "type": "aws-aurora-postgresql",\n"params": ' "$id"
  cat params.json
  printf ',\n"connections": '
  cat connections.json
  printf '}\n'
} > "$res.json.tmp"
mv "$res.json.tmp" "$res.json"
[ -s "$res.password" ] || od -An -N16 -tx1 /dev/urandom | tr -d ' \n' > "$res.password"
password=$(cat "$res.password")
printf '{"database": {"hostname": "%s.cluster.local", "port": 5432, "username": "app", "password": "%s"}}\n' \
  "$id" "$password" > "$CAPSTAN_ARTIFACTS"
# Printing the password is on purpose: the log capstan keeps shows it as [redacted].
echo "PostgreSQL $id is up for $CAPSTAN_INSTANCE (password $password)"
