"""Smoke test of benchmarks/annotate_throughput.py --quick (about a minute: marked slow).

Runs the script as a user would: it trains, serves and annotates through the real commands,
so this checks the set-up and the JSON report, not the speed.
"""
import json
import os
import subprocess
import sys

import pytest

from tests.xla_flags import xla_flags

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "benchmarks", "annotate_throughput.py")


@pytest.mark.slow
def test_quick_mode_reports_both_concurrencies(tmp_path):
  output = tmp_path / "annotate_throughput.json"
  env = dict(os.environ, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3", XLA_FLAGS=xla_flags())
  proc = subprocess.run([sys.executable, SCRIPT, "--quick", "--output", str(output)], env=env,
                        cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  report = json.loads(output.read_text())
  assert report == json.loads(proc.stdout) and report["quick"]
  for c in ("concurrency_1", "concurrency_8"):
    assert report["results"][c]["chunks"] == 16 and report["results"][c]["chunks_per_s_median"] > 0
  assert report["ratio_c8_over_c1"] > 0
