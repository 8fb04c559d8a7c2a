"""Smoke test of benchmarks/train_throughput.py: the --quick tiny shape, our side only.

Runs the script as a user would (a subprocess, the machine's real devices: the benchmark
sets no fake devices), so it checks the command line, the build of the train step and the
JSON report, not the speed.
"""
import json
import os
import subprocess
import sys

from tests.xla_flags import xla_flags

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "benchmarks", "train_throughput.py")


def test_quick_mode_reports_our_throughput(tmp_path):
  output = tmp_path / "train_throughput.json"
  # The benchmark runs on the real device, not conftest.py's 8 fake ones.
  env = dict(os.environ, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3", XLA_FLAGS=xla_flags())
  proc = subprocess.run([sys.executable, SCRIPT, "--quick", "--skip_peer", "--output", str(output)],
                        env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
  assert proc.returncode == 0, proc.stderr[-3000:]
  report = json.loads(output.read_text())
  assert report == json.loads(proc.stdout)
  assert report["quick"] and report["shape"]["seq_len"] == 32
  (ours,) = report["results"].values()
  assert ours["tokens_per_s"] > 0 and 0 < ours["mfu"] < 1
  assert ours["matmul_flops_per_s"] > 0
  assert len(ours["step_s_rounds"]) == report["rounds"]
  assert ours["final_loss"] == ours["final_loss"]  # finite, not NaN
  assert "ratio_tokens_per_s_ours_over_peer" not in report


def test_missing_peer_names_the_install_command():
  code = ("import sys, builtins; real = builtins.__import__\n"
          "def fake(name, *a, **k):\n"
          "  if name in ('torch', 'transformers'): raise ImportError('No module named ' + name)\n"
          "  return real(name, *a, **k)\n"
          "builtins.__import__ = fake\n"
          f"sys.path.insert(0, {os.path.dirname(SCRIPT)!r})\n"
          "import train_throughput\n"
          "train_throughput.main(['--quick'])\n")
  proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                        timeout=60, env=dict(os.environ, JAX_PLATFORMS="cpu"))
  assert proc.returncode != 0
  assert "pip install torch==2.13.0 transformers==" in proc.stderr
