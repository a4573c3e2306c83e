#!/bin/sh
# Simulates deploying a aws-vpc: a file under $CAPSTAN_CLOUD_DIR stands for the cloud
# resource, and the artifacts go to $CAPSTAN_ARTIFACTS (DESIGN section 10).
set -eu
cloud="${CAPSTAN_CLOUD_DIR:-${TMPDIR:-/tmp}/capstan-cloud}"
mkdir -p "$cloud"
id="$CAPSTAN_INSTANCE"
cp params.json "$cloud/$id.aws-vpc.json"
printf '{"network": {"id": "vpc-%s", "cidr": "10.0.0.0/16", "region": "us-east-1", "private_subnets": ["subnet-%s-a", "subnet-%s-b"]}}\n' "$id" "$id" "$id" > "$CAPSTAN_ARTIFACTS"
echo "aws-vpc $id deployed"
