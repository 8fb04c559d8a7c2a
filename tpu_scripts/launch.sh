#!/usr/bin/env bash
# Starts the same `annotanchor train` command on every worker of a slice (multi-host JAX).
#
#   tpu_scripts/launch.sh --name=aa-2b --zone=us-west4-a --model-dir=gs://BUCKET/runs/2_5b \
#       --gin-file=gin/models/2_5b.gin --gin-file=gin/runs/pretrain_2_5b_50b.gin \
#       [--gin=MIXTURE_OR_TASK_NAME="'my_task'" ...] [--project=P] [--dry-run]
#
# MODEL_DIR must be on GCS (every worker writes its checkpoint shards there). Training
# resumes from MODEL_DIR's latest checkpoint, so relaunching the same command after a
# preemption continues the run (watch.sh does that). Each worker logs to ~/train.log.
source "$(dirname "$0")/lib.sh"

MODEL_DIR="" GIN_FILES=() GIN_BINDINGS=()
while [[ $# -gt 0 ]]; do
  parse_common "$@"
  if [[ $SHIFT -gt 0 ]]; then shift "$SHIFT"; continue; fi
  case "$1" in
    --model-dir) need_value "$@"; MODEL_DIR="$2"; shift ;;
    --model-dir=*) MODEL_DIR="${1#*=}" ;;
    --gin-file) need_value "$@"; GIN_FILES+=("$2"); shift ;;
    --gin-file=*) GIN_FILES+=("${1#*=}") ;;
    --gin) need_value "$@"; GIN_BINDINGS+=("$2"); shift ;;
    --gin=*) GIN_BINDINGS+=("${1#*=}") ;;
    *) die "unknown argument $1 (see the header of $0)" ;;
  esac
  shift
done
require_common
[[ -n "$MODEL_DIR" ]] || die "--model-dir is required (gs://BUCKET/PATH)"
[[ "$MODEL_DIR" == gs://?* ]] || die "--model-dir=$MODEL_DIR: must be a gs:// path, shared by all workers"
[[ ${#GIN_FILES[@]} -gt 0 ]] || die "--gin-file is required (a model and a run file, e.g. gin/models/2_5b.gin)"
for binding in "${GIN_BINDINGS[@]+"${GIN_BINDINGS[@]}"}"; do
  [[ "$binding" == *=* ]] || die "--gin=$binding: expected NAME=VALUE"
done
location_flags

# TrainConfig.distributed=True: jax.distributed.initialize() finds the other workers.
TRAIN=(.venv/bin/annotanchor train)
for f in "${GIN_FILES[@]}"; do TRAIN+=("--gin_file=$f"); done
TRAIN+=("--gin.MODEL_DIR='$MODEL_DIR'" "--gin.TrainConfig.distributed=True")
for b in "${GIN_BINDINGS[@]+"${GIN_BINDINGS[@]}"}"; do TRAIN+=("--gin.$b"); done
printf -v TRAIN_LINE '%q ' "${TRAIN[@]}"
REMOTE="cd ~/annotanchor && nohup ${TRAIN_LINE% } > ~/train.log 2>&1 < /dev/null &"
echo "Launching on every worker of $NAME: ${TRAIN_LINE% }"
run gcloud compute tpus tpu-vm ssh "$NAME" "${LOCATION[@]}" --worker=all --command="$REMOTE"
