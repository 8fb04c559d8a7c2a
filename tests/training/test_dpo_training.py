"""The DPO stage in the training loop: log 2 at the start, the same losses on every mesh
and with microbatches, learning the preference, and an exact resume against the frozen
reference (in process, on 8 fake devices)."""
import dataclasses
import os

import jax
import numpy as np
import pytest

from annotanchor.errors import SettingError
from annotanchor.model.preference_model import PreferenceModel
from annotanchor.training import loop, optim, partitioning, run_config
from tests import random_checkpoint
from tests.training import tiny_setup

PAIRS, LENGTH, PROMPT, ANNOTATION = 8, 16, 4, 3


def pair_batch(step: int) -> dict[str, np.ndarray]:
  """Pairs of one prompt, then per side an annotation (weight 0) and an answer (weight 1):
  chosen answers use ids 2..32, rejected ones 33..63, so the preference is learnable.

  Row layout: targets [p p p p | a a a | r r r r r r r r r], weights [0]*7 + [1]*9.
  """
  rng = np.random.default_rng([7, step])
  prompt = rng.integers(2, 64, (PAIRS, PROMPT))
  batch = {}
  for side, (low, high) in (("chosen", (2, 33)), ("rejected", (33, 64))):
    annotation = rng.integers(2, 64, (PAIRS, ANNOTATION))
    answer = rng.integers(low, high, (PAIRS, LENGTH - PROMPT - ANNOTATION))
    targets = np.concatenate([prompt, annotation, answer], 1).astype(np.int32)
    weights = np.zeros((PAIRS, LENGTH), np.float32)
    weights[:, PROMPT + ANNOTATION:] = 1
    batch[f"{side}_decoder_target_tokens"] = targets
    batch[f"{side}_decoder_input_tokens"] = np.concatenate(
        [np.zeros((PAIRS, 1), np.int32), targets[:, :-1]], 1)
    batch[f"{side}_decoder_loss_weights"] = weights
  return batch


def rehearsal_rows(step: int) -> dict[str, np.ndarray]:
  """One annotation-only row per pair: 4 to 9 weighted tokens, then padding (weight 0)."""
  rng = np.random.default_rng([8, step])
  targets = rng.integers(2, 64, (PAIRS, LENGTH)).astype(np.int32)
  weights = (np.arange(LENGTH)[None] < rng.integers(4, 10, (PAIRS, 1))).astype(np.float32)
  inputs = np.concatenate([np.zeros((PAIRS, 1), np.int32), targets[:, :-1]], 1)
  return {"rehearsal_decoder_input_tokens": inputs, "rehearsal_decoder_target_tokens": targets,
          "rehearsal_decoder_loss_weights": weights}


def _batches(start: int, rehearsal: bool = False):
  step = start
  while True:
    yield {**pair_batch(step), **(rehearsal_rows(step) if rehearsal else {})}
    step += 1


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  """A random TINY checkpoint: the policy to tune and its frozen reference."""
  return random_checkpoint.save(str(tmp_path_factory.mktemp("reference")), tiny_setup.TINY)


def _run(model_dir, reference, mesh_degrees=None, *, steps=3, devices=None, learning_rate=1e-3,
         rehearsal_weight=0.0, **settings):
  config = tiny_setup.config(model_dir, steps=steps, initial_checkpoint_path=reference,
                             **settings)
  preference = run_config.PreferenceConfig(
      beta=0.5, rehearsal_weight=rehearsal_weight,
      rehearsal_task="rehearsal_rows" if rehearsal_weight else None)
  config = dataclasses.replace(config, data=dataclasses.replace(config.data, pack=False),
                               preference=preference)
  tx, schedule = optim.make_optimizer(
      optim.OptimizerConfig(learning_rate=learning_rate, warmup_steps=1), 10)
  return loop.train_loop(
      config, model=PreferenceModel(tiny_setup.TINY, beta=0.5, rehearsal_weight=rehearsal_weight),
      optimizer=tx, schedule=schedule,
      mesh=partitioning.make_mesh(mesh_degrees or {"data": 8}, devices),
      dataset_fn=lambda start: _batches(start, rehearsal=bool(rehearsal_weight)),
      progress_bar=False)


