"""A checkpoint path is resolved to one step directory once: a MODEL_DIR that gains a newer
step while infer or serve loads it cannot give them the metadata of one step and the
weights of the next."""
import jax
import numpy as np
import seqio

from annotanchor.decoding import from_checkpoint
from annotanchor.training import checkpoints
from annotanchor.training.given_model import GivenModel
from tests import random_checkpoint


def _leaves(params):
  return [np.asarray(x) for x in jax.tree.leaves(params)]


def test_a_step_saved_between_the_metadata_and_the_weights_is_not_read(tmp_path, monkeypatch):
  model_dir = random_checkpoint.save(str(tmp_path / "run"), step=1, seed=0)
  read_metadata = from_checkpoint.metadata_lib.read_metadata
  saved_meanwhile = []

  def read_then_a_newer_step_is_saved(path, setting):
    found = read_metadata(path, setting)
    random_checkpoint.save(model_dir, step=2, seed=1)  # The run goes on training.
    saved_meanwhile.append(checkpoints.resolve_step_dir(model_dir))
    return found

  monkeypatch.setattr(from_checkpoint.metadata_lib, "read_metadata",
                      read_then_a_newer_step_is_saved)
  setup = from_checkpoint.restore_for_sampling(
      model_dir, model=GivenModel(config=random_checkpoint.TINY_BYTES),
      vocabulary=seqio.ByteVocabulary(), template=None)
  assert saved_meanwhile == [str(tmp_path / "run" / "checkpoints" / "2")]  # Now the latest.
  step_1 = checkpoints.restore_params(str(tmp_path / "run" / "checkpoints" / "1"),
                                      setup.sampler.abstract_params)
  step_2 = checkpoints.restore_params(str(tmp_path / "run" / "checkpoints" / "2"),
                                      setup.sampler.abstract_params)
  assert not all(np.array_equal(a, b) for a, b in zip(_leaves(step_1), _leaves(step_2)))
  for got, want in zip(_leaves(setup.params), _leaves(step_1)):
    np.testing.assert_array_equal(got, want)


def test_a_path_resolves_to_its_step_directory(tmp_path):
  model_dir = random_checkpoint.save(str(tmp_path / "run"), step=3)
  step_dir = str(tmp_path / "run" / "checkpoints" / "3")
  for path in (model_dir, f"{model_dir}/checkpoints", step_dir):
    assert checkpoints.resolve_step_dir(path) == step_dir
