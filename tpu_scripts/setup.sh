#!/usr/bin/env bash
# Installs annotanchor (with the tpu extra: libtpu) on every worker of a TPU VM slice.
#
#   tpu_scripts/setup.sh --name=aa-2b --zone=us-west4-a --repo=https://github.com/ORG/annotanchor.git \
#       [--ref=main] [--project=P] [--dry-run]
#
# Each worker clones (or updates) the repository into ~/annotanchor at --ref and builds
# ~/annotanchor/.venv from the pinned constraints, with the tpu extra.
source "$(dirname "$0")/lib.sh"

REPO="" REF="main"
while [[ $# -gt 0 ]]; do
  parse_common "$@"
  if [[ $SHIFT -gt 0 ]]; then shift "$SHIFT"; continue; fi
  case "$1" in
    --repo) need_value "$@"; REPO="$2"; shift ;;
    --repo=*) REPO="${1#*=}" ;;
    --ref) need_value "$@"; REF="$2"; shift ;;
    --ref=*) REF="${1#*=}" ;;
    *) die "unknown argument $1 (see the header of $0)" ;;
  esac
  shift
done
require_common
[[ -n "$REPO" ]] || die "--repo is required (a git URL the workers can clone)"
location_flags

INSTALL="set -e; if [ -d ~/annotanchor/.git ]; then git -C ~/annotanchor fetch -q origin; else git clone -q $(printf '%q' "$REPO") ~/annotanchor; fi; git -C ~/annotanchor checkout -q $(printf '%q' "$REF"); cd ~/annotanchor; python3 -m venv .venv; .venv/bin/pip install -q -c constraints.txt -e '.[tpu]'"
echo "Installing annotanchor ($REPO at $REF) on every worker of $NAME"
run gcloud compute tpus tpu-vm ssh "$NAME" "${LOCATION[@]}" --worker=all --command="$INSTALL"
