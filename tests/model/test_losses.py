"""Weighted cross-entropy against a float64 numpy reference; masking leaves gradients alone."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from annotanchor.model.losses import loss_terms


def _reference(logits, targets, weights, segments, z, normalization):
  logits = logits.astype(np.float64)
  log_z = np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1)) + logits.max(-1)
  token = log_z - np.take_along_axis(logits, targets[..., None], -1)[..., 0] + z * log_z**2
  if normalization == "weights":
    return (token * weights).sum() / weights.sum()
  if normalization == "tokens":
    return (token * weights).sum() / weights.size
  means = []
  for row in range(targets.shape[0]):
    for seg in np.unique(segments[row]):
      w = weights[row] * (segments[row] == seg)
      if w.sum() > 0:
        means.append((token[row] * w).sum() / w.sum())
  return np.mean(means)


@pytest.mark.parametrize("normalization", ["weights", "tokens", "sequences"])
@pytest.mark.parametrize("z", [0.0, 1e-3])
def test_matches_float64_reference(normalization, z):
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(3, 7, 11)).astype(np.float32) * 3
  targets = rng.integers(0, 11, (3, 7)).astype(np.int32)
  weights = (rng.random((3, 7)) < 0.6).astype(np.float32)
  segments = np.array([[1, 1, 1, 2, 2, 2, 0], [1] * 7, [1, 1, 2, 2, 3, 3, 3]], np.int32)
  terms = loss_terms(logits, targets, weights, segments, z_loss=z, normalization=normalization)
  got = float(terms["numerator"] / terms["denominator"])
  want = _reference(logits, targets, weights, segments, z, normalization)
  np.testing.assert_allclose(got, want, rtol=1e-6)


def test_zero_weight_tokens_do_not_change_gradients():
  rng = np.random.default_rng(1)
  logits = jnp.asarray(rng.normal(size=(2, 6, 9)), jnp.float32)
  targets = jnp.asarray(rng.integers(0, 9, (2, 6)), jnp.int32)
  weights = jnp.asarray([[0, 1, 1, 0, 1, 0], [1, 0, 0, 1, 1, 1]], jnp.float32)
  other = jnp.where(weights == 0, (targets + 3) % 9, targets)  # Change only masked targets.
  grad = lambda t: jax.grad(lambda l: loss_terms(l, t, weights)["numerator"])(logits)
  np.testing.assert_array_equal(grad(targets), grad(other))
  assert np.all(np.asarray(grad(targets))[np.asarray(weights) == 0] == 0)


def test_unknown_normalization_is_refused():
  with pytest.raises(ValueError, match="normalization"):
    loss_terms(jnp.zeros((1, 2, 3)), jnp.zeros((1, 2), jnp.int32), jnp.ones((1, 2)),
               normalization="mean")
