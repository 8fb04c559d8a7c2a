#!/usr/bin/env bash
# Keeps a run going through preemptions: polls the slice; when it is gone, preempted,
# suspended or failed, deletes it, recreates it, reinstalls and relaunches the same train
# command. Training resumes from MODEL_DIR's latest checkpoint.
#
#   tpu_scripts/watch.sh --name=aa-2b --zone=us-west4-a --type=v5e-64 --spot --queued \
#       --repo=https://github.com/ORG/annotanchor.git --model-dir=gs://BUCKET/runs/2_5b \
#       --gin-file=gin/models/2_5b.gin --gin-file=gin/runs/pretrain_2_5b_50b.gin \
#       [--gin=NAME=VALUE ...] [--ref=main] [--interval=300] [--project=P] [--dry-run]
#
# --dry-run prints the status query and one full recovery (as if the slice were preempted).
source "$(dirname "$0")/lib.sh"
HERE="$(dirname "$0")"

TYPE="" REPO="" REF="main" MODEL_DIR="" INTERVAL=300 SPOT=0 QUEUED=0 GIN_ARGS=()
while [[ $# -gt 0 ]]; do
  parse_common "$@"
  if [[ $SHIFT -gt 0 ]]; then shift "$SHIFT"; continue; fi
  case "$1" in
    --type) need_value "$@"; TYPE="$2"; shift ;;
    --type=*) TYPE="${1#*=}" ;;
    --repo) need_value "$@"; REPO="$2"; shift ;;
    --repo=*) REPO="${1#*=}" ;;
    --ref) need_value "$@"; REF="$2"; shift ;;
    --ref=*) REF="${1#*=}" ;;
    --model-dir) need_value "$@"; MODEL_DIR="$2"; shift ;;
    --model-dir=*) MODEL_DIR="${1#*=}" ;;
    --gin-file|--gin) need_value "$@"; GIN_ARGS+=("$1=$2"); shift ;;
    --gin-file=*|--gin=*) GIN_ARGS+=("$1") ;;
    --interval) need_value "$@"; INTERVAL="$2"; shift ;;
    --interval=*) INTERVAL="${1#*=}" ;;
    --spot) SPOT=1 ;;
    --queued) QUEUED=1 ;;
    *) die "unknown argument $1 (see the header of $0)" ;;
  esac
  shift
done
require_common
[[ -n "$TYPE" ]] || die "--type is required (e.g. v5e-64)"
[[ -n "$REPO" ]] || die "--repo is required (passed to setup.sh)"
[[ -n "$MODEL_DIR" ]] || die "--model-dir is required (gs://BUCKET/PATH)"
[[ "$INTERVAL" =~ ^[1-9][0-9]*$ ]] || die "--interval=$INTERVAL: seconds between polls"
accelerator_type "$TYPE" > /dev/null
location_flags

COMMON=(--name="$NAME" --zone="$ZONE")
[[ -n "$PROJECT" ]] && COMMON+=(--project="$PROJECT")
[[ $DRY_RUN == 1 ]] && COMMON+=(--dry-run)
CREATE=(--type="$TYPE")
[[ $SPOT == 1 ]] && CREATE+=(--spot)
[[ $QUEUED == 1 ]] && CREATE+=(--queued)
TEARDOWN=()
[[ $QUEUED == 1 ]] && TEARDOWN+=(--queued)
if [[ $QUEUED == 1 ]]; then
  STATUS=(gcloud compute tpus queued-resources describe "$NAME" "${LOCATION[@]}" --format='value(state.state)')
  HEALTHY="ACTIVE" WAITING="ACCEPTED|PROVISIONING|WAITING_FOR_RESOURCES|CREATING"
else
  STATUS=(gcloud compute tpus tpu-vm describe "$NAME" "${LOCATION[@]}" --format='value(state)')
  HEALTHY="READY" WAITING="CREATING|STARTING|RESTARTING|REPAIRING"
fi

# Sets CURRENT to the slice's state, or MISSING. Under --dry-run the query is printed and
# PREEMPTED assumed.
query_state() {
  if [[ $DRY_RUN == 1 ]]; then run "${STATUS[@]}"; CURRENT=PREEMPTED; return; fi
  CURRENT="$("${STATUS[@]}" 2>/dev/null | tail -n 1)" || CURRENT=MISSING
  [[ -n "$CURRENT" ]] || CURRENT=MISSING
}

# Deletes (if present), recreates, waits for the slice, reinstalls and relaunches.
recover() {
  local current="$1"
  echo "$NAME is $current: recreating it and relaunching training from $MODEL_DIR"
  [[ "$current" != MISSING ]] && "$HERE/teardown.sh" "${COMMON[@]}" "${TEARDOWN[@]+"${TEARDOWN[@]}"}"
  "$HERE/create.sh" "${COMMON[@]}" "${CREATE[@]}"
  if [[ $DRY_RUN == 0 ]]; then
    query_state
    until [[ "$CURRENT" == "$HEALTHY" ]]; do sleep 60; query_state; done
  fi
  "$HERE/setup.sh" "${COMMON[@]}" --repo="$REPO" --ref="$REF"
  "$HERE/launch.sh" "${COMMON[@]}" --model-dir="$MODEL_DIR" "${GIN_ARGS[@]+"${GIN_ARGS[@]}"}"
}

while true; do
  query_state
  if [[ "$CURRENT" != "$HEALTHY" && ! "$CURRENT" =~ ^($WAITING)$ ]]; then
    recover "$CURRENT"
  fi
  [[ $DRY_RUN == 1 ]] && break
  sleep "$INTERVAL"
done
