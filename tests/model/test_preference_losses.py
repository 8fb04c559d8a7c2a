"""DPO, conservative DPO and IPO from logits: loss and gradient against a float64 numpy
reference and against trl's DPOTrainer (torch); masked tokens contribute nothing."""
import types
from collections import defaultdict

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from annotanchor.model import preference_losses

PAIRS, LENGTH, VOCAB = 3, 9, 13


def _pairs(seed: int = 0, pairs: int = PAIRS):
  """Policy and reference logits of both sides, targets, and 0/1 weights that leave a
  prompt (and, in some rows, an annotation span) out."""
  rng = np.random.default_rng(seed)
  logits = lambda: rng.normal(size=(pairs, LENGTH, VOCAB)) * 3
  targets = lambda: rng.integers(0, VOCAB, (pairs, LENGTH))
  weights = np.ones((2, pairs, LENGTH))
  weights[:, :, :3] = 0  # The prompt.
  weights[:, ::2, 4:6] = 0  # An annotation after part of the prompt, in even rows.
  return {"policy": (logits(), logits()), "reference": (logits(), logits()),
          "targets": (targets(), targets()), "weights": (weights[0], weights[1])}


def _log_softmax(x):
  top = x.max(-1, keepdims=True)
  return x - top - np.log(np.exp(x - top).sum(-1, keepdims=True))


def _np_log_probs(logits, targets, weights):
  picked = np.take_along_axis(_log_softmax(logits), targets[..., None], -1)[..., 0]
  return (picked * weights).sum(-1)


def _np_reference(data, beta, label_smoothing, loss_type):
  """(mean loss, [d loss / d chosen logits, d loss / d rejected logits]) in float64."""
  f64 = lambda xs: tuple(np.asarray(x, np.float64) for x in xs)
  policy, reference, weights = f64(data["policy"]), f64(data["reference"]), f64(data["weights"])
  targets = data["targets"]
  logp = [_np_log_probs(policy[s], targets[s], weights[s]) for s in (0, 1)]
  ref = [_np_log_probs(reference[s], targets[s], weights[s]) for s in (0, 1)]
  tokens = [weights[s].sum(-1) for s in (0, 1)]
  sig = lambda x: 1 / (1 + np.exp(-x))
  if loss_type == "sigmoid":
    h = (logp[0] - ref[0]) - (logp[1] - ref[1])
    loss = -(1 - label_smoothing) * np.log(sig(beta * h)) - label_smoothing * np.log(sig(-beta * h))
    d_h = -(1 - label_smoothing) * beta * sig(-beta * h) + label_smoothing * beta * sig(beta * h)
    d_logp = [d_h, -d_h]
  else:
    h = (logp[0] - ref[0]) / tokens[0] - (logp[1] - ref[1]) / tokens[1]
    loss = (h - 1 / (2 * beta)) ** 2
    d_h = 2 * (h - 1 / (2 * beta))
    d_logp = [d_h / tokens[0], -d_h / tokens[1]]
  grads = []
  for s in (0, 1):
    probs = np.exp(_log_softmax(policy[s]))
    onehot = np.eye(VOCAB)[targets[s]]
    grads.append(d_logp[s][:, None, None] * weights[s][..., None] * (onehot - probs)
                 / len(loss))
  return loss.mean(), grads


def _ours(data, beta, label_smoothing, loss_type, dtype):
  """(mean loss, its gradients) with our functions, on logits of `dtype`."""
  cast = lambda xs: tuple(jnp.asarray(x, dtype) for x in xs)
  targets = tuple(jnp.asarray(t, jnp.int32) for t in data["targets"])
  weights = cast(data["weights"])
  reference = cast(data["reference"])

  def mean_loss(chosen_logits, rejected_logits):
    logp, tokens = zip(*(preference_losses.sequence_log_probs(l, t, w) for l, t, w in zip(
        (chosen_logits, rejected_logits), targets, weights)))
    ref = [preference_losses.sequence_log_probs(l, t, w)[0]
           for l, t, w in zip(reference, targets, weights)]
    losses, chosen, rejected = preference_losses.pair_losses(
        logp[0], logp[1], ref[0], ref[1], beta=beta, label_smoothing=label_smoothing,
        loss_type=loss_type, chosen_tokens=tokens[0], rejected_tokens=tokens[1])
    terms = preference_losses.preference_terms(losses, chosen, rejected)
    return terms["numerator"] / terms["denominator"]
  loss, grads = jax.value_and_grad(mean_loss, argnums=(0, 1))(*cast(data["policy"]))
  return float(loss), [np.asarray(g) for g in grads]


