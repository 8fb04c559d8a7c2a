"""The sampler against hand-written logits functions: outputs, filtering, stopping, RNG."""
import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from annotanchor.decoding.sampler import (SamplingConfig, filter_logits, left_pad,
                                          temperature_sample)

V = 10
EOS = 1


def bigram_fn(table):
  """TokensToLogits of a bigram model: logits of the next token = table[token]; no cache."""
  table = jnp.asarray(table, jnp.float32)
  return lambda tokens, positions, segment_ids, cache: (table[tokens], cache)


def chain_table(successor):
  """A near-deterministic bigram table: token t is followed by successor[t]."""
  table = np.full((V, V), -10.0, np.float32)
  for t, nxt in successor.items():
    table[t, nxt] = 10.0
  return table


# 2 -> 3 -> 4 -> 5 -> EOS; 6 -> 7 -> 8 -> 9 -> 6 (never ends); EOS -> 0.
CHAIN = chain_table({0: 2, 1: 0, 2: 3, 3: 4, 4: 5, 5: EOS, 6: 7, 7: 8, 8: 9, 9: 6})


@functools.partial(jax.jit, static_argnums=(0, 4))
def run(fn, prompts, lengths, rng, config):
  return temperature_sample(fn, None, prompts, lengths, rng, config)


def sample(fn, prompts, config, seed=0):
  tokens, lengths = left_pad(prompts)
  return jax.device_get(run(fn, tokens, lengths, jax.random.key(seed), config))


def test_left_pad_layout():
  tokens, lengths = left_pad([[5, 6, 7], [8]])
  np.testing.assert_array_equal(tokens, [[5, 6, 7], [0, 0, 8]])
  np.testing.assert_array_equal(lengths, [3, 1])
  with pytest.raises(ValueError, match="at least one token"):
    left_pad([[5], []])
  with pytest.raises(ValueError, match="does not fit"):
    left_pad([[5, 6]], length=1)


def test_greedy_outputs_eos_and_padding_with_prompts_of_different_lengths():
  config = SamplingConfig(max_new_tokens=5, num_decodes=2, temperature=0.0, eos_id=EOS)
  out = sample(bigram_fn(CHAIN), [[6, 2, 3], [4], [8, 9]], config)
  assert out.tokens.shape == (3, 2, 5)
  # Row 0 continues from 3: 4 5 EOS, then padding; row 1 from 4; row 2 never stops.
  want = [[4, 5, EOS, 0, 0], [5, EOS, 0, 0, 0], [6, 7, 8, 9, 6]]
  for b in range(3):
    for j in range(2):
      np.testing.assert_array_equal(out.tokens[b, j], want[b])
  np.testing.assert_array_equal(out.lengths, [[3, 3], [2, 2], [5, 5]])
  np.testing.assert_array_equal(out.stopped, [[True] * 2, [True] * 2, [False] * 2])


def test_positions_and_segments_follow_the_left_padded_layout():
  seen = []

  def fn(tokens, positions, segment_ids, cache):
    # The next token encodes the position of the last real token fed (+2 past PAD, EOS).
    jax.debug.callback(lambda s: seen.append(np.asarray(s)), segment_ids)
    logits = jax.nn.one_hot(positions + 2, V) * 20.0
    return logits, cache

  out = sample(fn, [[5, 5, 5], [5]], SamplingConfig(max_new_tokens=3, temperature=0.0))
  # Row 0 (3 prompt tokens, last at position 2) draws 4, then fed at 3 and 4: 5, 6.
  np.testing.assert_array_equal(out.tokens[:, 0], [[4, 5, 6], [2, 3, 4]])
  jax.effects_barrier()
  np.testing.assert_array_equal(seen[0], [[1, 1, 1], [0, 0, 1]])
  assert all(np.array_equal(s, [[1], [1]]) for s in seen[1:]) and len(seen) == 3


def test_stop_sequences_end_a_sample_and_count_in_its_length():
  config = SamplingConfig(max_new_tokens=6, temperature=0.0, stop_sequences=((8, 9),))
  out = sample(bigram_fn(CHAIN), [[6], [9], [2]], config)
  np.testing.assert_array_equal(out.tokens[:, 0], [[7, 8, 9, 0, 0, 0], [6, 7, 8, 9, 0, 0],
                                                   [3, 4, 5, EOS, 0, 0]])
  np.testing.assert_array_equal(out.lengths[:, 0], [3, 4, 4])
  assert out.stopped.all()
  # A stop sequence matches drawn tokens only, not the prompt: 8 then 9 in the prompt.
  out = sample(bigram_fn(CHAIN), [[8, 9]], dataclasses.replace(config, stop_sequences=((9, 6),)))
  np.testing.assert_array_equal(out.tokens[0, 0], [6, 7, 8, 9, 6, 0])


