"""The Model: the network plus its loss and the batch features it reads (t5x's split)."""
from __future__ import annotations

import dataclasses
from typing import Mapping

import jax
import jax.numpy as jnp

from annotanchor.model.config import TransformerConfig
from annotanchor.model.losses import loss_terms
from annotanchor.model.transformer import Decoder

# Features of a training batch, as produced by the data layer's feature converter.
REQUIRED_FEATURES = ("decoder_input_tokens", "decoder_target_tokens", "decoder_loss_weights")
PACKING_FEATURES = ("decoder_segment_ids", "decoder_positions")


@dataclasses.dataclass(frozen=True)
class DecoderOnlyModel:
  """A decoder-only LM trained on per-token weighted cross-entropy.

  Attributes:
    config: the network's shape and numerics.
    z_loss: coefficient of the z-loss.
    loss_normalization: see annotanchor.model.losses.NORMALIZATIONS.
  """

  config: TransformerConfig
  z_loss: float = 1e-4
  loss_normalization: str = "weights"

  @property
  def network(self) -> Decoder:
    return Decoder(self.config)

  def init(self, rng, batch_size: int = 1, length: int = 8):
    """Initial (boxed, logically partitioned) parameters."""
    tokens = jnp.zeros((batch_size, length), jnp.int32)
    return self.network.init(rng, tokens)["params"]

  def logits(self, params, batch: Mapping[str, jax.Array]):
    return self.network.apply(
        {"params": params}, batch["decoder_input_tokens"],
        positions=batch.get("decoder_positions"), segment_ids=batch.get("decoder_segment_ids"))

  def loss_terms(self, params, batch: Mapping[str, jax.Array]):
    """(numerator, denominator, metric sums) of the batch's loss; see losses.loss_terms."""
    missing = [f for f in REQUIRED_FEATURES if f not in batch]
    if missing:
      raise KeyError(f"batch lacks features {missing}; it has {sorted(batch)}")
    return loss_terms(
        self.logits(params, batch), batch["decoder_target_tokens"], batch["decoder_loss_weights"],
        batch.get("decoder_segment_ids"), z_loss=self.z_loss,
        normalization=self.loss_normalization)

  def metrics(self, terms) -> dict[str, jax.Array]:
    """The step's metrics from the summed loss terms (after microbatches are added)."""
    weight_sum = jnp.maximum(terms["weight_sum"], 1e-9)
    return {"cross_entropy": terms["cross_entropy_sum"] / weight_sum,
            "z_loss": terms["z_loss_sum"] / weight_sum,
            "loss_tokens": terms["weight_sum"]}
