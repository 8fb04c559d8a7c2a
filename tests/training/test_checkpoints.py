"""Real Orbax checkpoints on disk: resharding restore, strict checks, fine-tune init, retention."""
import dataclasses
import glob
import os
import shutil

import jax
import numpy as np
import pytest

from annotanchor.model.model import DecoderOnlyModel
from annotanchor.training import checkpoints, optim, partitioning, train_state
from tests.training import tiny_setup


def _abstract(config, degrees):
  tx, _ = optim.make_optimizer(optim.OptimizerConfig(), 10)
  mesh = partitioning.make_mesh(degrees)
  return train_state.abstract_state(DecoderOnlyModel(config), tx, mesh)[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """4 uninterrupted steps on data=2 x model=4, and the same run stopped after 2."""
  root = tmp_path_factory.mktemp("ckpt")
  full = tiny_setup.run(str(root / "full"), {"data": 2, "model": 4}, steps=4)
  tiny_setup.run(str(root / "half"), {"data": 2, "model": 4}, steps=2)
  return root, full


def test_restore_on_another_mesh_and_continue(trained, tmp_path):
  root, full = trained
  abstract = _abstract(tiny_setup.TINY, {"fsdp": 8})
  restored = checkpoints.Checkpointer(str(root / "full"), save_every=10).restore(4, abstract)
  assert int(restored.step) == 4
  kernel = restored.params["layer_0"]["mlp"]["wi_0"]["kernel"]
  assert kernel.sharding.spec == abstract.params["layer_0"]["mlp"]["wi_0"]["kernel"].sharding.spec
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(restored.params),
               jax.device_get(full.state.params))
  # The half run, resumed on fsdp=8, reaches the uninterrupted run's losses and parameters.
  shutil.copytree(root / "half", tmp_path / "resumed")
  resumed = tiny_setup.run(str(tmp_path / "resumed"), {"fsdp": 8}, steps=4)
  np.testing.assert_allclose(tiny_setup.logged_losses(str(tmp_path / "resumed")),
                             tiny_setup.logged_losses(str(root / "full")), rtol=1e-5)
  # Adam divides by sqrt(v): mesh-dependent rounding lands at the scale of one update
  # (lr=1e-2); 1e-4 of it.
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
               jax.device_get(resumed.state.params), jax.device_get(full.state.params))


@pytest.mark.parametrize("change, message", [
    (dict(d_model=48), r"'embed/embedding' has shape \(64, 32\) in the checkpoint but the model expects \(64, 48\)"),
    (dict(num_layers=3), r"has no array 'layer_2/"),
    (dict(num_layers=1), r"arrays the model lacks, first 'layer_1/"),
    (dict(param_dtype="bfloat16"), r"dtype float32 in the checkpoint but the model expects bfloat16"),
])
def test_mismatched_checkpoint_is_refused(trained, change, message):
  root, _ = trained
  abstract = _abstract(dataclasses.replace(tiny_setup.TINY, **change), {"data": 8})
  with pytest.raises(checkpoints.CheckpointMismatchError, match=message):
    checkpoints.Checkpointer(str(root / "full"), save_every=10).restore(4, abstract)
  with pytest.raises(checkpoints.CheckpointMismatchError, match=message):
    checkpoints.restore_params(str(root / "full"), abstract.params)


def _data_files(step_dir, item):
  """The array data files of `item` (which of them hold an array depends on the mesh)."""
  return glob.glob(os.path.join(step_dir, item, "**", "d", "*"), recursive=True)


def _remove(step_dir, relative):
  path = os.path.join(step_dir, relative)
  shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)


