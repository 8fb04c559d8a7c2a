"""Smoke test of benchmarks/accelerator_train.py --dry: the tiny config on this CPU host.

Runs the script as a user would (a subprocess on the machine's real device), so it checks
the command line, the gin model config, the real train step, the sampler and the JSON,
not the speed.
"""
import json
import os
import subprocess
import sys

import pytest

from tests.xla_flags import xla_flags

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "benchmarks", "accelerator_train.py")


def test_dry_run_reports_train_and_decode_throughput(tmp_path):
  output = tmp_path / "accelerator_train.json"
  # The benchmark runs on the real device, not conftest.py's 8 fake ones.
  env = dict(os.environ, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3", XLA_FLAGS=xla_flags())
  proc = subprocess.run([sys.executable, SCRIPT, "--dry", "--output", str(output)], env=env,
                        cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  report = json.loads(output.read_text())
  assert report == json.loads(proc.stdout)
  assert report["dry"] and report["platform"] == "cpu" and report["devices"] == 1
  assert report["peak_source"].startswith("measured float32 matmul rate")
  (tiny,) = report["models"].values()
  train, decode = tiny["train"], tiny["decode"]
  assert tiny["config"]["d_model"] == 64  # gin/models/tiny.gin
  assert train["attention_kernel"] == "cpu" and train["length"] == 128
  assert train["tokens_per_s"] > 0 and 0 < train["mfu"] < 1
  assert train["final_loss"] == train["final_loss"]  # finite, not NaN
  assert decode["tokens_per_s"] > 0 and decode["new_tokens"] == 8


@pytest.mark.slow
def test_attention_override_reaches_the_step(tmp_path):
  output = tmp_path / "xla.json"
  env = dict(os.environ, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3", XLA_FLAGS=xla_flags())
  proc = subprocess.run([sys.executable, SCRIPT, "--dry", "--skip_decode", "--attention", "xla",
                         "--output", str(output)], env=env, cwd=ROOT, capture_output=True,
                        text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  (tiny,) = json.loads(output.read_text())["models"].values()
  assert tiny["config"]["attention"] == "xla" and tiny["train"]["attention_kernel"] == "xla"
  assert "decode" not in tiny
