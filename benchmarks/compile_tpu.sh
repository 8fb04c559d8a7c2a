#!/usr/bin/env bash
# The table of docs/tpu.md: `annotanchor compile` of the paper-size runs for v5e-64 and
# v6e-256, JSON to benchmarks/results/compile_<model>_<slice>.json, then the markdown table.
# Needs the tpu extra (libtpu); runs on a CPU host, minutes per entry. An entry whose JSON
# exists is kept (delete it to measure again). Decode step: 256 rows x 2048 cache slots.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${BIN:-.venv/bin}"
# v6e-256: 1024 rows over 256 chips allow at most 4 microbatches.
for slice in "v5e-64 16" "v6e-256 4"; do
  read -r topology microbatches <<< "$slice"
  for model in 2_5b 1b 600m; do
    gin="$(ls gin/runs/pretrain_${model}_*.gin)"
    out="benchmarks/results/compile_${model}_${topology}.json"
    [[ -f "$out" ]] && continue
    JAX_PLATFORMS=cpu TF_CPP_MIN_LOG_LEVEL=3 "$BIN/annotanchor" compile \
      --gin_file="gin/models/$model.gin" --gin_file="$gin" \
      --gin.TOPOLOGY="'$topology'" --gin.StepConfig.microbatches="$microbatches" \
      --gin.DECODE_ROWS=256 --gin.DECODE_SLOTS=2048 --gin.COMPILE_OUTPUT="'$out'" \
      | grep -v '^    ' || true  # Exit 1 (does not fit) is a table entry too.
  done
done
"$BIN/python" benchmarks/compile_table.py benchmarks/results/compile_*.json
