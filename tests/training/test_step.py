"""The train step: accumulation equals the big batch, the NaN guard, masking, the
activation sharding constraints."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from annotanchor.model.model import DecoderOnlyModel
from annotanchor.training import optim, partitioning, step as step_lib, train_state
from tests.hlo_constraints import sharding_constraints
from tests.training import tiny_setup


def _setup(mesh_degrees, normalization="weights", nan_policy="skip", microbatches=1, tx=None):
  model = DecoderOnlyModel(tiny_setup.TINY, loss_normalization=normalization)
  adamw, schedule = optim.make_optimizer(optim.OptimizerConfig(warmup_steps=0), 10)
  tx = tx or adamw
  mesh = partitioning.make_mesh(mesh_degrees)
  _, shardings = train_state.abstract_state(model, tx, mesh)
  fn = step_lib.jit_train_step(step_lib.make_train_step(
      model, tx, schedule, microbatches=microbatches, nan_policy=nan_policy, mesh=mesh),
      shardings, mesh)
  state = train_state.init_state(model, tx, jax.random.PRNGKey(0), shardings)
  return fn, state


def _gradient_recorder() -> optax.GradientTransformation:
  """An "optimizer" whose state is the last gradient it was given (and no update)."""
  return optax.GradientTransformation(
      init=lambda params: jax.tree.map(jnp.zeros_like, params),
      update=lambda grads, state, params=None: (jax.tree.map(jnp.zeros_like, grads), grads))


@pytest.mark.parametrize("normalization", ["weights", *(pytest.param(n, marks=pytest.mark.slow)
                                                       for n in ("tokens", "sequences"))])
def test_gradient_accumulation_equals_the_big_batch(normalization):
  """The gradient the optimizer receives, compared directly (an Adam update would be
  about lr * sign(g) and turn float32 rounding on near-zero entries into lr-sized noise)."""
  batch = tiny_setup.packed_batch(0)
  big_fn, big_state = _setup({"data": 2, "model": 4}, normalization, tx=_gradient_recorder())
  acc_fn, acc_state = _setup({"data": 2, "model": 4}, normalization, microbatches=4,
                             tx=_gradient_recorder())
  big_state, big_metrics = big_fn(big_state, batch)
  acc_state, acc_metrics = acc_fn(acc_state, batch)
  np.testing.assert_allclose(acc_metrics["loss"], big_metrics["loss"], rtol=1e-6)
  np.testing.assert_allclose(acc_metrics["grad_norm"], big_metrics["grad_norm"], rtol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7),
               jax.device_get(acc_state.opt_state), jax.device_get(big_state.opt_state))


def test_split_microbatches_keeps_strided_rows():
  rows = {"x": np.arange(6)[:, None]}
  split = step_lib.split_microbatches(rows, 2)["x"][..., 0]
  np.testing.assert_array_equal(split, [[0, 2, 4], [1, 3, 5]])


@pytest.mark.parametrize("policy, kept", [("skip", True), ("stop", True), ("off", False)])
def test_nonfinite_loss_guard(policy, kept):
  fn, state = _setup({"data": 8}, nan_policy=policy)
  before = jax.device_get(state.params)
  batch = dict(tiny_setup.packed_batch(0))
  batch["decoder_loss_weights"] = batch["decoder_loss_weights"] * np.float32("nan")
  state, metrics = fn(state, batch)
  assert int(metrics["nonfinite"]) == 1 and int(state.step) == 1
  after = jax.device_get(state.params)
  same = all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(after)))
  assert same == kept


def test_masked_tokens_do_not_move_the_update():
  """Changing targets where the loss weight is 0 leaves the whole update unchanged."""
  batch = tiny_setup.packed_batch(0)
  other = dict(batch)
  masked = batch["decoder_loss_weights"] == 0
  other["decoder_target_tokens"] = np.where(masked, 2 + (batch["decoder_target_tokens"] + 7) % 60,
                                            batch["decoder_target_tokens"]).astype(np.int32)
  assert (other["decoder_target_tokens"] != batch["decoder_target_tokens"]).any()
  results = []
  for b in (batch, other):
    fn, state = _setup({"data": 8})
    results.append(jax.device_get(fn(state, b)[0].params))
  jax.tree.map(np.testing.assert_array_equal, *results)


def test_stop_policy_stops_the_loop(tmp_path):
  from annotanchor.training import loop
  fn = tiny_setup.dataset_fn()
  def poisoned(start):
    for i, b in enumerate(fn(start)):
      yield {**b, "decoder_loss_weights": b["decoder_loss_weights"] * (np.nan if i == 3 else 1)}
  tx, schedule = optim.make_optimizer(optim.OptimizerConfig(), 10)
  with pytest.raises(loop.NonFiniteLossError, match=r"step\(s\) \[4\]"):
    loop.train_loop(tiny_setup.config(str(tmp_path), steps=6, nan_policy="stop", log_every=2),
                    model=DecoderOnlyModel(tiny_setup.TINY), optimizer=tx, schedule=schedule,
                    mesh=partitioning.make_mesh({"data": 8}), dataset_fn=poisoned,
                    progress_bar=False)


def test_activation_constraints_reach_the_lowered_train_step():
  """The model's logical activation constraints (layers.constrain) are in the step XLA gets:
  rows over data+fsdp, heads and MLP width over model. Without the rules and a mesh in
  scope while tracing they were silently dropped, and XLA laid activations out freely."""
  model = DecoderOnlyModel(tiny_setup.TINY)  # d_model 32, 8 heads (4 kv) of 8, mlp 64.
  tx, schedule = optim.make_optimizer(optim.OptimizerConfig(warmup_steps=0), 10)
  mesh = partitioning.make_mesh({"data": 2, "fsdp": 2, "model": 2})
  step, abstract, _ = step_lib.sharded_train_step(model, tx, schedule, mesh, batch_size=8)
  constraints = sharding_constraints(step.lower(abstract, tiny_setup.packed_batch(0)).as_text())
  rows = '{"data","fsdp"}'
  expected = {
      (f"{rows},{{}},{{}}", "8x16x32xf32"),  # Residual stream [batch, length, embed].
      (f'{rows},{{}},{{"model"}},{{}}', "8x16x8x8xf32"),  # Queries [.., heads, kv].
      (f'{rows},{{}},{{"model"}},{{}}', "8x16x4x8xf32"),  # Keys, values [.., kv_heads, kv].
      # MLP hidden [.., mlp] and logits [.., vocab], both 64 wide.
      (f'{rows},{{}},{{"model"}}', "8x16x64xf32"),
  }
  assert expected <= constraints, sorted(constraints)
