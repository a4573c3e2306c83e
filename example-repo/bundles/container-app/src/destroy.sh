#!/bin/sh
# Simulates destroying a container app on a shared Kubernetes cluster: its stand-in files are removed (docs/deploying.md).
set -eu
cloud="${CAPSTAN_CLOUD_DIR:-${CAPSTAN_STATE_DIR:-${TMPDIR:-/tmp}}/cloud}"
rm -f "$cloud/$CAPSTAN_INSTANCE".*
echo "container-app $CAPSTAN_INSTANCE destroyed"
