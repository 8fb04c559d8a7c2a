"""Smoke test of benchmarks/capability_scoring.py: the --quick tiny shape, as a user runs it
(a subprocess on the real device), checking the command line, the agreement check between
the batched and the one-row scorer, and the JSON report, not the speed."""
import json
import os
import subprocess
import sys

import pytest

from tests.xla_flags import xla_flags

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "benchmarks", "capability_scoring.py")


# Slow (23 s of CPU): a benchmark script's smoke test; both scorers' answers are checked
# in the default run (tests/capability/test_choice_scoring.py).
@pytest.mark.slow
def test_quick_mode_reports_both_scorers():
  env = dict(os.environ, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3", XLA_FLAGS=xla_flags(),
             PYTHONPATH=ROOT)
  proc = subprocess.run([sys.executable, SCRIPT, "--quick"], env=env, cwd=ROOT,
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  report = json.loads(proc.stdout)
  assert report["rows"] == 16 and report["max_abs_loglik_difference"] < 1e-4
  assert set(report["questions_per_s"]) == {"ours", "naive"}
  assert all(v > 0 for v in report["questions_per_s"].values())
