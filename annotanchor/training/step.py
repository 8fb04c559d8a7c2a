"""The jitted, sharded train step: gradient accumulation, clipping, AdamW, a NaN/Inf guard."""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import optax
from jax.sharding import NamedSharding, PartitionSpec as P

from annotanchor.errors import SettingError
from annotanchor.model.model import DecoderOnlyModel
from annotanchor.model.preference_model import PreferenceModel
from annotanchor.training import partitioning, train_state
from annotanchor.training.train_state import TrainState

NAN_POLICIES = ("skip", "stop", "off")


def split_microbatches(batch, microbatches: int):
  """[B, ...] -> [M, B/M, ...] with strided rows, so each device keeps its own rows.

  Example with B=4, M=2: rows [r0, r1, r2, r3] -> microbatch 0 = [r0, r2],
  microbatch 1 = [r1, r3]. Row order does not matter: the loss sums over rows.
  """
  def split(x):
    return x.reshape(x.shape[0] // microbatches, microbatches, *x.shape[1:]).swapaxes(0, 1)
  return jax.tree.map(split, batch)


def _sum_terms(model, params, batch, frozen):
  """Gradient of the loss numerator, and the loss terms; `frozen` (a preference model's
  reference parameters, or nothing) is passed to the loss and gets no gradient."""
  def numerator(p):
    terms = model.loss_terms(p, batch, *frozen)
    return terms["numerator"], terms
  (_, terms), grads = jax.value_and_grad(numerator, has_aux=True)(params)
  return grads, terms


def make_train_step(model: DecoderOnlyModel, tx: optax.GradientTransformation,
                    schedule: Callable, *, microbatches: int = 1, nan_policy: str = "skip",
                    mesh=None, unroll_microbatches: bool = False):
  """Builds `step(state, batch, *frozen) -> (state, metrics)` (not yet jitted).

  Gradients of the loss numerator are summed over microbatches and divided once by the
  summed denominator, so M microbatches of B/M rows give the same update as one batch of B.
  `frozen` is what the model's loss reads besides its parameters and gets no gradient: a
  `PreferenceModel`'s reference parameters, nothing for a language model. The metrics
  are the loss, the model's own (`model.metrics`), the gradient norm and learning rate.

  Args:
    model: the model (network + loss).
    tx: the optimizer.
    schedule: learning-rate schedule, for the metric.
    microbatches: gradient-accumulation steps per update.
    nan_policy: "skip" keeps the old parameters and optimizer state when the loss or the
      gradient norm is not finite; "stop" does the same and the loop then stops with an
      error; "off" applies the update regardless.
    mesh: when set, each microbatch is constrained to the batch sharding.
    unroll_microbatches: unroll the accumulation loop (XLA's cost analysis counts a loop
      body once; `annotanchor compile` unrolls to count every microbatch).
  """
  if nan_policy not in NAN_POLICIES:
    raise SettingError(f"nan_policy={nan_policy!r}; expected one of {NAN_POLICIES}")

  def step(state: TrainState, batch, *frozen):
    if microbatches == 1:
      grads, terms = _sum_terms(model, state.params, batch, frozen)
    else:
      stacked = split_microbatches(batch, microbatches)
      if mesh is not None:
        stacked = jax.lax.with_sharding_constraint(
            stacked, NamedSharding(mesh, P(None, partitioning.BATCH_AXES)))
      def accumulate(carry, micro):
        grads, terms = _sum_terms(model, state.params, micro, frozen)
        return jax.tree.map(jnp.add, carry, (grads, terms)), None
      zeros = jax.tree.map(
          jnp.zeros_like,
          jax.eval_shape(lambda: _sum_terms(model, state.params,
                                            jax.tree.map(lambda x: x[0], stacked), frozen)))
      (grads, terms), _ = jax.lax.scan(accumulate, zeros, stacked, unroll=unroll_microbatches)

    denominator = jnp.where(terms["denominator"] > 0, terms["denominator"], 1.0)
    grads = jax.tree.map(lambda g: g / denominator, grads)
    loss = terms["numerator"] / denominator
    grad_norm = optax.tree.norm(grads)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
    if nan_policy != "off":
      keep_new = lambda new, old: jnp.where(finite, new, old)
      params = jax.tree.map(keep_new, params, state.params)
      opt_state = jax.tree.map(keep_new, opt_state, state.opt_state)
    metrics = {
        "loss": loss,
        **model.metrics(terms),
        "grad_norm": grad_norm,
        "learning_rate": schedule(state.step),
        "nonfinite": (~finite).astype(jnp.int32),
    }
    return TrainState(step=state.step + 1, params=params, opt_state=opt_state), metrics

  return step


def jit_train_step(step_fn, state_shardings, mesh, frozen_shardings=()):
  """jax.jit with state and batch shardings, the old state donated, and the logical-axis
  rules in scope so the model's activation constraints apply (partitioning.logical_jit).
  `frozen_shardings`: those of the step's frozen arguments (a reference's parameters),
  which are read, never donated."""
  replicated = NamedSharding(mesh, P())
  return partitioning.logical_jit(
      step_fn, mesh,
      in_shardings=(state_shardings, partitioning.batch_sharding(mesh), *frozen_shardings),
      out_shardings=(state_shardings, replicated),
      donate_argnums=(0,))


def sharded_train_step(model: DecoderOnlyModel, tx: optax.GradientTransformation,
                       schedule: Callable, mesh, *, batch_size: int, microbatches: int = 1,
                       nan_policy: str = "skip", unroll_microbatches: bool = False):
  """What the training loop runs and `annotanchor compile` lowers, for one mesh.

  A `PreferenceModel`'s step takes the reference parameters as a third argument,
  sharded like the policy's: `step(state, batch, reference_params)`.

  Returns:
    (jitted step, abstract state with shardings, state shardings).

  Raises:
    MeshError: the batch or a parameter does not divide by its mesh axes.
  """
  partitioning.check_batch(batch_size, mesh, microbatches)
  abstract, shardings = train_state.abstract_state(model, tx, mesh)
  step_fn = make_train_step(model, tx, schedule, microbatches=microbatches,
                            nan_policy=nan_policy, mesh=mesh,
                            unroll_microbatches=unroll_microbatches)
  frozen = (shardings.params,) if isinstance(model, PreferenceModel) else ()
  return jit_train_step(step_fn, shardings, mesh, frozen), abstract, shardings
