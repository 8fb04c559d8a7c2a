"""`annotanchor train` as users run it: gin flags, outputs, errors, SIGTERM and resume."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import orbax.checkpoint as ocp
import pytest

from tests.xla_flags import xla_flags

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENV = {**os.environ, "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "3",
       "XLA_FLAGS": xla_flags(devices=2), "PYTHONPATH": REPO}


def _train_cmd(model_dir, steps, *extra, run="pretrain"):
  return [sys.executable, "-m", "annotanchor.cli", "train", "--gin_file=gin/models/tiny.gin",
          f"--gin_file=gin/runs/{run}.gin", f"--gin.MODEL_DIR='{model_dir}'",
          f"--gin.TRAIN_STEPS={steps}", "--gin.BATCH_SIZE=4",
          "--gin.TASK_FEATURE_LENGTHS={'targets': 32}", *extra]


def _run(cmd):
  return subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)


def _final_params(model_dir):
  steps = sorted(int(s) for s in os.listdir(os.path.join(model_dir, "checkpoints")))
  path = os.path.join(model_dir, "checkpoints", str(steps[-1]), "params")
  with ocp.StandardCheckpointer() as checkpointer:
    return steps[-1], checkpointer.restore(path)


def _records(model_dir):
  with open(os.path.join(model_dir, "train_metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


@pytest.mark.slow
def test_pretrain_then_finetune_from_the_command_line(tmp_path):
  base = str(tmp_path / "base")
  done = _run(_train_cmd(base, 6, "--gin.TrainConfig.log_every=2"))
  assert done.returncode == 0, done.stderr[-3000:]
  records = _records(base)
  assert [r["step"] for r in records] == [2, 4, 6]
  # Not a terminal: the steps it trains, then one line per logged step with step/total.
  assert "training steps 0 -> 6 (batch 4 x 32 tokens)" in done.stdout
  assert [l.split(":")[0] for l in done.stdout.splitlines() if l.startswith("step ")] == [
      "step 2/6 (33%)", "step 4/6 (67%)", "step 6/6 (100%)"]
  for key in ("loss", "tokens_per_second", "mfu", "learning_rate", "grad_norm", "cross_entropy"):
    assert all(np.isfinite(r[key]) for r in records), key
  assert records[-1]["tokens_per_second"] > 0 and 0 < records[-1]["mfu"] < 1
  config = open(os.path.join(base, "config.gin")).read()
  assert "TRAIN_STEPS = 6" in config and "pipeline.get_dataset" in config
  assert any(f.startswith("events") for f in os.listdir(os.path.join(base, "tensorboard")))

  sft = str(tmp_path / "sft")
  done = _run(_train_cmd(sft, 2, f"--gin.INITIAL_CHECKPOINT_PATH='{base}'",
                         "--gin.MIXTURE_OR_TASK_NAME='synthetic_tokens'", run="sft"))
  assert done.returncode == 0, done.stderr[-3000:]
  assert f"Initialising parameters from {base}" in done.stderr


@pytest.mark.parametrize("flag, message", [
    ("--gin.no_such_thing.x=1", "No configurable matching 'no_such_thing'"),
    ("--gin.MESH={'data': 3}", "MeshError: MESH {'data': 3}: degrees multiply to 3 but there are 2"),
])
def test_bad_configuration_fails_with_one_clear_line(tmp_path, flag, message):
  done = _run(_train_cmd(str(tmp_path), 2, flag))
  assert done.returncode == 2
  assert message in done.stderr and "Traceback" not in done.stderr


def test_sigterm_saves_and_resume_matches_uninterrupted(tmp_path):
  steps = 150
  reference = str(tmp_path / "reference")
  assert _run(_train_cmd(reference, steps, "--gin.TrainConfig.log_every=1")).returncode == 0

  interrupted = str(tmp_path / "interrupted")
  proc = subprocess.Popen(_train_cmd(interrupted, steps, "--gin.TrainConfig.log_every=1"),
                          cwd=REPO, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True)
  metrics = os.path.join(interrupted, "train_metrics.jsonl")
  deadline = time.time() + 240
  while time.time() < deadline and proc.poll() is None:
    if os.path.exists(metrics) and len(open(metrics).readlines()) >= 10:
      proc.send_signal(signal.SIGTERM)
      break
    time.sleep(0.05)
  _, stderr = proc.communicate(timeout=240)
  assert proc.returncode == 3, stderr[-3000:]  # 3: stopped by preemption, checkpoint saved.
  stopped_at, _ = _final_params(interrupted)
  assert 10 <= stopped_at < steps

  resumed = _run(_train_cmd(interrupted, steps, "--gin.TrainConfig.log_every=1"))
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert f"Resuming from {interrupted}/checkpoints/{stopped_at}" in resumed.stderr
  final_step, got = _final_params(interrupted)
  ref_step, want = _final_params(reference)
  assert final_step == ref_step == steps
  for a, b in zip(*(sorted(_flatten(t).items()) for t in (got, want))):
    assert a[0] == b[0]
    np.testing.assert_array_equal(a[1], b[1], err_msg=a[0])
  assert [r["step"] for r in _records(interrupted)] == list(range(1, steps + 1))


def _flatten(tree, prefix=""):
  if isinstance(tree, dict):
    return {k2: v2 for k, v in tree.items() for k2, v2 in _flatten(v, f"{prefix}/{k}").items()}
  return {prefix: np.asarray(tree)}
