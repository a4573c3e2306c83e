#!/bin/sh
# Simulates destroying a aws-aurora-postgresql: its stand-in file under $CAPSTAN_CLOUD_DIR is removed.
set -eu
cloud="${CAPSTAN_CLOUD_DIR:-${TMPDIR:-/tmp}/capstan-cloud}"
rm -f "$cloud/$CAPSTAN_INSTANCE.aws-aurora-postgresql.json"
echo "aws-aurora-postgresql $CAPSTAN_INSTANCE destroyed"
