#!/bin/sh
# Simulates deploying a aws-eks-cluster: a file under $CAPSTAN_CLOUD_DIR stands for the cloud
# resource, and the artifacts go to $CAPSTAN_ARTIFACTS (DESIGN section 10).
set -eu
cloud="${CAPSTAN_CLOUD_DIR:-${TMPDIR:-/tmp}/capstan-cloud}"
mkdir -p "$cloud"
id="$CAPSTAN_INSTANCE"
cp params.json "$cloud/$id.aws-eks-cluster.json"
printf '{"cluster": {"name": "%s", "endpoint": "https://%s.eks.local", "version": "1.31", "token": "tok-%s"}}\n' "$id" "$id" "$id" > "$CAPSTAN_ARTIFACTS"
echo "aws-eks-cluster $id deployed"
