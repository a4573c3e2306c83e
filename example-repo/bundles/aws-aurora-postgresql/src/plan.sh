#!/bin/sh
# Says what deploy.sh (or, with CAPSTAN_ACTION=destroy, destroy.sh) would do to the
# simulated cluster, changing nothing (docs/provisioner-plans.md): it prints resource
# changes shaped like `terraform show -json`'s resource_changes. A new engine version
# replaces the cluster and its writer; a new instance class updates the writer in place.
set -eu
cloud="${CAPSTAN_CLOUD_DIR:-${CAPSTAN_STATE_DIR:-${TMPDIR:-/tmp}}/cloud}"
res="$cloud/$CAPSTAN_INSTANCE"
# A param of a pretty-printed params file, one key per line.
param() { sed -n "s/^  \"$1\": \"\{0,1\}\([^\",]*\)\"\{0,1\},\{0,1\}$/\1/p" "$2" | head -n 1; }
change() { # address, actions, replace_paths, before, after
  printf '{"address": "%s", "type": "%s", "change": {"actions": %s, "replace_paths": %s, "before": %s, "after": %s}}' \
    "$1" "${1%%.*}" "$2" "$3" "$4" "$5"
}
cluster=aws_rds_cluster.main
writer=aws_rds_cluster_instance.writer
if [ "$CAPSTAN_ACTION" = destroy ]; then
  if [ -s "$res.json" ]; then
    printf '{"resource_changes": [%s, %s]}\n' \
      "$(change $writer '["delete"]' '[]' '{}' 'null')" \
      "$(change $cluster '["delete"]' '[]' '{}' 'null')"
  else
    printf '{"resource_changes": []}\n'
  fi
  exit 0
fi
engine=$(param engine_version params.json)
class=$(param instance_class params.json)
days=$(param backup_retention_days params.json)
new_cluster="{\"engine_version\": \"$engine\", \"backup_retention_period\": $days}"
new_writer="{\"instance_class\": \"$class\"}"
if [ ! -s "$res.json" ]; then
  printf '{"resource_changes": [%s, %s]}\n' \
    "$(change $cluster '["create"]' '[]' 'null' "$new_cluster")" \
    "$(change $writer '["create"]' '[]' 'null' "$new_writer")"
  exit 0
fi
old_engine=$(param engine_version "$res.json")
old_class=$(param instance_class "$res.json")
old_days=$(param backup_retention_days "$res.json")
old_cluster="{\"engine_version\": \"$old_engine\", \"backup_retention_period\": $old_days}"
old_writer="{\"instance_class\": \"$old_class\"}"
if [ "$engine" != "$old_engine" ]; then
  cluster_actions='["delete", "create"]' cluster_forces='[["engine_version"]]'
  writer_actions='["delete", "create"]' writer_forces='[["cluster_identifier"]]'
else
  cluster_forces='[]' writer_forces='[]'
  if [ "$days" != "$old_days" ]; then cluster_actions='["update"]'; else cluster_actions='["no-op"]'; fi
  if [ "$class" != "$old_class" ]; then writer_actions='["update"]'; else writer_actions='["no-op"]'; fi
fi
printf '{"resource_changes": [%s, %s]}\n' \
  "$(change $cluster "$cluster_actions" "$cluster_forces" "$old_cluster" "$new_cluster")" \
  "$(change $writer "$writer_actions" "$writer_forces" "$old_writer" "$new_writer")"