def _records(model_dir):
  import json
  with open(os.path.join(model_dir, "train_metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


def test_same_dpo_losses_on_every_mesh_and_with_microbatches(tmp_path, reference):
  """Step 1 starts at policy = reference: loss log 2, margin 0. The losses of three steps
  agree to 1e-5 relative on one device, data x fsdp x model and 2 microbatches."""
  runs = {"single": ({"data": 1}, jax.devices()[:1], {}),
          "data2_fsdp2_model2": ({"data": 2, "fsdp": 2, "model": 2}, None, {}),
          "microbatches": ({"data": 4}, jax.devices()[:4], {"microbatches": 2})}
  losses = {}
  for name, (degrees, devices, settings) in runs.items():
    _run(str(tmp_path / name), reference, degrees, devices=devices, **settings)
    records = _records(str(tmp_path / name))
    losses[name] = [r["loss"] for r in records]
    np.testing.assert_allclose(records[0]["loss"], np.log(2), rtol=1e-6, err_msg=name)
    # Policy and reference are the same weights in two passes: a margin of rounding only.
    assert abs(records[0]["reward_margin"]) < 1e-5, name
  want = losses.pop("single")
  assert want[2] < want[0]  # It trains.
  for name, got in losses.items():
    np.testing.assert_allclose(got, want, rtol=1e-5, err_msg=name)


def test_dpo_learns_the_preference_and_resumes_exactly(tmp_path, reference):
  """Ten steps raise the reward margin and accuracy and lower the loss; a run stopped at
  step 5 and resumed (the reference restored again from the initial checkpoint) ends with
  the parameters and the logged metrics of the uninterrupted run."""
  whole = _run(str(tmp_path / "whole"), reference, steps=10, learning_rate=1e-2)
  records = _records(str(tmp_path / "whole"))
  assert records[-1]["loss"] < 0.5 * np.log(2), records[-1]
  assert records[-1]["reward_accuracy"] == 1.0 and records[-1]["reward_margin"] > 1.0
  _run(str(tmp_path / "resumed"), reference, steps=5, learning_rate=1e-2)
  resumed = _run(str(tmp_path / "resumed"), reference, steps=10, learning_rate=1e-2)
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(resumed.state.params),
               jax.device_get(whole.state.params))
  strip = lambda rs: [{k: v for k, v in r.items() if k not in ("tokens_per_second", "mfu")}
                      for r in rs]
  assert strip(_records(str(tmp_path / "resumed"))) == strip(records)


@pytest.mark.parametrize("change, message", [
    (dict(initial_checkpoint_path=None), "INITIAL_CHECKPOINT_PATH=None: expected the checkpoint"),
    (dict(pack=True), "DataConfig.pack=True: expected False: preference pairs are not packed"),
    (dict(preference=dict(loss_type="ipo", label_smoothing=0.1)),
     "PreferenceConfig.label_smoothing=0.1: expected a number in [0, 0.5), and 0 unless"),
    (dict(preference=dict(label_smoothing=0.5)), "PreferenceConfig.label_smoothing=0.5"),
    (dict(preference=dict(beta=0)), "PreferenceConfig.beta=0: expected a number > 0"),
    (dict(preference=dict(loss_type="hinge")), "PreferenceConfig.loss_type='hinge'"),
    (dict(preference=dict(rehearsal_task="x_annotation_only")),
     "PreferenceConfig.rehearsal_weight=0.0: expected a number > 0 with a rehearsal_task"),
    (dict(preference=dict(rehearsal_weight=0.1)), "PreferenceConfig.rehearsal_weight=0.1"),
])
def test_a_preference_run_refuses_what_it_cannot_use(change, message):
  def build():
    config = tiny_setup.config("unused", initial_checkpoint_path=change.get(
        "initial_checkpoint_path", "runs/sft"))
    return dataclasses.replace(
        config, data=dataclasses.replace(config.data, pack=change.get("pack", False)),
        preference=run_config.PreferenceConfig(**change.get("preference", {})))
  with pytest.raises(SettingError) as raised:
    build()
  assert message in str(raised.value)


def test_a_preference_run_refuses_a_task_of_single_sequences():
  import tasks  # noqa: F401  (registers synthetic_tokens)
  from annotanchor import train
  config = tiny_setup.config("unused", initial_checkpoint_path="runs/sft")
  config = dataclasses.replace(
      config, data=dataclasses.replace(config.data, pack=False,
                                       mixture_or_task_name="synthetic_tokens"),
      preference=run_config.PreferenceConfig())
  with pytest.raises(SettingError, match="'synthetic_tokens' is not a preference task"):
    train.check_objective_fits_task(config)
  train.check_objective_fits_task(dataclasses.replace(config, preference=None))


def test_rehearsal_adds_each_rows_mean_cross_entropy(reference):
  """With rehearsal_weight w the loss numerator gains w times the sum over the rehearsed
  rows of each row's mean cross-entropy (float64 reference on the same logits); the pairs'
  terms are unchanged."""
  import flax.linen as nn
  params = nn.meta.unbox(PreferenceModel(tiny_setup.TINY).init(jax.random.PRNGKey(1)))
  batch = {**pair_batch(0), **rehearsal_rows(0)}
  plain = PreferenceModel(tiny_setup.TINY, beta=0.5).loss_terms(params, batch, params)
  rehearsed = PreferenceModel(tiny_setup.TINY, beta=0.5, rehearsal_weight=0.3).loss_terms(
      params, batch, params)
  rows = {k[len("rehearsal_"):]: v for k, v in batch.items() if k.startswith("rehearsal_")}
  logits = np.asarray(PreferenceModel(tiny_setup.TINY).logits(params, rows), np.float64)
  top = logits.max(-1, keepdims=True)
  log_probs = logits - top - np.log(np.exp(logits - top).sum(-1, keepdims=True))
  token = -np.take_along_axis(log_probs, rows["decoder_target_tokens"][..., None], -1)[..., 0]
  weights = rows["decoder_loss_weights"]
  want = ((token * weights).sum(-1) / weights.sum(-1)).sum()
  np.testing.assert_allclose(float(rehearsed["rehearsal_sum"]), want, rtol=1e-6)
  np.testing.assert_allclose(float(rehearsed["numerator"]),
                             float(plain["numerator"]) + 0.3 * want, rtol=1e-6)
  assert float(rehearsed["denominator"]) == float(plain["denominator"]) == PAIRS


# Slow (27 s of CPU): the default run checks DPO's losses on every mesh and with
# microbatches (above) and the rehearsal term's value (test_rehearsal_adds_each_rows_...).
@pytest.mark.slow
def test_rehearsal_gives_the_same_losses_with_microbatches_on_another_mesh(tmp_path, reference):
  losses = {}
  for name, degrees, devices, settings in (
      ("single", {"data": 1}, jax.devices()[:1], {}),
      ("microbatches", {"data": 2, "fsdp": 2}, jax.devices()[:4], {"microbatches": 2})):
    _run(str(tmp_path / name), reference, degrees, devices=devices, rehearsal_weight=0.3,
         **settings)
    records = _records(str(tmp_path / name))
    losses[name] = [r["loss"] for r in records]
    assert all(r["rehearsal_cross_entropy"] > 0 for r in records)
  np.testing.assert_allclose(losses["microbatches"], losses["single"], rtol=1e-5)
