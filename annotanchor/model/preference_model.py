"""The Model of a preference stage: the decoder with a DPO-family objective over pairs.

A batch holds each pair's two responses as rows of their own (the data layer's
`PreferenceFeatureConverter`), every feature prefixed by its side:

  chosen_decoder_input_tokens    chosen_decoder_target_tokens    chosen_decoder_loss_weights
  rejected_decoder_input_tokens  rejected_decoder_target_tokens  rejected_decoder_loss_weights

Row i of the chosen features and row i of the rejected ones are one pair. The loss
weights are 1 on the response and its end, 0 on the prompt, the annotation (anchored
DPO) and padding, so a response's log-probability is the weighted sum
`preference_losses.sequence_log_probs` takes.

With `rehearsal_weight` > 0 the batch also holds one language-model row per pair,
`rehearsal_decoder_*` (annotation-only sequences, as the anchored SFT mixture rehearses
them), and the loss per pair adds `rehearsal_weight` times that row's mean cross-entropy
over its weighted tokens. Each term is a sum over pairs divided by the number of pairs,
so microbatches still add up exactly.
"""
from __future__ import annotations

import dataclasses
from typing import Mapping

import jax
import jax.numpy as jnp

from annotanchor.model import preference_losses
from annotanchor.model.losses import token_cross_entropy
from annotanchor.model.model import DecoderOnlyModel

SIDES = ("chosen", "rejected")
ROW_FEATURES = ("decoder_input_tokens", "decoder_target_tokens", "decoder_loss_weights")
PAIR_FEATURES = tuple(f"{side}_{name}" for side in SIDES for name in ROW_FEATURES)
# The rows of annotation-only sequences rehearsed beside the pairs (one per pair).
REHEARSAL = "rehearsal"
REHEARSAL_FEATURES = tuple(f"{REHEARSAL}_{name}" for name in ROW_FEATURES)


def side_batch(batch: Mapping[str, jax.Array], side: str) -> dict[str, jax.Array]:
  """The `decoder_*` features of one side of the pairs, without their prefix."""
  prefix = f"{side}_"
  return {k[len(prefix):]: v for k, v in batch.items() if k.startswith(prefix)}


@dataclasses.dataclass(frozen=True)
class PreferenceModel(DecoderOnlyModel):
  """The decoder trained on preference pairs against a frozen reference.

  Attributes (besides DecoderOnlyModel's, whose z_loss and normalization it does not use):
    beta: the KL strength of the objective.
    label_smoothing: conservative DPO's label-noise rate (sigmoid only).
    loss_type: one of `preference_losses.LOSS_TYPES`.
    rehearsal_weight: the weight of the rehearsed rows' cross-entropy (0: no rehearsal).
  """
  beta: float = 0.1
  label_smoothing: float = 0.0
  loss_type: str = "sigmoid"
  rehearsal_weight: float = 0.0

  @property
  def features(self) -> tuple[str, ...]:
    """The features a batch of this model holds."""
    return PAIR_FEATURES + (REHEARSAL_FEATURES if self.rehearsal_weight else ())

  def response_log_probs(self, params, batch: Mapping[str, jax.Array], side: str):
    """([pairs] summed log-probs, [pairs] token counts) of one side's responses."""
    rows = side_batch(batch, side)
    return preference_losses.sequence_log_probs(
        self.logits(params, rows), rows["decoder_target_tokens"], rows["decoder_loss_weights"])

  def loss_terms(self, params, batch: Mapping[str, jax.Array], reference_params):
    """(numerator, denominator, metric sums) of the pairs' mean loss.

    The reference's forward passes run here, in the step, under stop_gradient: nothing of
    them is kept for the backward pass (docs/training.md, "The reference policy").
    """
    missing = [f for f in self.features if f not in batch]
    if missing:
      raise KeyError(f"batch lacks features {missing}; it has {sorted(batch)}")
    policy, reference, tokens = {}, {}, {}
    for side in SIDES:
      policy[side], tokens[side] = self.response_log_probs(params, batch, side)
      reference[side] = jax.lax.stop_gradient(
          self.response_log_probs(reference_params, batch, side)[0])
    losses, chosen_rewards, rejected_rewards = preference_losses.pair_losses(
        policy["chosen"], policy["rejected"], reference["chosen"], reference["rejected"],
        beta=self.beta, label_smoothing=self.label_smoothing, loss_type=self.loss_type,
        chosen_tokens=tokens["chosen"], rejected_tokens=tokens["rejected"])
    terms = preference_losses.preference_terms(losses, chosen_rewards, rejected_rewards)
    terms["weight_sum"] = tokens["chosen"].sum() + tokens["rejected"].sum()
    terms["chosen_log_prob_sum"] = jnp.sum(policy["chosen"])
    if self.rehearsal_weight:
      rehearsal = self.rehearsal_sum(params, batch)
      terms["numerator"] = terms["numerator"] + self.rehearsal_weight * rehearsal
      terms["rehearsal_sum"] = rehearsal
    return terms

  def rehearsal_sum(self, params, batch: Mapping[str, jax.Array]):
    """The sum over the rehearsed rows of each row's mean cross-entropy (a row without
    weighted tokens adds 0)."""
    rows = side_batch(batch, REHEARSAL)
    weights = rows["decoder_loss_weights"].astype(jnp.float32)
    cross_entropy, _ = token_cross_entropy(self.logits(params, rows),
                                           rows["decoder_target_tokens"], 0.0)
    per_row = jnp.sum(cross_entropy * weights, axis=-1)
    return jnp.sum(per_row / jnp.maximum(jnp.sum(weights, axis=-1), 1.0))

  def metrics(self, terms) -> dict[str, jax.Array]:
    """The step's metrics from the summed terms (after microbatches are added)."""
    pairs = jnp.maximum(terms["denominator"], 1.0)
    metrics = {**preference_losses.preference_metrics(terms),
               # Whether DPO lowers the chosen responses' likelihood (a known failure mode).
               "chosen_log_prob": terms["chosen_log_prob_sum"] / pairs,
               "loss_tokens": terms["weight_sum"]}
    if "rehearsal_sum" in terms:
      metrics["rehearsal_cross_entropy"] = terms["rehearsal_sum"] / pairs
    return metrics
