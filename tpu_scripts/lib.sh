# Shared helpers of the tpu_scripts (sourced, not run). Each script parses its flags with
# `parse_common` + its own, then issues gcloud commands through `run`, which prints every
# command exactly as it will run (shell-quoted) and, under --dry-run, only prints it.
set -euo pipefail

DRY_RUN=0
PROJECT="${CLOUDSDK_CORE_PROJECT:-}"
ZONE="${CLOUDSDK_COMPUTE_ZONE:-}"
NAME=""

die() { echo "$(basename "$0"): $*" >&2; exit 2; }

# Prints the command (one line, shell-quoted) and runs it unless --dry-run.
run() {
  local quoted
  printf -v quoted '%q ' "$@"
  echo "+ ${quoted% }"
  if [[ "$DRY_RUN" == 0 ]]; then "$@"; fi
}

# Consumes the flags every script takes; sets SHIFT to how many arguments it used (0: none).
parse_common() {
  SHIFT=1
  case "$1" in
    --dry-run) DRY_RUN=1 ;;
    --name) need_value "$@"; NAME="$2"; SHIFT=2 ;;
    --name=*) NAME="${1#*=}" ;;
    --zone) need_value "$@"; ZONE="$2"; SHIFT=2 ;;
    --zone=*) ZONE="${1#*=}" ;;
    --project) need_value "$@"; PROJECT="$2"; SHIFT=2 ;;
    --project=*) PROJECT="${1#*=}" ;;
    *) SHIFT=0 ;;
  esac
}

need_value() { [[ $# -ge 2 && -n "$2" && "$2" != --* ]] || die "$1 needs a value"; }

# Checks the flags every script needs.
require_common() {
  [[ -n "$NAME" ]] || die "--name is required (the TPU VM or queued resource name)"
  [[ "$NAME" =~ ^[a-z]([-a-z0-9]*[a-z0-9])?$ ]] || die "--name=$NAME: lower-case letters, digits and '-'"
  [[ -n "$ZONE" ]] || die "--zone is required (e.g. us-central2-b), or set CLOUDSDK_COMPUTE_ZONE"
}

# gcloud's location flags for every command.
location_flags() {
  LOCATION=(--zone="$ZONE")
  if [[ -n "$PROJECT" ]]; then LOCATION+=(--project="$PROJECT"); fi
}

# The accelerator type gcloud wants for a slice name: v5e-N -> v5litepod-N, others as given.
accelerator_type() {
  local slice="$1"
  [[ "$slice" =~ ^(v4|v5e|v5p|v6e)-[0-9]+$ ]] || die "--type=$slice: expected v4-N, v5e-N, v5p-N or v6e-N (e.g. v5e-64)"
  case "$slice" in
    v5e-*) echo "v5litepod-${slice#v5e-}" ;;
    *) echo "$slice" ;;
  esac
}

# The TPU VM software version that suits a slice's generation.
runtime_version() {
  case "$1" in
    v4-*) echo "tpu-ubuntu2204-base" ;;
    v5e-*) echo "v2-alpha-tpuv5-lite" ;;
    v5p-*) echo "v2-alpha-tpuv5" ;;
    v6e-*) echo "v2-alpha-tpuv6e" ;;
  esac
}
