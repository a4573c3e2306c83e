#!/bin/sh
# Simulates destroying an Amazon EKS cluster: its stand-in files are removed (docs/deploying.md).
set -eu
cloud="${CAPSTAN_CLOUD_DIR:-${CAPSTAN_STATE_DIR:-${TMPDIR:-/tmp}}/cloud}"
rm -f "$cloud/$CAPSTAN_INSTANCE".*
echo "aws-eks-cluster $CAPSTAN_INSTANCE destroyed"
