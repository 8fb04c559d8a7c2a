#!/usr/bin/env bash
# Creates a TPU VM pod slice, directly or through a queued resource, on demand or spot.
#
#   tpu_scripts/create.sh --name=aa-2b --zone=us-west4-a --type=v5e-64 [--spot|--preemptible]
#       [--queued] [--version=RUNTIME] [--project=P] [--dry-run]
#
# --queued waits in Cloud TPU's queue for capacity (gcloud compute tpus queued-resources);
# --spot asks for spot capacity (cheaper, can be reclaimed: watch.sh recreates and resumes);
# --preemptible is the older preemptible form (direct creation only).
source "$(dirname "$0")/lib.sh"

TYPE="" VERSION="" SPOT=0 PREEMPTIBLE=0 QUEUED=0
while [[ $# -gt 0 ]]; do
  parse_common "$@"
  if [[ $SHIFT -gt 0 ]]; then shift "$SHIFT"; continue; fi
  case "$1" in
    --type) need_value "$@"; TYPE="$2"; shift ;;
    --type=*) TYPE="${1#*=}" ;;
    --version) need_value "$@"; VERSION="$2"; shift ;;
    --version=*) VERSION="${1#*=}" ;;
    --spot) SPOT=1 ;;
    --preemptible) PREEMPTIBLE=1 ;;
    --queued) QUEUED=1 ;;
    *) die "unknown argument $1 (see the header of $0)" ;;
  esac
  shift
done
require_common
[[ -n "$TYPE" ]] || die "--type is required (e.g. v5e-64, v4-32, v5p-128, v6e-256)"
ACCEL="$(accelerator_type "$TYPE")"
VERSION="${VERSION:-$(runtime_version "$TYPE")}"
[[ $SPOT == 1 && $PREEMPTIBLE == 1 ]] && die "--spot and --preemptible exclude each other"
[[ $QUEUED == 1 && $PREEMPTIBLE == 1 ]] && die "--preemptible is for direct creation; queue with --spot"
location_flags

if [[ $QUEUED == 1 ]]; then
  cmd=(gcloud compute tpus queued-resources create "$NAME" --node-id="$NAME"
       --accelerator-type="$ACCEL" --runtime-version="$VERSION" "${LOCATION[@]}")
  [[ $SPOT == 1 ]] && cmd+=(--spot)
else
  cmd=(gcloud compute tpus tpu-vm create "$NAME" --accelerator-type="$ACCEL"
       --version="$VERSION" "${LOCATION[@]}")
  [[ $SPOT == 1 ]] && cmd+=(--spot)
  [[ $PREEMPTIBLE == 1 ]] && cmd+=(--preemptible)
fi
echo "Creating $TYPE ($ACCEL, runtime $VERSION) as $NAME in $ZONE$([[ $QUEUED == 1 ]] && echo ' through a queued resource')$([[ $SPOT == 1 ]] && echo ', spot')$([[ $PREEMPTIBLE == 1 ]] && echo ', preemptible')"
run "${cmd[@]}"