def test_loop_ends_early_when_every_row_is_done():
  calls = []

  def counting(tokens, positions, segment_ids, cache):
    jax.debug.callback(lambda: calls.append(1))
    return bigram_fn(CHAIN)(tokens, positions, segment_ids, cache)

  config = SamplingConfig(max_new_tokens=50, temperature=0.0)
  out = sample(counting, [[2], [4]], config)
  jax.effects_barrier()
  np.testing.assert_array_equal(out.lengths[:, 0], [4, 2])
  # The prefill, then 3 steps: row 0 draws its EOS as the 4th token.
  assert len(calls) == 4


def constant_fn(logits):
  """TokensToLogits that ignores its input: every step draws from the same logits."""
  logits = jnp.asarray(logits, jnp.float32)
  return lambda tokens, positions, segment_ids, cache: (
      jnp.broadcast_to(logits, (*tokens.shape, logits.shape[-1])), cache)


PROBS = np.array([0.0, 0.0, 0.5, 0.1, 0.25, 0.15, 0.0, 0.0, 0.0, 0.0])
LOGITS = np.where(PROBS > 0, np.log(np.maximum(PROBS, 1e-30)), -1e9).astype(np.float32)


def test_filter_logits_worked_example():
  logits = jnp.log(jnp.asarray([[0.5, 0.1, 0.25, 0.15]]))
  filtered = filter_logits(logits, SamplingConfig(max_new_tokens=1, top_k=3, top_p=0.7))
  np.testing.assert_allclose(jax.nn.softmax(filtered), [[2 / 3, 0, 1 / 3, 0]], rtol=1e-6)
  # The top token survives any top_p; temperature rescales before filtering.
  only_top = filter_logits(logits, SamplingConfig(max_new_tokens=1, top_p=0.01))
  np.testing.assert_array_equal(np.isfinite(only_top), [[True, False, False, False]])
  hot = filter_logits(logits, SamplingConfig(max_new_tokens=1, temperature=2.0))
  np.testing.assert_allclose(hot, logits / 2.0, rtol=1e-6)


@pytest.mark.parametrize("top_k,top_p,allowed", [
    (2, 1.0, {2, 4}), (0, 0.75, {2, 4}), (0, 0.76, {2, 4, 5}), (3, 0.5, {2})])
def test_top_k_and_top_p_restrict_the_draws(top_k, top_p, allowed):
  config = SamplingConfig(max_new_tokens=8, num_decodes=64, top_k=top_k, top_p=top_p, eos_id=-1)
  out = sample(constant_fn(LOGITS), [[2]], config)
  assert set(np.unique(out.tokens)) == allowed


def chi_square_pvalue(tokens, probs):
  counts = np.bincount(tokens.ravel(), minlength=len(probs))
  support = probs > 0
  assert counts[~support].sum() == 0
  expected = np.asarray(probs[support], np.float64)
  return stats.chisquare(counts[support], expected / expected.sum() * counts.sum()).pvalue


def test_empirical_distribution_matches_the_tempered_softmax():
  # 2 prompts x 250 samples x 8 steps = 4000 draws, from every row and step.
  config = SamplingConfig(max_new_tokens=8, num_decodes=250, temperature=0.7, eos_id=-1)
  tokens = sample(constant_fn(LOGITS), [[2], [3, 4]], config, seed=3).tokens
  tempered = np.asarray(jax.nn.softmax(LOGITS / 0.7))
  assert chi_square_pvalue(tokens, tempered) > 1e-3
  # The test has power: the untempered softmax is rejected on the same draws.
  assert chi_square_pvalue(tokens, PROBS) < 1e-6
  # And the per-row streams are not copies of each other.
  assert len({tuple(row) for row in tokens.reshape(-1, 8)}) > 400


def test_deterministic_for_a_seed_and_independent_of_batch_mates():
  config = SamplingConfig(max_new_tokens=6, num_decodes=3, eos_id=-1)
  fn = constant_fn(LOGITS)
  first = sample(fn, [[2], [3]], config, seed=7)
  np.testing.assert_array_equal(first.tokens, sample(fn, [[2], [3]], config, seed=7).tokens)
  assert not np.array_equal(first.tokens, sample(fn, [[2], [3]], config, seed=8).tokens)
  # With one key per prompt, a prompt's samples do not depend on the other prompts.
  keys = jax.random.split(jax.random.key(7), 3)
  tokens, lengths = left_pad([[2], [3], [4]])
  together = jax.device_get(run(fn, tokens, lengths, keys, config))
  alone = jax.device_get(run(fn, tokens[1:2], lengths[1:2], keys[1:2], config))
  np.testing.assert_array_equal(together.tokens[1], alone.tokens[0])
  assert len({tuple(t) for t in together.tokens[1]}) == 3  # Its 3 samples differ.


def test_bad_configs_are_refused():
  with pytest.raises(ValueError, match="max_new_tokens"):
    SamplingConfig(max_new_tokens=0)
  with pytest.raises(ValueError, match="top_p"):
    SamplingConfig(max_new_tokens=1, top_p=0.0)
  with pytest.raises(ValueError, match="empty"):
    SamplingConfig(max_new_tokens=1, stop_sequences=((),))
  assert SamplingConfig(max_new_tokens=1, stop_sequences=[[4, 5]]).stop_sequences == ((4, 5),)
