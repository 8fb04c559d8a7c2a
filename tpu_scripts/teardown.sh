#!/usr/bin/env bash
# Deletes a slice (and its queued resource when created with --queued). MODEL_DIR on GCS stays.
#
#   tpu_scripts/teardown.sh --name=aa-2b --zone=us-west4-a [--queued] [--project=P] [--dry-run]
source "$(dirname "$0")/lib.sh"

QUEUED=0
while [[ $# -gt 0 ]]; do
  parse_common "$@"
  if [[ $SHIFT -gt 0 ]]; then shift "$SHIFT"; continue; fi
  case "$1" in
    --queued) QUEUED=1 ;;
    *) die "unknown argument $1 (see the header of $0)" ;;
  esac
  shift
done
require_common
location_flags
echo "Deleting $NAME in $ZONE"
if [[ $QUEUED == 1 ]]; then
  run gcloud compute tpus queued-resources delete "$NAME" "${LOCATION[@]}" --force --quiet
else
  run gcloud compute tpus tpu-vm delete "$NAME" "${LOCATION[@]}" --quiet
fi