CASES = [(0.1, 0.0, "sigmoid"), (0.5, 0.2, "sigmoid"), (0.1, 0.0, "ipo")]


@pytest.mark.parametrize("beta, label_smoothing, loss_type", CASES)
def test_loss_and_gradient_match_a_float64_reference(beta, label_smoothing, loss_type):
  data = _pairs()
  want_loss, want_grads = _np_reference(data, beta, label_smoothing, loss_type)
  with jax.enable_x64(True):  # Our code on the same logits in float64: the formula itself.
    loss, grads = _ours(data, beta, label_smoothing, loss_type, jnp.float64)
  np.testing.assert_allclose(loss, want_loss, rtol=1e-6)
  for got, want in zip(grads, want_grads):
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6 * np.abs(want).max())
  # In float32, as training computes it, the loss still agrees to 1e-6.
  loss32, _ = _ours(data, beta, label_smoothing, loss_type, jnp.float32)
  np.testing.assert_allclose(loss32, want_loss, rtol=1e-6)


@pytest.mark.parametrize("beta, label_smoothing, loss_type", CASES)
def test_masked_tokens_contribute_nothing(beta, label_smoothing, loss_type):
  """Prompt and annotation positions (weight 0): perturbing their logits of either side
  changes neither the loss nor any gradient, and their gradient is 0."""
  data = _pairs(seed=1)
  loss, grads = _ours(data, beta, label_smoothing, loss_type, jnp.float32)
  rng = np.random.default_rng(2)
  perturbed = []
  for side in (0, 1):
    logits = data["policy"][side].copy()
    masked = data["weights"][side] == 0
    logits[masked] += rng.normal(size=logits[masked].shape) * 100
    perturbed.append(logits)
  loss2, grads2 = _ours({**data, "policy": tuple(perturbed)}, beta, label_smoothing, loss_type,
                        jnp.float32)
  assert loss2 == loss
  for side in (0, 1):
    np.testing.assert_array_equal(grads2[side], grads[side])
    assert not np.any(grads[side][data["weights"][side] == 0])
    assert np.all(np.abs(grads[side][data["weights"][side] == 1]).sum(-1) > 0)


def test_policy_equal_to_reference_gives_log_two_and_no_margin():
  data = _pairs(seed=3)
  same = {**data, "reference": data["policy"]}
  loss, _ = _ours(same, 0.1, 0.0, "sigmoid", jnp.float32)
  np.testing.assert_allclose(loss, np.log(2), rtol=1e-6)


def test_unknown_loss_type_is_refused():
  zeros = jnp.zeros(2)
  with pytest.raises(ValueError, match="loss_type='hinge'"):
    preference_losses.pair_losses(zeros, zeros, zeros, zeros, beta=0.1, loss_type="hinge")


# trl's DPOTrainer (the reference extra) on the same logits. Its per-token log-probs come
# from its fused LM head over hidden states; a passthrough "model" whose hidden states are
# our logits and whose head is the identity hands it exactly our logits. Its loss is
# `DPOTrainer._compute_loss`, called on the few attributes that method reads.


