"""`annotanchor compile` of a DPO run (gin/runs/dpo.gin) for a 4-chip v5e slice: the step
lowered with both rows of each pair and the frozen reference's parameters."""
import json
import os
import subprocess
import sys

import pytest

from annotanchor.tpu import aot

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MISSING = aot.libtpu_missing_reason()
pytestmark = [pytest.mark.skipif(MISSING is not None, reason=f"needs libtpu: {MISSING}"),
              pytest.mark.slow]


def test_the_dpo_step_compiles_with_its_reference(tmp_path):
  out = tmp_path / "compile.json"
  cmd = [sys.executable, "-m", "annotanchor.compile", "--gin_file=gin/models/tiny.gin",
         "--gin_file=gin/runs/dpo.gin", "--gin.TOPOLOGY='v5e:2x2'",
         "--gin.MESH={'data': 2, 'fsdp': 2, 'model': 1}", "--gin.BATCH_SIZE=8",
         "--gin.TASK_FEATURE_LENGTHS={'targets': 64}", "--gin.DECODE_ROWS=0",
         # A compile reads no data and no checkpoint: the run's required paths are unused.
         "--gin.INITIAL_CHECKPOINT_PATH='unused'", "--gin.VOCABULARY='unused'",
         "--gin.PAIRS='unused'", f"--gin.COMPILE_OUTPUT='{out}'"]
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  proc = subprocess.run(cmd, cwd=REPO, env={**env, "PYTHONPATH": REPO}, capture_output=True,
                        text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  result = json.loads(out.read_text())
  (train,) = result["steps"]
  # MFU counts the rows the policy learns from: both answers of each of the 8 pairs.
  assert result["trained_rows_per_step"] == 16
  seconds = train["cost"]["estimated_step_seconds"]
  assert train["mfu"] == pytest.approx(
      result["model_flops_per_step"] / (seconds * 4 * result["peak_bf16_flops_per_chip"]))
  arrays = {a["name"]: a for a in train["arrays"]}
  for side in ("chosen", "rejected"):  # 8 pairs over data x fsdp = 4: 2 rows per chip.
    assert arrays[f"batch/{side}_decoder_target_tokens"]["shard_shape"] == [2, 64]
  # The reference is sharded as the policy, and not donated (it is not aliased).
  policy, reference = (arrays[f"{p}/embed/embedding"] for p in ("state/params", "reference"))
  assert (reference["shard_shape"], reference["spec"]) == (policy["shard_shape"], policy["spec"])
  memory = train["memory"]
  assert memory["arguments"] >= sum(a["bytes_per_chip"] for a in train["arrays"])
  assert 0 < memory["total"] < train["hbm_bytes_per_chip"]
