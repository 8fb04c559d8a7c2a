"""`annotanchor compile` of the tiny config for a 4-chip v5e slice (XLA:TPU on this CPU host)."""
import json
import os
import subprocess
import sys

import pytest

from annotanchor.tpu import aot
from annotanchor.training import metadata

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MISSING = aot.libtpu_missing_reason()
pytestmark = pytest.mark.skipif(MISSING is not None, reason=f"needs libtpu: {MISSING}")


def _compile(tmp_path, *extra):
  out = tmp_path / "compile.json"
  cmd = [sys.executable, "-m", "annotanchor.compile", "--gin_file=gin/models/tiny.gin",
         "--gin_file=gin/runs/pretrain.gin", "--gin.TOPOLOGY='v5e:2x2'",
         "--gin.MESH={'data': 2, 'fsdp': 2, 'model': 1}", "--gin.BATCH_SIZE=8",
         "--gin.TASK_FEATURE_LENGTHS={'targets': 64}", "--gin.DECODE_ROWS=4",
         "--gin.DECODE_SLOTS=32", f"--gin.COMPILE_OUTPUT='{out}'", *extra]
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  proc = subprocess.run(cmd, cwd=REPO, env={**env, "PYTHONPATH": REPO}, capture_output=True,
                        text=True, timeout=300)
  result = json.loads(out.read_text()) if out.exists() else None
  return proc, result


def test_tiny_train_and_decode_steps_compile_for_v5e(tmp_path):
  proc, result = _compile(tmp_path)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert result["fits"] and result["chips"] == 4 and result["chip"] == "v5e"
  assert result["mesh"] == {"data": 2, "fsdp": 2, "model": 1}
  train, decode = result["steps"]
  assert (train["step"], decode["step"]) == ("train", "decode")

  arrays = {a["name"]: a for a in train["arrays"]}
  embed = arrays["state/params/embed/embedding"]  # tiny: vocab 128 x d_model 64.
  assert embed["shape"] == [128, 64] and embed["shard_shape"] == [128, 32]
  assert embed["spec"] == "P('model', 'fsdp')"
  moment = arrays["state/opt_state/1/0/mu/embed/embedding"]  # Adam follows the parameter.
  assert (moment["shard_shape"], moment["spec"]) == (embed["shard_shape"], embed["spec"])
  assert arrays["batch/decoder_input_tokens"]["shard_shape"] == [2, 64]  # 8 rows / (2 x 2).

  memory = train["memory"]
  inputs = sum(a["bytes_per_chip"] for a in train["arrays"])
  assert memory["arguments"] >= inputs  # XLA:TPU pads small arrays to its tiles.
  assert memory["aliased"] > 0  # The donated state is updated in place.
  assert memory["total"] == (memory["arguments"] + memory["outputs"] - memory["aliased"]
                             + memory["temporaries"] + memory["generated_code"])
  assert 0 < memory["total"] < train["hbm_bytes_per_chip"] == 16 * 2**30

  cost = train["cost"]
  # XLA's FLOPs cover the model's (forward + backward) plus the optimizer, per chip.
  model_per_chip = result["model_flops_per_step"] / result["chips"]
  assert 0.8 * model_per_chip < cost["flops_per_chip"] < 3 * model_per_chip
  assert cost["estimated_step_seconds"] == max(cost["compute_seconds"], cost["hbm_seconds"])
  assert 0 < train["mfu"] < 1
  assert decode["memory"]["total"] > 0 and decode["mfu"] is None
  # Compile wall times: each step's own, then all compiles (the cost's loop-free ones too).
  assert 0 < train["compile_seconds"] and 0 < decode["compile_seconds"]
  assert train["compile_seconds"] + decode["compile_seconds"] < result["wall_seconds"]
  assert result["cpu_seconds"] > 0 and "all compiles" in proc.stdout
  assert "per chip of 16.00 GiB HBM (fits)" in proc.stdout and "MFU <=" in proc.stdout


