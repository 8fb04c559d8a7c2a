"""The train state, and building it (abstractly, then sharded) from the model."""
from __future__ import annotations

from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from annotanchor.model.model import DecoderOnlyModel
from annotanchor.training import partitioning


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: Any
  opt_state: Any


def boxed_init_fn(model: DecoderOnlyModel, tx: optax.GradientTransformation):
  """rng -> TrainState whose leaves are still nn.LogicallyPartitioned boxes.

  The optimizer is initialised on the boxed parameters, so its moments carry the same
  logical names as the parameters they follow.
  """
  def init(rng):
    params = model.init(rng)
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params))
  return init


def abstract_state(model, tx, mesh, rules=partitioning.DEFAULT_RULES):
  """(abstract unboxed state with shardings, state shardings), without allocating.

  Raises:
    MeshError: a parameter dimension does not divide by its mesh axes.
  """
  boxed = jax.eval_shape(boxed_init_fn(model, tx), jax.random.PRNGKey(0))
  return partitioning.sharded_abstract(boxed, mesh, rules)


def init_state(model, tx, rng, shardings):
  """Materialises a fresh state directly in its shardings (no host copy)."""
  init = boxed_init_fn(model, tx)
  return jax.jit(lambda r: nn.meta.unbox(init(r)), out_shardings=shardings)(rng)
