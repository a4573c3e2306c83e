#!/bin/sh
# Simulates destroying an AWS VPC: its stand-in files are removed (docs/deploying.md).
set -eu
cloud="${CAPSTAN_CLOUD_DIR:-${CAPSTAN_STATE_DIR:-${TMPDIR:-/tmp}}/cloud}"
rm -f "$cloud/$CAPSTAN_INSTANCE".*
echo "aws-vpc $CAPSTAN_INSTANCE destroyed"
