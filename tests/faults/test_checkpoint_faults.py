"""Damaged checkpoints through `annotanchor train`: named in one line, resumed past when an
intact older checkpoint exists, never deleted."""
import concurrent.futures
import glob
import os
import shutil

import numpy as np
import orbax.checkpoint as ocp
import pytest

from tests.faults.conftest import assert_one_line_error, run


def _train(model_dir, steps, *extra, run_file="pretrain"):
  return run(["train", "--gin_file=gin/models/tiny.gin", f"--gin_file=gin/runs/{run_file}.gin",
              f"--gin.MODEL_DIR='{model_dir}'", f"--gin.TRAIN_STEPS={steps}",
              "--gin.BATCH_SIZE=4", "--gin.TASK_FEATURE_LENGTHS={'targets': 32}",
              "--gin.CheckpointConfig.every=2",
              # A schedule independent of TRAIN_STEPS: then 4 steps resumed to 6 equal 6.
              "--gin.optim.OptimizerConfig.decay_steps=6", *extra], timeout=240)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  """MODEL_DIRs of a 4-step run (checkpoints 2 and 4) and an uninterrupted 6-step run."""
  root = tmp_path_factory.mktemp("runs")
  dirs = {"base": str(root / "base"), "reference": str(root / "reference")}
  with concurrent.futures.ThreadPoolExecutor(2) as pool:
    done = list(pool.map(_train, dirs.values(), [4, 6]))
  for result in done:
    assert result.returncode == 0, result.stderr[-3000:]
  return dirs


def _copy(runs, tmp_path):
  shutil.copytree(runs["base"], tmp_path / "run")
  return str(tmp_path / "run")


def _largest_params_file(step_dir):
  files = glob.glob(os.path.join(step_dir, "params", "**", "*"), recursive=True)
  return max(filter(os.path.isfile, files), key=os.path.getsize)


def _delete_array_file(step_dir):
  os.remove(_largest_params_file(step_dir))


def _truncate_array_file(step_dir):
  path = _largest_params_file(step_dir)
  os.truncate(path, os.path.getsize(path) // 2)


def _files(directory):
  return sorted((os.path.relpath(p, directory), os.path.getsize(p))
                for p in glob.glob(os.path.join(directory, "**", "*"), recursive=True)
                if os.path.isfile(p))


def _params(model_dir, step):
  with ocp.StandardCheckpointer() as checkpointer:
    tree = checkpointer.restore(os.path.join(model_dir, "checkpoints", str(step), "params"))
  return dict(_flatten(tree))


def _flatten(tree, prefix=""):
  if isinstance(tree, dict):
    for key, value in tree.items():
      yield from _flatten(value, f"{prefix}/{key}")
  else:
    yield prefix, np.asarray(tree)


@pytest.mark.parametrize("damage", [_delete_array_file,
                                    pytest.param(_truncate_array_file, marks=pytest.mark.slow)])
def test_resume_falls_back_past_a_damaged_latest_checkpoint(runs, tmp_path, damage):
  model_dir = _copy(runs, tmp_path)
  damaged = os.path.join(model_dir, "checkpoints", "4")
  damage(damaged)
  done = _train(model_dir, 6)
  assert done.returncode == 0, done.stderr[-3000:]
  assert "Traceback" not in done.stderr, done.stderr[-3000:]
  warnings = [l for l in done.stderr.splitlines() if f"checkpoint step 4 at {damaged} is damaged (" in l]
  assert len(warnings) == 1, done.stderr[-3000:]
  aside = os.path.join(model_dir, "damaged_checkpoints", "4")
  assert warnings[0].endswith(f"); moved it to {aside}; resuming from step 2"), warnings[0]
  assert os.path.isdir(os.path.join(aside, "params"))  # Kept for the user, not deleted.
  assert sorted(os.listdir(os.path.join(model_dir, "checkpoints"))) == ["2", "4", "6"]
  got, want = _params(model_dir, 6), _params(runs["reference"], 6)
  assert got.keys() == want.keys()
  for name in want:
    np.testing.assert_array_equal(got[name], want[name], err_msg=name)


def test_a_lone_damaged_checkpoint_is_named_and_kept(runs, tmp_path):
  model_dir = _copy(runs, tmp_path)
  shutil.rmtree(os.path.join(model_dir, "checkpoints", "2"))
  damaged = os.path.join(model_dir, "checkpoints", "4")
  os.remove(os.path.join(damaged, "params", "_METADATA"))
  checkpoints = os.path.join(model_dir, "checkpoints")
  before = _files(checkpoints)
  done = _train(model_dir, 6)
  assert_one_line_error(done, "train", "CheckpointDamagedError", damaged,
                        "no older checkpoint", "train from step 0")
  assert _files(checkpoints) == before  # Nothing moved or deleted.
  assert not os.path.exists(os.path.join(model_dir, "damaged_checkpoints"))


def test_a_damaged_initial_checkpoint_is_named(runs, tmp_path):
  source = _copy(runs, tmp_path)
  damaged = os.path.join(source, "checkpoints", "4", "params")
  _delete_array_file(os.path.dirname(damaged))
  done = _train(str(tmp_path / "sft"), 2, f"--gin.INITIAL_CHECKPOINT_PATH='{source}'",
                "--gin.MIXTURE_OR_TASK_NAME='synthetic_tokens'", run_file="sft")
  assert_one_line_error(done, "train", "CheckpointDamagedError", damaged,
                        f"INITIAL_CHECKPOINT_PATH={source!r}")
