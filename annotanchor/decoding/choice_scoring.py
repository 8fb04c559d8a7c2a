"""Log-likelihoods of continuations: the model side of multiple-choice capability scoring.

Each (context, continuation) pair becomes one row, split as lm-eval-harness splits it:
the whole text is encoded once and the continuation is what follows the context's own
encoding, so the continuation's tokens are the ones the model sees in the joined text.
The score is the summed log-probability of those tokens:

  context "an owl who knew every", continuation " star"
  tokens   [BOS, ▁an, ▁owl, ▁who, ▁knew, ▁every, ▁star]
  inputs   [BOS, ▁an, ▁owl, ▁who, ▁knew, ▁every, pad..]     tokens[:-1], right-padded
  picks    [5, 0, ...]          the input positions whose next token is the continuation's
  targets  [▁star, pad, ...]    those next tokens
  weights  [1, 0, ...]          1 on real picks (picks are padded to a multiple of 8)
  score    log p(▁star | BOS ▁an ▁owl ▁who ▁knew ▁every)

Only the picked positions' logits go through the float32 log-softmax: over the whole
[rows, length, vocab] block it was the memory traffic that made batched scoring slower
than one row at a time on a CPU (benchmarks/capability_scoring.py).

Rows are sorted by length and cut into calls of `rows_per_call` rows, each padded to a
multiple of `length_bucket` tokens (few compiled shapes); right padding (id 0, which may
be a real token of a Hugging Face vocabulary: it is known by its weight 0 and position)
changes nothing before it under causal attention. Rows are split over the mesh's batch axes and the
parameters keep their logical shardings, as in the sampler.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import seqio
from jax.sharding import Mesh

from annotanchor.data.ids import decoder_start_id
from annotanchor.errors import UserError
from annotanchor.model.config import TransformerConfig
from annotanchor.model.transformer import Decoder
from annotanchor.training import partitioning


@dataclasses.dataclass(frozen=True)
class ContinuationScore:
  """What the model says about one continuation.

  Attributes:
    loglik: summed log-probability of its tokens given the context.
    num_tokens: how many tokens it has.
    greedy: every one of its tokens is the model's most likely next token.
  """
  loglik: float
  num_tokens: int
  greedy: bool


def continuation_tokens(vocabulary: seqio.Vocabulary, context: str,
                        continuation: str) -> tuple[list[int], int]:
  """([start] + encode(context + continuation), the continuation's first index); start:
  the id shifted in before every sequence in training (`ids.decoder_start_id`).

  Raises:
    UserError: the continuation adds no tokens to the context's encoding.
  """
  whole = [decoder_start_id(vocabulary)] + list(vocabulary.encode(context + continuation))
  start = 1 + len(vocabulary.encode(context))
  if start >= len(whole):
    raise UserError(f"the continuation {continuation!r} of context {context[-40:]!r} encodes "
                    "to no tokens of its own")
  return whole, start


# Picks per row are padded to a multiple of this (few compiled shapes).
PICK_BUCKET = 8


def _score_rows(network: Decoder, params, inputs, picks, targets, weights):
  """(summed log-probability, all-greedy) per row over the picked positions, in float32."""
  logits = network.apply({"params": params}, inputs)
  picked = jnp.take_along_axis(logits, picks[..., None], axis=1).astype(jnp.float32)
  logp = (jnp.take_along_axis(picked, targets[..., None], -1)[..., 0]
          - jax.nn.logsumexp(picked, -1))
  greedy = (jnp.argmax(picked, -1) == targets) | (weights == 0)
  return jnp.sum(logp * weights, -1), jnp.all(greedy, -1)


class ContinuationScorer:
  """Scores (context, continuation) pairs with a Decoder's parameters on a mesh.

  Args:
    config: the network's shape.
    mesh: the sampler's mesh; rows are split over its batch axes.
    param_shardings: the parameters' shardings on `mesh`.
    rows_per_call: rows per forward pass (rounded up to the batch axes' size).
    length_bucket: rows are padded to a multiple of this many tokens.
  """

  def __init__(self, config: TransformerConfig, mesh: Mesh, param_shardings: Any,
               rows_per_call: int = 32, length_bucket: int = 32):
    degree = int(np.prod([mesh.shape[a] for a in partitioning.BATCH_AXES]))
    self.rows_per_call = -(-rows_per_call // degree) * degree
    self.length_bucket = length_bucket
    rows = partitioning.batch_sharding(mesh)
    network = Decoder(config)
    self._score = partitioning.logical_jit(
        lambda p, i, k, t, w: _score_rows(network, p, i, k, t, w), mesh,
        in_shardings=(param_shardings, rows, rows, rows, rows), out_shardings=(rows, rows))

  def score(self, params: Any, vocabulary: seqio.Vocabulary,
            pairs: Sequence[tuple[str, str]],
            progress: Callable[[int], None] | None = None) -> list[ContinuationScore]:
    """One ContinuationScore per (context, continuation), in order.

    Args:
      params: the network's parameters on the mesh.
      vocabulary: encodes the texts.
      pairs: (context, continuation) texts; the continuation includes its delimiter.
      progress: called with the number of rows each call finished.
    """
    encoded = [continuation_tokens(vocabulary, c, x) for c, x in pairs]
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i][0]))
    out: list[ContinuationScore | None] = [None] * len(encoded)
    for first in range(0, len(order), self.rows_per_call):
      chunk = order[first:first + self.rows_per_call]
      longest = max(len(encoded[i][0]) for i in chunk) - 1
      length = -(-longest // self.length_bucket) * self.length_bucket
      most = max(len(encoded[i][0]) - encoded[i][1] for i in chunk)
      inputs = np.zeros((self.rows_per_call, length), np.int32)
      picks = np.zeros((self.rows_per_call, -(-most // PICK_BUCKET) * PICK_BUCKET), np.int32)
      targets = np.zeros_like(picks)
      weights = np.zeros(picks.shape, np.float32)
      for row, i in enumerate(chunk):
        tokens, start = encoded[i]
        n = len(tokens) - start
        inputs[row, :len(tokens) - 1] = tokens[:-1]
        picks[row, :n] = np.arange(start - 1, len(tokens) - 1)
        targets[row, :n] = tokens[start:]
        weights[row, :n] = 1.0
      loglik, greedy = jax.device_get(self._score(params, inputs, picks, targets, weights))
      for row, i in enumerate(chunk):
        out[i] = ContinuationScore(float(loglik[row]), int(weights[row].sum()),
                                   bool(greedy[row]))
      if progress is not None:
        progress(len(chunk))
    return out
