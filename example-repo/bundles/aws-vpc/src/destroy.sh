#!/bin/sh
# Simulates destroying a aws-vpc: its stand-in file under $CAPSTAN_CLOUD_DIR is removed.
set -eu
cloud="${CAPSTAN_CLOUD_DIR:-${TMPDIR:-/tmp}/capstan-cloud}"
rm -f "$cloud/$CAPSTAN_INSTANCE.aws-vpc.json"
echo "aws-vpc $CAPSTAN_INSTANCE destroyed"