# Slow (70 s of CPU: a train and three compiles): the checks against a checkpoint are
# resolve_model's, which the default run exercises through infer
# (tests/decoding/test_self_describing.py); the default run compiles a tiny step here too.
@pytest.mark.slow
def test_a_checkpoint_gives_its_network_and_a_contradicting_model_file_is_refused(tmp_path):
  """CHECKPOINT_PATH instead of a model file: the network its metadata records."""
  model_dir = tmp_path / "run"
  train = subprocess.run(
      [sys.executable, "-m", "annotanchor.train", "--gin_file=gin/models/tiny.gin",
       "--gin_file=gin/runs/pretrain.gin", f"--gin.MODEL_DIR='{model_dir}'",
       "--gin.TRAIN_STEPS=1", "--gin.BATCH_SIZE=8", "--gin.TASK_FEATURE_LENGTHS={'targets': 32}",
       "--gin.config.TransformerConfig.num_layers=3"],
      cwd=REPO, env={**os.environ, "PYTHONPATH": REPO, "JAX_PLATFORMS": "cpu"},
      capture_output=True, text=True, timeout=300)
  assert train.returncode == 0, train.stderr[-3000:]
  out = tmp_path / "compile.json"
  flags = ["--gin_file=gin/runs/pretrain.gin", "--gin.TOPOLOGY='v5e:2x2'",
           f"--gin.CHECKPOINT_PATH='{model_dir}'", "--gin.BATCH_SIZE=8",
           "--gin.TASK_FEATURE_LENGTHS={'targets': 64}", "--gin.DECODE_ROWS=0",
           f"--gin.COMPILE_OUTPUT='{out}'"]
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  run = lambda *extra: subprocess.run(
      [sys.executable, "-m", "annotanchor.compile", *extra, *flags], cwd=REPO,
      env={**env, "PYTHONPATH": REPO}, capture_output=True, text=True, timeout=300)
  proc = run()
  assert proc.returncode == 0, proc.stderr[-3000:]
  result = json.loads(out.read_text())
  saved = metadata.read_metadata(str(model_dir))[0].model
  assert saved.num_layers == 3 and result["num_params"] == saved.num_params()
  refused = run("--gin_file=gin/models/tiny.gin")  # tiny.gin's 2 layers, not the checkpoint's.
  assert refused.returncode == 2
  assert ("annotanchor compile: CheckpointSettingsError: TransformerConfig.num_layers=2 "
          "contradicts the checkpoint, trained with num_layers=3") in refused.stderr
  # A network field a run file binds (as pretrain_1b_20b.gin binds remat_policy) reaches
  # nothing with only a checkpoint: refused, not dropped unseen.
  remat = tmp_path / "remat.gin"
  remat.write_text("from __gin__ import dynamic_registration\n"
                   "from annotanchor.model import config\n"
                   "config.TransformerConfig.remat_policy = 'full'\n")
  unread = run(f"--gin_file={remat}")
  assert unread.returncode == 2
  assert ("annotanchor compile: SettingError: TransformerConfig.remat_policy is bound, but "
          "with only CHECKPOINT_PATH the network is the checkpoint's") in unread.stderr
  assert "Traceback" not in unread.stderr


def test_not_fitting_names_the_excess_and_the_largest_arrays(tmp_path):
  proc, result = _compile(tmp_path, "--gin.compile.compile_steps.hbm_gib=0.001")
  assert proc.returncode == 1, proc.stderr[-3000:]
  assert not result["fits"]
  assert "the train step does not fit v5e:2x2" in proc.stdout
  assert "MiB over" in proc.stdout
  assert "largest inputs per chip: state/params/" in proc.stdout


@pytest.mark.slow
def test_loop_corrected_cost_matches_a_loop_free_compile():
  """Scanned layers and accumulated microbatches: the extrapolated cost equals XLA's count
  for the same step without loops (layers unrolled, microbatches unrolled)."""
  import dataclasses

  from annotanchor.model.config import TransformerConfig
  from annotanchor.model.model import DecoderOnlyModel
  from annotanchor.tpu.chips import parse_topology
  from annotanchor.training import optim, partitioning, step as step_lib

  mesh = partitioning.make_mesh({"data": 2, "fsdp": 2},
                                aot.topology_devices(parse_topology("v5e:2x2")))
  config = TransformerConfig(vocab_size=128, d_model=64, num_layers=4, num_heads=4,
                             num_kv_heads=2, head_dim=16, mlp_dim=192, scan_layers=True,
                             remat_policy="full", dtype="bfloat16")
  tx, schedule = optim.make_optimizer(optim.OptimizerConfig(), 10)
  model = DecoderOnlyModel(config)
  estimate = aot.compile_train_step(model, tx, schedule, mesh, batch_size=16, length=64,
                                    microbatches=4).cost
  flat = dataclasses.replace(model, config=dataclasses.replace(config, scan_layers=False))
  step, abstract, _ = step_lib.sharded_train_step(flat, tx, schedule, mesh, batch_size=16,
                                                  microbatches=4, unroll_microbatches=True)
  exact = aot.Cost.of(step.lower(abstract, aot.abstract_batch(16, 64, mesh, True)).compile())
  # The splash kernels' FLOPs, which XLA counts as zero, are added to both analytically.
  exact = exact + aot.Cost(aot.kernel_attention_flops(config, mesh, 16, 64), 0.0)
  # Measured: 0.08% (FLOPs) and 0.4% (bytes) apart; XLA fuses the unrolled copies slightly
  # differently. Counting the loop bodies once would be 4-16x off.
  assert abs(estimate.flops / exact.flops - 1) < 0.01
  assert abs(estimate.bytes_accessed / exact.bytes_accessed - 1) < 0.02