def _trl_loss_and_grads(data, beta, label_smoothing, loss_type):
  torch = pytest.importorskip("torch")
  pytest.importorskip("trl", reason="trl is in the reference extra (setup.py); "
                      "pip install -c constraints.txt -e '.[reference]'")
  import transformers
  from trl.trainer.dpo_trainer import DPOTrainer
  from trl.trainer.utils import add_fused_lm_head

  pairs = data["targets"][0].shape[0]
  # trl's layout: input_ids = [start, targets...], position t's hidden state predicts t+1;
  # the batch is [chosen rows; rejected rows]. Our logits are its hidden states 0..L-1.
  start = np.zeros((2 * pairs, 1), np.int64)
  input_ids = torch.tensor(np.concatenate([start, np.concatenate(data["targets"])], 1))
  completion_mask = torch.tensor(np.concatenate(
      [start, np.concatenate(data["weights"]).astype(np.int64)], 1))
  hidden = torch.tensor(np.concatenate(
      [np.concatenate(data["policy"]), np.zeros((2 * pairs, 1, VOCAB))], 1),
      dtype=torch.float64, requires_grad=True)

  class Passthrough(torch.nn.Module):
    def __init__(self):
      super().__init__()
      self.config = transformers.PretrainedConfig()
      self.head = torch.nn.Linear(VOCAB, VOCAB, bias=False, dtype=torch.float64)
      with torch.no_grad():
        self.head.weight.copy_(torch.eye(VOCAB, dtype=torch.float64))

    @property
    def base_model(self):
      return lambda *args, **kwargs: types.SimpleNamespace(last_hidden_state=hidden)

    def get_output_embeddings(self):
      return self.head

    def forward(self, input_ids=None, attention_mask=None, **kwargs):
      raise AssertionError("trl calls the fused head")

  model = Passthrough()
  add_fused_lm_head(model, outputs=("log_probs", "entropy", "mean_logits", "is_top1"))
  ref = [np.asarray(preference_losses.sequence_log_probs(
      jnp.asarray(l, jnp.float32), jnp.asarray(t), jnp.asarray(w, jnp.float32))[0], np.float64)
      for l, t, w in zip(data["reference"], data["targets"], data["weights"])]
  identity = lambda x: x
  trainer = types.SimpleNamespace(
      model=types.SimpleNamespace(training=True), beta=beta, label_smoothing=label_smoothing,
      loss_types=[loss_type], loss_weights=[1.0], aux_loss_enabled=False, ld_alpha=None,
      precompute_ref_logps=True, f_divergence_type="reverse_kl", use_weighting=False,
      accelerator=types.SimpleNamespace(device="cpu", gather_for_metrics=identity,
                                        gather=identity),
      _metrics={"train": defaultdict(list), "eval": defaultdict(list)},
      _total_train_tokens=0, _tp_size=1)
  loss = DPOTrainer._compute_loss(trainer, model, {
      "input_ids": input_ids, "attention_mask": torch.ones_like(input_ids),
      "completion_mask": completion_mask, "ref_chosen_logps": torch.tensor(ref[0]),
      "ref_rejected_logps": torch.tensor(ref[1])}, return_outputs=False)
  loss.backward()
  grad = hidden.grad.numpy()[:, :LENGTH]
  return float(loss.detach()), [grad[:pairs], grad[pairs:]]


@pytest.mark.parametrize("loss_type", ["sigmoid", "ipo"])
def test_matches_trl_dpo_trainer(loss_type):
  data = _pairs(seed=4)
  want_loss, want_grads = _trl_loss_and_grads(data, 0.1, 0.0, loss_type)
  with jax.enable_x64(True):
    loss, grads = _ours(data, 0.1, 0.0, loss_type, jnp.float64)
  np.testing.assert_allclose(loss, want_loss, rtol=1e-6)
  for got, want in zip(grads, want_grads):
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6 * np.abs(want).max())


def test_conservative_dpo_matches_trl():
  """trl 1.x applies label smoothing in its 'aot' losses, which sort the batch's log-ratio
  differences before the conservative-DPO formula: on one pair sorting does nothing, and
  'aot' is exactly conservative DPO."""
  data = _pairs(seed=5, pairs=1)
  want_loss, want_grads = _trl_loss_and_grads(data, 0.3, 0.25, "aot")
  with jax.enable_x64(True):
    loss, grads = _ours(data, 0.3, 0.25, "sigmoid", jnp.float64)
  np.testing.assert_allclose(loss, want_loss, rtol=1e-6)
  for got, want in zip(grads, want_grads):
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6 * np.abs(want).max())
