"""Smoke test of benchmarks/import_hf.py: the --quick shape, run as a user would (a
subprocess on the machine's real device). Checks the command line, the import and the JSON
report's arithmetic, not the figures."""
import json
import os
import subprocess
import sys

import pytest

from tests.xla_flags import xla_flags

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "benchmarks", "import_hf.py")


# Slow (11 s of CPU): a benchmark script's smoke test; the import it times is checked in
# the default run (tests/interchange/).
@pytest.mark.slow
def test_quick_mode_reports_time_and_memory(tmp_path):
  output = tmp_path / "import_hf.json"
  env = dict(os.environ, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3", XLA_FLAGS=xla_flags())
  proc = subprocess.run([sys.executable, SCRIPT, "--quick", "--output", str(output)],
                        env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  report = json.loads(output.read_text())
  assert report == json.loads(proc.stdout)
  assert len(report["devices"]) == 1  # The real device, not the suite's 8 fake ones.
  assert report["tensors"] == 20 and report["largest_tensor"] == "model.embed_tokens.weight"
  assert report["param_bytes"] == report["num_params"] * 2  # bfloat16
  for phase in ("stream", "save"):
    extra = report[f"{phase}_peak_rss"] - report["baseline_rss"] - report["param_bytes"]
    assert report["extra_bytes"][phase] == extra
    assert report["extra_over_largest_tensor"][phase] == extra / report["largest_tensor_bytes"]
  assert 0 < report["stream_seconds"] < report["total_seconds"]
