#!/bin/sh
# Simulates destroying a aws-eks-cluster: its stand-in file under $CAPSTAN_CLOUD_DIR is removed.
set -eu
cloud="${CAPSTAN_CLOUD_DIR:-${TMPDIR:-/tmp}/capstan-cloud}"
rm -f "$cloud/$CAPSTAN_INSTANCE.aws-eks-cluster.json"
echo "aws-eks-cluster $CAPSTAN_INSTANCE destroyed"
