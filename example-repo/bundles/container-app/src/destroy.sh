#!/bin/sh
# Simulates destroying a container-app: its stand-in file under $CAPSTAN_CLOUD_DIR is removed.
set -eu
cloud="${CAPSTAN_CLOUD_DIR:-${TMPDIR:-/tmp}/capstan-cloud}"
rm -f "$cloud/$CAPSTAN_INSTANCE.container-app.json"
echo "container-app $CAPSTAN_INSTANCE destroyed"