def _truncate(path):
  os.truncate(path, os.path.getsize(path) // 2)


@pytest.mark.parametrize("damage, cause", [
    (lambda d: [os.remove(f) for f in _data_files(d, "params")],
     r'\(NOT_FOUND: .* in OCDBT database at local file "4/params/"'),
    (lambda d: [_truncate(f) for f in _data_files(d, "params")], r"\(OUT_OF_RANGE: "),
    (lambda d: [os.remove(f) for f in _data_files(d, "opt_state")],
     r'\(NOT_FOUND: .* local file "4/opt_state/"'),
    (lambda d: _remove(d, "params/_METADATA"), r"\(params/ has no readable metadata\)"),
    (lambda d: _truncate(os.path.join(d, "params", "_METADATA")), r"\(unreadable JSON: "),
    (lambda d: _remove(d, "params/manifest.ocdbt"), r"\(NOT_FOUND: "),
    (lambda d: _remove(d, "meta/metadata"), r"\(File 4/meta/metadata not found.\)"),
    (lambda d: _remove(d, "meta"), r"\(no meta/ directory\)"),
])
def test_damaged_checkpoint_is_named(trained, tmp_path, damage, cause):
  root, _ = trained
  shutil.copytree(root / "full", tmp_path / "run")
  step_dir = os.path.join(tmp_path, "run", "checkpoints", "4")
  damage(step_dir)
  abstract = _abstract(tiny_setup.TINY, {"data": 8})
  with pytest.raises(checkpoints.CheckpointDamagedError,
                     match=f"^the checkpoint at {step_dir} is damaged {cause}"):
    checkpoints.Checkpointer(str(tmp_path / "run"), save_every=10).restore(4, abstract)


def test_damaged_initial_checkpoint_is_named(trained, tmp_path):
  root, _ = trained
  shutil.copytree(root / "full", tmp_path / "run")
  params_dir = os.path.join(tmp_path, "run", "checkpoints", "4", "params")
  os.remove(os.path.join(params_dir, "_METADATA"))
  abstract = _abstract(tiny_setup.TINY, {"data": 8})
  with pytest.raises(checkpoints.CheckpointDamagedError,
                     match=f"^the checkpoint at {params_dir} is damaged .*INITIAL_CHECKPOINT_PATH"):
    checkpoints.restore_params(str(tmp_path / "run"), abstract.params)


# Slow (27 s of CPU): the default run resumes past a damaged latest checkpoint through the
# command (tests/faults/test_checkpoint_faults.py); this adds a second damage of the same
# step (kept as 4.1).
@pytest.mark.slow
def test_resume_sets_damaged_checkpoints_aside(trained, tmp_path):
  """Damaged twice at step 4: each copy is kept under its own name, step 4 is saved again
  and the parameters match the uninterrupted run's."""
  _, full = trained
  model_dir = str(tmp_path / "run")
  mesh = {"data": 2, "model": 4}
  tiny_setup.run(model_dir, mesh, steps=4, checkpoint_every=2)
  for aside in ("4", "4.1"):
    os.remove(os.path.join(model_dir, "checkpoints", "4", "params", "_METADATA"))
    resumed = tiny_setup.run(model_dir, mesh, steps=4, checkpoint_every=2)
    assert os.path.isdir(os.path.join(model_dir, "damaged_checkpoints", aside, "params"))
    assert sorted(os.listdir(os.path.join(model_dir, "checkpoints"))) == ["2", "4"]
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(resumed.state.params),
                 jax.device_get(full.state.params))


def test_other_restore_errors_propagate(trained, monkeypatch):
  """A TensorStore-like error that names no file of the checkpoint is not damage."""
  root, _ = trained
  ckpt = checkpoints.Checkpointer(str(root / "full"), save_every=10)
  def fail(*args, **kwargs):
    raise ValueError("FAILED_PRECONDITION: Error in some other store")
  monkeypatch.setattr(ckpt.manager, "restore", fail)
  with pytest.raises(ValueError, match="some other store") as raised:
    ckpt.restore(4, _abstract(tiny_setup.TINY, {"data": 8}))
  assert not isinstance(raised.value, checkpoints.CheckpointDamagedError)


def test_fine_tuning_takes_parameters_only(trained, tmp_path):
  root, full = trained
  result = tiny_setup.run(str(tmp_path / "sft"), {"data": 8}, steps=0,
                          initial_checkpoint_path=str(root / "full"))
  assert int(result.state.step) == 0
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(result.state.params),
               jax.device_get(full.state.params))
  moments = [x for x in jax.tree.leaves(result.state.opt_state) if np.ndim(x) >= 2]
  assert moments and all(not np.any(np.asarray(m)) for m in moments)  # Fresh Adam moments.


def test_initial_checkpoint_path_forms(trained, tmp_path):
  root, _ = trained
  step_dir = os.path.join(root, "full", "checkpoints", "4")
  for path in (str(root / "full"), os.path.join(root, "full", "checkpoints"), step_dir):
    assert checkpoints.resolve_params_dir(path) == os.path.join(step_dir, "params")
  with pytest.raises(FileNotFoundError, match="holds no checkpoint"):
    checkpoints.resolve_params_dir(str(tmp_path))


def test_keeps_the_last_k(tmp_path):
  tiny_setup.run(str(tmp_path), {"data": 8}, steps=5, checkpoint_every=1, keep_checkpoints=2)
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["4", "5"]


@pytest.mark.slow
def test_relative_model_dir(tmp_path, monkeypatch):
  """MODEL_DIR='runs/x' (what users type) saves, resumes and fine-tunes."""
  monkeypatch.chdir(tmp_path)
  tiny_setup.run("runs/x", {"data": 8}, steps=1)
  resumed = tiny_setup.run("runs/x", {"data": 8}, steps=2)
  assert int(resumed.state.step) == 2
  assert sorted(os.listdir(tmp_path / "runs/x/checkpoints")) == ["1", "2"]
  tiny_setup.run("runs/y", {"data": 8}, steps=0, initial_checkpoint_path="runs/x")
