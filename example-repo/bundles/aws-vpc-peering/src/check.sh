#!/bin/sh
# Tells whether an AWS VPC peering connection still matches what capstan last deployed (docs/drift.md):
# it rebuilds the resource file deploy.sh writes from the recorded inputs and compares.
# Exit 0 in sync, 2 drifted (its first lines say how). It changes nothing.
set -eu
cloud="${CAPSTAN_CLOUD_DIR:-${CAPSTAN_STATE_DIR:-${TMPDIR:-/tmp}}/cloud}"
res="$cloud/$CAPSTAN_INSTANCE"
if [ ! -s "$res.json" ] || [ ! -s "$res.id" ]; then
  echo "$CAPSTAN_INSTANCE is gone: its simulated resource cloud/$CAPSTAN_INSTANCE.json does not exist"
  exit 2
fi
expected=$(
  printf '{"id": "%s", "type": "aws-vpc-peering",\n"params": ' "$(cat "$res.id")"
  cat params.json
  printf ',\n"connections": '
  cat connections.json
  printf '}\n'
)
if [ "$expected" != "$(cat "$res.json")" ]; then
  echo "$CAPSTAN_INSTANCE was changed outside capstan: cloud/$CAPSTAN_INSTANCE.json differs from its recorded inputs"
  exit 2
fi
