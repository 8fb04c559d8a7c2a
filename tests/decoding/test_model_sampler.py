"""The sampler over the real Decoder: cached logits equal the full forward pass; meshes agree."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import flax.linen as nn

from annotanchor.decoding.model_sampler import DecoderSampler, cache_slots, kv_cache_fns
from annotanchor.decoding.sampler import SamplingConfig, left_pad
from annotanchor.model.config import TransformerConfig
from annotanchor.model.transformer import Decoder
from annotanchor.training import partitioning
from tests.hlo_constraints import sharding_constraints

CFG = TransformerConfig(vocab_size=64, d_model=32, num_layers=2, num_heads=4, num_kv_heads=2,
                        head_dim=8, mlp_dim=48, max_len=32, qk_norm=True,
                        init_std=0.1)  # Logits of order 1: far from flat.
PROMPTS = [[5, 9, 13, 2, 7], [11, 4], [3, 3, 8, 20]]


def params_for(cfg, seed=0):
  boxed = Decoder(cfg).init(jax.random.PRNGKey(seed), jnp.zeros((1, 4), jnp.int32))["params"]
  return nn.meta.unbox(boxed)


ONE_DEVICE = partitioning.make_mesh({"data": 1}, jax.devices()[:1])


@pytest.mark.parametrize("scan", [pytest.param(False, marks=pytest.mark.slow), True])
def test_cached_logits_equal_the_full_forward_pass(scan):
  cfg = dataclasses.replace(CFG, scan_layers=scan)
  net = Decoder(cfg)
  params = params_for(cfg)
  config = SamplingConfig(max_new_tokens=6, num_decodes=2, temperature=1.0, eos_id=-1)
  prompts, lengths = left_pad(PROMPTS)
  slots = cache_slots(prompts.shape[1], config)
  rows = len(PROMPTS) * config.num_decodes
  out = DecoderSampler(cfg, ONE_DEVICE)(params, prompts, lengths, jax.random.key(1), config)
  tokens = np.asarray(out.tokens).reshape(rows, -1)
  # Teacher-force each sample through the cache again, recording logits, and compare with
  # the full forward pass over its unpadded prompt + continuation.
  cache, fn = kv_cache_fns(Decoder(dataclasses.replace(cfg, max_len=slots)), params, rows)
  row_prompts = [p for p in PROMPTS for _ in range(config.num_decodes)]
  padded, row_lengths = left_pad(row_prompts)
  pad = padded.shape[1] - row_lengths
  segments = (np.arange(padded.shape[1])[None] >= pad[:, None]).astype(np.int32)
  positions = np.maximum(np.arange(padded.shape[1])[None] - pad[:, None], 0)
  step = jax.jit(fn)
  logits, cache = step(padded, positions, segments, cache)
  cached = [logits[:, -1]]
  for t in range(config.max_new_tokens - 1):
    logits, cache = step(tokens[:, t:t + 1], (row_lengths + t)[:, None],
                         np.ones((rows, 1), np.int32), cache)
    cached.append(logits[:, 0])
  cached = np.stack(cached, axis=1)
  # The full forward pass over each unpadded prompt + continuation (right-padded: causal
  # attention keeps the padding after a sequence from reaching it).
  sequences = [np.concatenate([p, tokens[r, :-1]]) for r, p in enumerate(row_prompts)]
  width = max(map(len, sequences))
  batch = np.stack([np.pad(x, (0, width - len(x))) for x in sequences])
  full = np.asarray(jax.jit(net.apply)({"params": params}, batch))
  for r, prompt in enumerate(row_prompts):
    want = full[r, len(prompt) - 1:len(sequences[r])]
    np.testing.assert_allclose(cached[r], want, rtol=1e-5, atol=1e-5)
  # The draws depend on these logits: the samples are far from constant.
  assert len({tuple(t) for t in tokens}) > 3


def test_sampler_agrees_without_cache_and_across_meshes():
  params = params_for(CFG)
  prompts, lengths = left_pad(PROMPTS + [[1, 2]])  # 4 prompts: divides data=4 and data=2.
  config = SamplingConfig(max_new_tokens=5, num_decodes=2, temperature=1.0, top_k=20, eos_id=-1)
  meshes = [partitioning.make_mesh({"data": 4}, jax.devices()[:4]),
            partitioning.make_mesh({"data": 2, "model": 2}, jax.devices()[:4])]
  cached = DecoderSampler(CFG, meshes[0])(params, prompts, lengths, jax.random.key(3), config)
  # Same logits and keys give the same draws: through the cache, by full forward passes,
  # and on a mesh that also splits heads and vocabulary.
  uncached = DecoderSampler(CFG, meshes[0], use_cache=False)(
      params, prompts, lengths, jax.random.key(3), config)
  np.testing.assert_array_equal(cached.tokens, uncached.tokens)
  other = DecoderSampler(CFG, meshes[1])(params, prompts, lengths, jax.random.key(3), config)
  np.testing.assert_array_equal(cached.tokens, other.tokens)
  assert other.tokens.sharding.spec[0] == partitioning.BATCH_AXES
  assert len({tuple(t) for t in np.asarray(cached.tokens).reshape(8, -1)}) > 4


def test_decode_step_carries_the_activation_constraints():
  """The sampler traces the Decoder with the logical-axis rules in scope (logical_jit):
  rows over data+fsdp, query heads over model."""
  sampler = DecoderSampler(CFG, partitioning.make_mesh({"data": 2, "model": 2}, jax.devices()[:4]))
  prompts, lengths = left_pad(PROMPTS + [[1, 2]])
  config = SamplingConfig(max_new_tokens=3, num_decodes=2, eos_id=-1)
  text = sampler._build(prompts.shape[1], config).lower(
      params_for(CFG), prompts, lengths, jax.random.key(0)).as_text()
  # Queries of the 8 rows (4 prompts x 2 decodes), one new token: [8, 1, 4 heads, 8].
  assert ('{"data","fsdp"},{},{"model"},{}', "8x1x4x8xf32") in sharding_constraints(text)


def test_growing_cache_agrees_with_full_forward_passes():
  params = params_for(CFG)
  prompts, lengths = left_pad(PROMPTS)
  config = SamplingConfig(max_new_tokens=12, num_decodes=2, temperature=1.0, eos_id=-1)
  # 5 + 12 - 1 = 16 slots: caches of 8, 12 and 16 slots, and one of 16 from the start.
  grown = DecoderSampler(CFG, ONE_DEVICE, cache_growth=4)(
      params, prompts, lengths, jax.random.key(5), config)
  whole = DecoderSampler(CFG, ONE_DEVICE, cache_growth=64)(
      params, prompts, lengths, jax.random.key(5), config)
  uncached = DecoderSampler(CFG, ONE_DEVICE, use_cache=False)(
      params, prompts, lengths, jax.random.key(5), config)
  np.testing.assert_array_equal(grown.tokens, uncached.tokens)
  np.testing.assert_array_equal(whole.tokens, uncached.tokens)
  assert len({tuple(t) for t in np.asarray(grown.tokens).reshape(6, -1)}) > 3


def test_requests_that_do_not_fit_are_refused():
  sampler = DecoderSampler(CFG, partitioning.make_mesh({"data": 2}, jax.devices()[:2]))
  params = params_for(CFG)
  prompts, lengths = left_pad([[1] * 20, [2]])
  with pytest.raises(ValueError, match="max_len=32"):
    sampler(params, prompts, lengths, jax.random.key(0), SamplingConfig(max_new_tokens=20))
  with pytest.raises(ValueError, match="divide"):
    sampler(params, prompts[:1], lengths[:1], jax.random.key(0), SamplingConfig(max_new_tokens=2))
