"""Meshes from degrees, the failures that name the culprit, and one loss on every mesh."""
import jax
import numpy as np
import pytest

from annotanchor.model.model import DecoderOnlyModel
from annotanchor.training import optim, partitioning, train_state
from tests.training import tiny_setup


def test_mesh_shape_fills_one_axis():
  assert partitioning.mesh_shape({"data": -1}, 8) == (8, 1, 1)
  assert partitioning.mesh_shape({"data": 2, "model": -1}, 8) == (2, 1, 4)
  assert partitioning.mesh_shape({"data": 2, "fsdp": 2, "model": 2}, 8) == (2, 2, 2)


@pytest.mark.parametrize("degrees, message", [
    ({"data": 3}, "multiply to 3 but there are 8 devices"),
    ({"data": 3, "model": -1}, "do not divide|does not divide"),
    ({"data": -1, "model": -1}, "at most one axis"),
    ({"tensor": 2}, "unknown axes"),
    ({"data": 0, "model": -1}, "positive"),
])
def test_bad_meshes_fail_with_the_reason(degrees, message):
  with pytest.raises(partitioning.MeshError, match=message):
    partitioning.make_mesh(degrees)


def test_undividable_parameter_is_named():
  tx, _ = optim.make_optimizer(optim.OptimizerConfig(), 10)
  mesh = partitioning.make_mesh({"data": 1, "model": 8})
  with pytest.raises(partitioning.MeshError, match=r"\['key'\]\['kernel'\].*kv_heads.*size 4"):
    train_state.abstract_state(DecoderOnlyModel(tiny_setup.TINY), tx, mesh)


def test_batch_that_does_not_split_is_refused():
  mesh = partitioning.make_mesh({"data": 4, "fsdp": 2})
  with pytest.raises(partitioning.MeshError, match="data\\*fsdp=8"):
    partitioning.check_batch(12, mesh)
  with pytest.raises(partitioning.MeshError, match="microbatches"):
    partitioning.check_batch(8, mesh, microbatches=3)


def test_same_losses_on_every_mesh(tmp_path):
  """The first losses agree to 1e-5 relative on data=8, fsdp=8, data=2 x model=4, 1 device."""
  meshes = {
      "single": ({"data": 1}, jax.devices()[:1]),
      "data8": ({"data": 8}, None),
      "fsdp8": ({"fsdp": 8}, None),
      "data2_model4": ({"data": 2, "model": 4}, None),
  }
  losses = {}
  for name, (degrees, devices) in meshes.items():
    tiny_setup.run(str(tmp_path / name), degrees, devices=devices)
    losses[name] = tiny_setup.logged_losses(str(tmp_path / name))
  reference = losses.pop("single")
  assert len(reference) == 3 and reference[0] != reference[2]  # It trains.
  for name, got in losses.items():
    np.testing.assert_allclose(got, reference, rtol=1e-5, err_msg=name)
