#!/bin/sh
# Simulates deploying a aws-vpc-peering: a file under $CAPSTAN_CLOUD_DIR stands for the cloud
# resource, and the artifacts go to $CAPSTAN_ARTIFACTS (DESIGN section 10).
set -eu
cloud="${CAPSTAN_CLOUD_DIR:-${TMPDIR:-/tmp}/capstan-cloud}"
mkdir -p "$cloud"
id="$CAPSTAN_INSTANCE"
cp params.json "$cloud/$id.aws-vpc-peering.json"
printf '{"peering": {"id": "pcx-%s", "requester": "requester-of-%s", "accepter": "accepter-of-%s"}}\n' "$id" "$id" "$id" > "$CAPSTAN_ARTIFACTS"
echo "aws-vpc-peering $id deployed"
