#!/bin/sh
# Simulates deploying a container-app: a file under $CAPSTAN_CLOUD_DIR stands for the cloud
# resource, and the artifacts go to $CAPSTAN_ARTIFACTS (DESIGN section 10).
set -eu
cloud="${CAPSTAN_CLOUD_DIR:-${TMPDIR:-/tmp}/capstan-cloud}"
mkdir -p "$cloud"
id="$CAPSTAN_INSTANCE"
cp params.json "$cloud/$id.container-app.json"
printf '{}\n' > "$CAPSTAN_ARTIFACTS"
echo "container-app $id deployed"
