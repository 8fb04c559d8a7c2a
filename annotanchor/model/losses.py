"""Weighted cross-entropy with z-loss, returned as (numerator, denominator) pairs.

Returning the sum and its normaliser separately lets gradient accumulation add both over
microbatches and divide once, so accumulated and big-batch steps agree exactly for every
normalisation.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from annotanchor.errors import SettingError

NORMALIZATIONS = ("weights", "tokens", "sequences")


def token_cross_entropy(logits, targets, z_loss: float):
  """Per-token cross-entropy and z-loss term.

  Args:
    logits: [batch, length, vocab] float32.
    targets: [batch, length] int32.
    z_loss: coefficient of log(Z)^2 (PaLM's auxiliary loss that keeps logits near 0).

  Returns:
    (cross_entropy, z_term), each [batch, length] float32.
  """
  logits = logits.astype(jnp.float32)
  log_z = jax.nn.logsumexp(logits, axis=-1)
  target_logit = jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
  return log_z - target_logit, z_loss * jnp.square(log_z)


def loss_terms(logits, targets, weights, segment_ids=None, *, z_loss: float = 0.0,
               normalization: str = "weights"):
  """Weighted loss as a (numerator, denominator) pair; the loss is their ratio.

  Normalisations:
    "weights": sum(w * loss) / sum(w): the mean over real target tokens (t5x's default).
    "tokens": sum(w * loss) / (batch * length): a constant denominator, so each token's
      gradient does not depend on how many other tokens are masked.
    "sequences": each sequence (each segment of a packed row) is averaged over its own
      weighted tokens, then sequences are averaged.

  Example ("weights"): weights [[0, 1, 1, 0]], token losses [[5, 2, 4, 9]] give
  numerator 6, denominator 2, loss 3: masked tokens contribute neither loss nor gradient.

  Args:
    logits: [batch, length, vocab].
    targets: [batch, length] int32.
    weights: [batch, length] per-token loss weights (0 masks a token).
    segment_ids: [batch, length] packing segment ids, used by "sequences".
    z_loss: z-loss coefficient.
    normalization: one of NORMALIZATIONS.

  Returns:
    dict with "numerator", "denominator" (scalars) and the weighted sums "cross_entropy_sum",
    "z_loss_sum" and "weight_sum" for metrics.
  """
  if normalization not in NORMALIZATIONS:
    raise SettingError(f"loss normalization {normalization!r}; expected one of {NORMALIZATIONS}")
  weights = weights.astype(jnp.float32)
  xent, z_term = token_cross_entropy(logits, targets, z_loss)
  per_token = (xent + z_term) * weights
  terms = {
      "cross_entropy_sum": jnp.sum(xent * weights),
      "z_loss_sum": jnp.sum(z_term * weights),
      "weight_sum": jnp.sum(weights),
  }
  if normalization == "weights":
    terms.update(numerator=jnp.sum(per_token), denominator=terms["weight_sum"])
  elif normalization == "tokens":
    terms.update(numerator=jnp.sum(per_token), denominator=jnp.float32(weights.size))
  else:
    batch, length = weights.shape
    if segment_ids is None:
      segment_ids = jnp.ones_like(targets)
    # One bucket per (row, segment id); segment ids are < length.
    bucket = (jnp.arange(batch)[:, None] * length + segment_ids).reshape(-1)
    seq_loss = jax.ops.segment_sum(per_token.reshape(-1), bucket, batch * length)
    seq_weight = jax.ops.segment_sum(weights.reshape(-1), bucket, batch * length)
    present = seq_weight > 0
    terms.update(
        numerator=jnp.sum(jnp.where(present, seq_loss / jnp.where(present, seq_weight, 1.0), 0.0)),
        denominator=jnp.sum(present.astype(jnp.float32)))
  return terms
