"""The decoder: logical names, scan/loop and remat equivalence, packing, the KV cache."""
import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from annotanchor.model.config import TransformerConfig
from annotanchor.model.layers import apply_rotary
from annotanchor.model.transformer import Decoder

CFG = TransformerConfig(vocab_size=50, d_model=32, num_layers=3, num_heads=4, num_kv_heads=2,
                        head_dim=8, mlp_dim=48, max_len=32, qk_norm=True)
LOGICAL = {"batch", "length", "embed", "mlp", "heads", "kv_heads", "kv", "vocab", "layers"}


def _tokens(shape, seed=0):
  return jnp.asarray(np.random.default_rng(seed).integers(2, CFG.vocab_size, shape), jnp.int32)


@pytest.mark.parametrize("scan", [False, True])
def test_every_parameter_has_logical_axes(scan):
  cfg = dataclasses.replace(CFG, scan_layers=scan)
  boxed = jax.eval_shape(Decoder(cfg).init, jax.random.PRNGKey(0), _tokens((1, 4)))["params"]
  flat = jax.tree_util.tree_flatten_with_path(
      boxed, is_leaf=lambda x: isinstance(x, nn.LogicallyPartitioned))[0]
  leaves = [leaf for _, leaf in flat]
  assert leaves and all(isinstance(x, nn.LogicallyPartitioned) for x in leaves)
  for path, leaf in flat:
    assert set(leaf.names) <= LOGICAL and len(leaf.names) == leaf.value.ndim
    in_stack = jax.tree_util.keystr(path).startswith("['layers']")
    assert ("layers" in leaf.names) == in_stack
  assert any("layers" in leaf.names for leaf in leaves) == scan
  assert sum(leaf.value.size for leaf in leaves) == cfg.num_params()


def test_scan_equals_loop_and_remat_changes_nothing():
  tokens = _tokens((2, 10))
  loop_params = nn.meta.unbox(Decoder(CFG).init(jax.random.PRNGKey(1), tokens)["params"])
  layers = [loop_params.pop(f"layer_{i}") for i in range(CFG.num_layers)]
  scan_params = {**loop_params, "layers": jax.tree.map(lambda *x: jnp.stack(x), *layers)}
  loop_params.update({f"layer_{i}": p for i, p in enumerate(layers)})
  want = Decoder(CFG).apply({"params": loop_params}, tokens)
  for remat in ("none", "full", "dots"):
    scanned = dataclasses.replace(CFG, scan_layers=True, remat_policy=remat)
    got = Decoder(scanned).apply({"params": scan_params}, tokens)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
  loss = lambda cfg, p: jnp.mean(Decoder(cfg).apply({"params": p}, tokens) ** 2)
  grad_plain = jax.grad(lambda p: loss(dataclasses.replace(CFG, scan_layers=True), p))(scan_params)
  grad_remat = jax.grad(lambda p: loss(
      dataclasses.replace(CFG, scan_layers=True, remat_policy="full"), p))(scan_params)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7),
               grad_remat, grad_plain)


