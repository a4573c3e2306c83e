#!/bin/sh
# Simulates destroying a aws-vpc-peering: its stand-in file under $CAPSTAN_CLOUD_DIR is removed.
set -eu
cloud="${CAPSTAN_CLOUD_DIR:-${TMPDIR:-/tmp}/capstan-cloud}"
rm -f "$cloud/$CAPSTAN_INSTANCE.aws-vpc-peering.json"
echo "aws-vpc-peering $CAPSTAN_INSTANCE destroyed"
