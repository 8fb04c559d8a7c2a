"""Continuation log-likelihoods on the mesh equal a direct float64 computation from the
network's forward pass, however the rows are batched, bucketed and padded."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import seqio

from annotanchor.data.ids import BOS_ID, decoder_start_id
from annotanchor.decoding.choice_scoring import ContinuationScorer, continuation_tokens
from annotanchor.errors import UserError
from annotanchor.model.transformer import Decoder
from annotanchor.training import partitioning
from tests import random_checkpoint

CFG = random_checkpoint.TINY_BYTES
VOCAB = seqio.ByteVocabulary()
PAIRS = [("The owl knew every", " star"), ("The owl knew every", " stone and river"),
         ("", "A whole text scored from its first token."), ("Grey clouds hung low over every",
         " roof"), ("x" * 40, " y"), ("short", " " + "long continuation " * 3),
         ("unicode: café ∑", " ✓ done")]


@pytest.fixture(scope="module")
def params():
  return nn.meta.unbox(Decoder(CFG).init(jax.random.PRNGKey(3), jnp.zeros((1, 4), jnp.int32))
                       ["params"])


FORWARD = jax.jit(lambda p, tokens: Decoder(CFG).apply({"params": p}, tokens))


@pytest.fixture(scope="module")
def expected(params):
  return [direct(params, c, x) for c, x in PAIRS]


def direct(params, context, continuation):
  """Sum of log p(token) over the continuation, one unpadded row, float64 softmax."""
  tokens = [decoder_start_id(VOCAB)] + VOCAB.encode(context + continuation)
  start = 1 + len(VOCAB.encode(context))
  logits = np.asarray(FORWARD(params, jnp.asarray([tokens[:-1]])), np.float64)[0]
  logp = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True)) \
      - logits.max(-1, keepdims=True)
  targets = np.array(tokens[1:])
  picked = logp[np.arange(len(targets)), targets][start - 1:]
  greedy = bool(np.all(logits.argmax(-1)[start - 1:] == targets[start - 1:]))
  return picked.sum(), len(picked), greedy


@pytest.mark.parametrize("mesh,rows_per_call,bucket", [
    ({"data": 4, "model": 2}, 3, 16),  # several calls (rows_per_call rounded up to 4)
    ({"data": 8}, 8, 64)])             # one call, padded rows
def test_scores_equal_a_direct_forward_pass(params, expected, mesh, rows_per_call, bucket):
  m = partitioning.make_mesh(mesh)
  abstract, shardings = partitioning.sharded_abstract(
      jax.eval_shape(Decoder(CFG).init, jax.random.PRNGKey(0), jnp.zeros((1, 1), jnp.int32))
      ["params"], m)
  del abstract
  placed = jax.device_put(params, shardings)
  scorer = ContinuationScorer(CFG, m, shardings, rows_per_call=rows_per_call,
                              length_bucket=bucket)
  calls = []
  scores = scorer.score(placed, VOCAB, PAIRS, progress=calls.append)
  assert sum(calls) == len(PAIRS) and len(calls) == -(-len(PAIRS) // scorer.rows_per_call)
  for got, (want, n, greedy) in zip(scores, expected, strict=True):
    assert got.num_tokens == n
    assert got.loglik == pytest.approx(want, abs=1e-5, rel=1e-6)
    assert got.greedy == greedy


def test_the_continuation_is_split_as_in_the_joined_text():
  tokens, start = continuation_tokens(VOCAB, "ab", " c")
  assert tokens == [BOS_ID] + VOCAB.encode("ab c") and start == 3
  with pytest.raises(UserError, match="encodes to no tokens"):
    continuation_tokens(VOCAB, "ab", "")


def test_rows_follow_a_hugging_face_vocabularys_start_id(tmp_path):
  from annotanchor.data.hf_vocabulary import HuggingFaceVocabulary
  from tests.hf_tokenizer import WORD_0, build
  vocab = HuggingFaceVocabulary(build(str(tmp_path / "tok")))
  tokens, start = continuation_tokens(vocab, "on the mat", WORD_0)
  assert tokens[0] == decoder_start_id(vocab) == vocab.bos_id != BOS_ID
  assert tokens[start:] == [0]  # " the" is id 0: a real token, scored like any other.