def test_packed_row_equals_separate_sequences():
  a, b = _tokens((1, 5), 1), _tokens((1, 7), 2)
  params = Decoder(CFG).init(jax.random.PRNGKey(0), a)["params"]
  apply = lambda *args, **kw: Decoder(CFG).apply({"params": params}, *args, **kw)
  packed = jnp.concatenate([a, b, jnp.zeros((1, 4), jnp.int32)], axis=1)
  segments = jnp.asarray([[1] * 5 + [2] * 7 + [0] * 4])
  positions = jnp.asarray([list(range(5)) + list(range(7)) + [0] * 4])
  got = apply(packed, positions=positions, segment_ids=segments)
  np.testing.assert_allclose(got[:, :5], apply(a), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(got[:, 5:12], apply(b), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("scan", [pytest.param(False, marks=pytest.mark.slow), True])
def test_kv_cache_matches_full_forward_with_left_padding(scan):
  cfg = dataclasses.replace(CFG, scan_layers=scan)
  net = Decoder(cfg)
  long_seq, short_seq = _tokens((1, 9), 3), _tokens((1, 6), 4)
  params = net.init(jax.random.PRNGKey(0), long_seq)["params"]
  full = [net.apply({"params": params}, s) for s in (long_seq, short_seq)]
  # Prompts: first 5 and first 2 tokens, the short one left-padded by 3.
  prompt = jnp.concatenate([long_seq[:, :5], jnp.concatenate(
      [jnp.zeros((1, 3), jnp.int32), short_seq[:, :2]], axis=1)])
  segments = jnp.asarray([[1] * 5, [0, 0, 0, 1, 1]])
  positions = jnp.asarray([[0, 1, 2, 3, 4], [0, 0, 0, 0, 1]])
  cache = net.init(jax.random.PRNGKey(0), prompt, decode=True)["cache"]
  logits, mutated = net.apply({"params": params, "cache": cache}, prompt, positions=positions,
                              segment_ids=segments, decode=True, mutable=["cache"])
  np.testing.assert_allclose(logits[0], full[0][0, :5], rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(logits[1, 3:], full[1][0, :2], rtol=1e-5, atol=1e-5)
  for i in range(4):  # Teacher-forced steps: token i+5 of the long, i+2 of the short.
    step = jnp.stack([long_seq[0, 5 + i], short_seq[0, 2 + i]])[:, None]
    logits, mutated = net.apply(
        {"params": params, **mutated}, step, positions=jnp.asarray([[5 + i], [2 + i]]),
        segment_ids=jnp.ones((2, 1), jnp.int32), decode=True, mutable=["cache"])
    np.testing.assert_allclose(logits[0, 0], full[0][0, 5 + i], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(logits[1, 0], full[1][0, 2 + i], rtol=1e-5, atol=1e-5)


def test_last_only_gives_the_last_positions_logits_and_the_same_cache():
  """The sampler's prefill (model_sampler.apply_with_cache) projects only the last position."""
  net = Decoder(CFG)
  prompt = _tokens((2, 7), 5)
  params = net.init(jax.random.PRNGKey(0), prompt)["params"]
  cache = net.init(jax.random.PRNGKey(0), prompt, decode=True)["cache"]
  run = lambda last_only: net.apply({"params": params, "cache": cache}, prompt, decode=True,
                                    last_only=last_only, mutable=["cache"])
  (every, every_cache), (last, last_cache) = run(False), run(True)
  assert last.shape == (2, 1, CFG.vocab_size)
  np.testing.assert_allclose(last[:, 0], every[:, -1], rtol=1e-6, atol=1e-6)
  jax.tree.map(np.testing.assert_array_equal, every_cache, last_cache)


def test_rotary_scores_depend_only_on_relative_position():
  rng = np.random.default_rng(0)
  q, k = (jnp.asarray(rng.normal(size=(1, 1, 1, 16)), jnp.float32) for _ in range(2))
  score = lambda pq, pk: jnp.sum(apply_rotary(q, jnp.array([[pq]]), 1e4) *
                                 apply_rotary(k, jnp.array([[pk]]), 1e4))
  np.testing.assert_allclose(score(7, 3), score(104, 100), rtol=1e-4)
  assert abs(float(score(7, 3)) - float(score(7, 4))) > 1e-3


def test_bfloat16_compute_stays_close_to_float32():
  tokens = _tokens((2, 8))
  params = Decoder(CFG).init(jax.random.PRNGKey(0), tokens)["params"]
  f32 = Decoder(CFG).apply({"params": params}, tokens)
  bf16 = Decoder(dataclasses.replace(CFG, dtype="bfloat16")).apply({"params": params}, tokens)
  assert bf16.dtype == jnp.float32  # Logits are always float32.
  np.testing.assert_allclose(bf16, f32, atol=0.05)


def test_bad_shapes_are_refused():
  with pytest.raises(ValueError, match="num_kv_heads"):
    dataclasses.replace(CFG, num_kv_heads=3)
  with pytest.raises(ValueError, match="remat_policy"):
    dataclasses.replace(CFG, remat_policy="some")
