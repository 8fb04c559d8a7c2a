#!/usr/bin/env bash
# Streams a worker's training log (~/train.log; worker 0 writes the metrics).
#
#   tpu_scripts/logs.sh --name=aa-2b --zone=us-west4-a [--worker=0] [--project=P] [--dry-run]
source "$(dirname "$0")/lib.sh"

WORKER=0
while [[ $# -gt 0 ]]; do
  parse_common "$@"
  if [[ $SHIFT -gt 0 ]]; then shift "$SHIFT"; continue; fi
  case "$1" in
    --worker) need_value "$@"; WORKER="$2"; shift ;;
    --worker=*) WORKER="${1#*=}" ;;
    *) die "unknown argument $1 (see the header of $0)" ;;
  esac
  shift
done
require_common
[[ "$WORKER" =~ ^[0-9]+$ ]] || die "--worker=$WORKER: a worker index (0, 1, ...)"
location_flags
run gcloud compute tpus tpu-vm ssh "$NAME" "${LOCATION[@]}" --worker="$WORKER" --command="tail -n 200 -F ~/train.log"
