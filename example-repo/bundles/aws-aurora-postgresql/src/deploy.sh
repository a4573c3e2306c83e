#!/bin/sh
# Simulates deploying a aws-aurora-postgresql: a file under $CAPSTAN_CLOUD_DIR stands for the cloud
# resource, and the artifacts go to $CAPSTAN_ARTIFACTS (DESIGN section 10).
set -eu
cloud="${CAPSTAN_CLOUD_DIR:-${TMPDIR:-/tmp}/capstan-cloud}"
mkdir -p "$cloud"
id="$CAPSTAN_INSTANCE"
cp params.json "$cloud/$id.aws-aurora-postgresql.json"
printf '{"database": {"hostname": "%s.db.local", "port": 5432, "username": "app", "password": "pw-%s"}}\n' "$id" "$id" > "$CAPSTAN_ARTIFACTS"
echo "aws-aurora-postgresql $id deployed"
