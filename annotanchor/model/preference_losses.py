"""Preference objectives (DPO and relatives) from per-sequence log-probabilities.

A preference pair is a prompt x with a chosen response y_w and a rejected one y_l. With
log pi(y | x) the summed log-probability of a response's tokens under the policy being
trained and log ref(y | x) under the frozen reference policy (the initial checkpoint),

  h = [log pi(y_w|x) - log ref(y_w|x)] - [log pi(y_l|x) - log ref(y_l|x)]

and per pair (Rafailov et al. 2023; Mitchell 2023; Azar et al. 2023):

  sigmoid (DPO)          -log sigmoid(beta h)
    label_smoothing e    -(1 - e) log sigmoid(beta h) - e log sigmoid(-beta h)
                         (conservative DPO: the labels are taken to be flipped with
                         probability e)
  ipo                    (h_avg - 1 / (2 beta))^2, h_avg with each log-ratio divided by
                         its response's token count (the length-normalised form trl uses,
                         confirmed by the IPO authors)

"Summed over a response's tokens" means weighted by the per-token loss weights of the
data: 0 on the prompt and, in anchored DPO, on the annotation (docs/design.md 7), so
those tokens enter neither the objective nor its gradient.

Losses are returned as (numerator, denominator) sums, like `losses.loss_terms`, so that
gradient accumulation over microbatches adds them and divides once: the loss is the
mean over pairs.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

LOSS_TYPES = ("sigmoid", "ipo")


def sequence_log_probs(logits, targets, weights):
  """Per-row weighted sums of the targets' log-probabilities, and of the weights.

  Example (one row, vocabulary of 2, uniform logits so log p = log 0.5 = -0.693):

    targets = [[1, 0, 1, 1]], weights = [[0, 0, 1, 1]]  (prompt, prompt, response, EOS)
    -> log_probs = [-1.386] (= 2 x -0.693: only the weighted tokens), tokens = [2.0]

  Args:
    logits: [batch, length, vocab] (any float dtype; computed in float32 or wider).
    targets: [batch, length] int.
    weights: [batch, length] per-token weights (0 leaves a token out).

  Returns:
    (log_probs, tokens), each [batch]: sum_t w_t log p(target_t) and sum_t w_t.
  """
  dtype = jnp.promote_types(logits.dtype, jnp.float32)
  logits = logits.astype(dtype)
  weights = weights.astype(dtype)
  log_z = jax.nn.logsumexp(logits, axis=-1)
  target_logit = jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
  # A masked token's log-probability is selected away rather than only multiplied by 0,
  # so that an overflowing logit there (0 * inf is NaN) cannot reach the loss.
  token_log_probs = jnp.where(weights != 0, (target_logit - log_z) * weights, 0.0)
  return jnp.sum(token_log_probs, axis=-1), jnp.sum(weights, axis=-1)


def pair_losses(policy_chosen, policy_rejected, reference_chosen, reference_rejected, *,
                beta: float, label_smoothing: float = 0.0, loss_type: str = "sigmoid",
                chosen_tokens=None, rejected_tokens=None):
  """Per-pair preference losses and the implicit rewards (see the module docstring).

  Args:
    policy_chosen, policy_rejected: [pairs] summed log-probs under the policy.
    reference_chosen, reference_rejected: [pairs] the same under the frozen reference.
    beta: the KL strength (IPO's tau).
    label_smoothing: conservative DPO's label-noise rate e in [0, 0.5) (sigmoid only).
    loss_type: one of LOSS_TYPES.
    chosen_tokens, rejected_tokens: [pairs] weighted token counts (ipo only).

  Returns:
    (losses, chosen_rewards, rejected_rewards), each [pairs]; a reward is
    beta * (log pi - log ref) of its response.
  """
  chosen_ratio = policy_chosen - reference_chosen
  rejected_ratio = policy_rejected - reference_rejected
  if loss_type == "sigmoid":
    h = beta * (chosen_ratio - rejected_ratio)
    losses = -(1.0 - label_smoothing) * jax.nn.log_sigmoid(h) \
        - label_smoothing * jax.nn.log_sigmoid(-h)
  elif loss_type == "ipo":
    average = lambda ratio, tokens: ratio / jnp.maximum(tokens, 1.0)
    h = average(chosen_ratio, chosen_tokens) - average(rejected_ratio, rejected_tokens)
    losses = jnp.square(h - 1.0 / (2.0 * beta))
  else:
    raise ValueError(f"loss_type={loss_type!r}; expected one of {LOSS_TYPES}")
  return losses, beta * chosen_ratio, beta * rejected_ratio


def preference_terms(losses, chosen_rewards, rejected_rewards):
  """The summed terms of a batch of pairs: (numerator, denominator) of the mean loss, and
  sums the step turns into metrics (`preference_metrics`) after adding microbatches."""
  margins = chosen_rewards - rejected_rewards
  return {
      "numerator": jnp.sum(losses),
      "denominator": jnp.asarray(losses.shape[0], jnp.float32),
      "chosen_reward_sum": jnp.sum(chosen_rewards),
      "rejected_reward_sum": jnp.sum(rejected_rewards),
      "margin_sum": jnp.sum(margins),
      # A tie (margin 0, e.g. at step 0 when policy = reference) is not a win.
      "accuracy_sum": jnp.sum((margins > 0).astype(jnp.float32)),
  }


def preference_metrics(terms):
  """Per-pair means of `preference_terms`' sums: rewards, margin, reward accuracy."""
  pairs = jnp.maximum(terms["denominator"], 1.0)
  return {"chosen_reward": terms["chosen_reward_sum"] / pairs,
          "rejected_reward": terms["rejected_reward_sum"] / pairs,
          "reward_margin": terms["margin_sum"] / pairs,
          "reward_accuracy": terms["accuracy_sum"] / pairs}
