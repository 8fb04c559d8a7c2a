"""The attention kernels (splash in Pallas interpret mode, the cuDNN path's XLA fallback,
the CPU query blocks) against the reference, on packed rows with GQA and QK-norm."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from annotanchor.errors import SettingError
from annotanchor.model import attention_kernels as ak
from annotanchor.model.config import TransformerConfig
from annotanchor.model.transformer import Decoder
from annotanchor.training import partitioning

TOL = dict(rtol=1e-5, atol=1e-5)
B, L, H, KVH, D = 2, 256, 4, 2, 16  # 256: two splash blocks of 128.


def _segments():
  """Several packed segments per row, different per row, padding (0) at the end of one."""
  rows = [[1] * 40 + [2] * 100 + [3] * 7 + [4] * 109, [1] * 130 + [2] * 60 + [0] * 66]
  return jnp.asarray(rows, jnp.int32)


def _qkv():
  """q, k after a per-head RMS norm (QK-norm, as the model applies it), v plain."""
  keys = jax.random.split(jax.random.PRNGKey(0), 3)
  rms = lambda x: x * jax.lax.rsqrt(jnp.mean(x * x, axis=-1, keepdims=True) + 1e-6)
  q = rms(jax.random.normal(keys[0], (B, L, H, D)))
  k = rms(jax.random.normal(keys[1], (B, L, KVH, D)))
  return q, k, jax.random.normal(keys[2], (B, L, KVH, D))


KERNELS = {
    "splash": lambda q, k, v, s: ak.splash_attention(q, k, v, s, jnp.float32, interpret=True),
    "cudnn_xla_fallback": lambda q, k, v, s: ak.cudnn_attention(q, k, v, s, jnp.float32,
                                                                implementation="xla"),
    "cpu": lambda q, k, v, s: ak.cpu_attention(q, k, v, s, jnp.float32),
}


def _grads(fn, q, k, v, segment_ids):
  return jax.grad(lambda *x: jnp.sum(jnp.sin(fn(*x, segment_ids))), argnums=(0, 1, 2))(q, k, v)


def _close(got, want) -> bool:
  return all(np.allclose(g, w, **TOL) for g, w in zip(got, want))


def test_reference_is_attention_within_each_segment():
  """The reference itself, against a per-segment loop of plain causal attention."""
  q, k, v = _qkv()
  seg = _segments()
  got = ak.xla_attention(q, k, v, seg, jnp.float32)
  for row in range(B):
    for s in np.unique(np.asarray(seg[row])):
      idx = np.flatnonzero(np.asarray(seg[row]) == s)
      one = ak.xla_attention(q[row:row + 1, idx], k[row:row + 1, idx], v[row:row + 1, idx],
                             None, jnp.float32)
      np.testing.assert_allclose(got[row:row + 1, idx], one, **TOL)


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_kernel_matches_reference_forward_and_gradients(name):
  q, k, v = _qkv()
  seg = _segments()
  want = ak.xla_attention(q, k, v, seg, jnp.float32)
  np.testing.assert_allclose(KERNELS[name](q, k, v, seg), want, **TOL)
  got_grads = _grads(KERNELS[name], q, k, v, seg)
  want_grads = _grads(lambda *a: ak.xla_attention(*a, jnp.float32), q, k, v, seg)
  for g, w in zip(got_grads, want_grads):
    np.testing.assert_allclose(g, w, **TOL)


@pytest.mark.parametrize("name", ["splash", "cudnn_xla_fallback"])
def test_ignoring_segment_ids_is_caught(name):
  """A kernel run with the segment ids dropped (MaxText's cuDNN bug, their PR #4478) fails
  the parity check above, forward and backward."""
  q, k, v = _qkv()
  seg = _segments()
  want = ak.xla_attention(q, k, v, seg, jnp.float32)
  assert not np.allclose(KERNELS[name](q, k, v, None), want, **TOL)
  want_grads = _grads(lambda *a: ak.xla_attention(*a, jnp.float32), q, k, v, seg)
  assert not _close(_grads(lambda q, k, v, s: KERNELS[name](q, k, v, None), q, k, v, seg),
                    want_grads)


def test_splash_pads_rows_to_its_block():
  """A row of 200 tokens (not a multiple of 128) runs padded to 256, forward and backward."""
  q, k, v = (x[:, :200] for x in _qkv())
  seg = _segments()[:, :200]
  want = ak.xla_attention(q, k, v, seg, jnp.float32)
  np.testing.assert_allclose(KERNELS["splash"](q, k, v, seg), want, **TOL)
  for g, w in zip(_grads(KERNELS["splash"], q, k, v, seg),
                  _grads(lambda *a: ak.xla_attention(*a, jnp.float32), q, k, v, seg)):
    np.testing.assert_allclose(g, w, **TOL)


def test_unpacked_rows_are_plain_causal():
  q, k, v = _qkv()
  want = ak.xla_attention(q, k, v, None, jnp.float32)
  for name in ("splash", "cudnn_xla_fallback"):
    np.testing.assert_allclose(KERNELS[name](q, k, v, None), want, **TOL, err_msg=name)


CFG = TransformerConfig(vocab_size=64, d_model=32, num_layers=2, num_heads=4, num_kv_heads=2,
                        head_dim=16, mlp_dim=48, max_len=L, qk_norm=True, attention="cpu")


def _decoder_loss_grads(attention: str, mesh=None):
  cfg = dataclasses.replace(CFG, attention=attention)
  seg = _segments()
  tokens = jnp.asarray(np.random.default_rng(0).integers(2, 64, (B, L)), jnp.int32)
  starts = jnp.concatenate([jnp.ones((B, 1), bool), seg[:, 1:] != seg[:, :-1]], axis=1)
  idx = jnp.broadcast_to(jnp.arange(L), (B, L))
  positions = idx - jax.lax.cummax(jnp.where(starts, idx, 0), axis=1)
  model = Decoder(cfg)
  params = Decoder(dataclasses.replace(CFG)).init(jax.random.PRNGKey(1), tokens[:, :8])
  loss = lambda p: jnp.mean(jnp.sin(model.apply(p, tokens, positions, seg)))
  fn = jax.value_and_grad(loss)
  if mesh is not None:  # Replicated parameters: the step runs on the mesh's devices.
    fn = partitioning.logical_jit(fn, mesh)
    params = jax.device_put(params, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec()))
  return fn(params)


@pytest.mark.parametrize("attention", ["splash", "xla"])
def test_decoder_with_kernel_matches_cpu_path(attention):
  """The whole network (QK-norm, GQA, RoPE per segment), forward and parameter gradients."""
  want_loss, want = _decoder_loss_grads("cpu")
  loss, grads = _decoder_loss_grads(attention)
  np.testing.assert_allclose(loss, want_loss, **TOL)
  jax.tree.map(lambda g, w: np.testing.assert_allclose(g, w, **TOL), grads, want)


def test_splash_under_a_mesh_is_sharded_and_matches():
  """Under logical_jit on data x model, splash runs in shard_map over batch and heads."""
  mesh = partitioning.make_mesh({"data": 2, "model": 2}, jax.devices()[:4])
  want_loss, want = _decoder_loss_grads("xla", mesh)
  loss, grads = _decoder_loss_grads("splash", mesh)
  cfg = dataclasses.replace(CFG, attention="splash")
  tokens = jnp.zeros((B, L), jnp.int32)
  params = Decoder(CFG).init(jax.random.PRNGKey(1), tokens[:, :8])
  text = partitioning.logical_jit(lambda p: Decoder(cfg).apply(p, tokens, None, _segments()),
                                  mesh).lower(params).as_text()
  manual = [line for line in text.splitlines() if "sdy.manual_computation" in line]
  assert manual and all('{"data", "fsdp"}, {"model"}' in line for line in manual)
  np.testing.assert_allclose(loss, want_loss, **TOL)
  jax.tree.map(lambda g, w: np.testing.assert_allclose(g, w, **TOL), grads, want)


def test_auto_follows_the_platform_compiled_for(monkeypatch):
  monkeypatch.setattr(ak, "target_platform", lambda: "tpu")
  assert ak.resolve("auto", jnp.bfloat16) == "splash"
  monkeypatch.setattr(ak, "target_platform", lambda: "gpu")
  assert ak.resolve("auto", jnp.bfloat16) == "cudnn"
  assert ak.resolve("auto", jnp.float32) == "xla"
  monkeypatch.setattr(ak, "target_platform", lambda: "cpu")
  assert ak.resolve("auto", jnp.bfloat16) == "cpu"
  assert ak.resolve("splash", jnp.float32) == "splash"


def test_target_platform_is_the_mesh_devices():
  mesh = partitioning.make_mesh({"data": 2}, jax.devices()[:2])
  with jax.sharding.use_abstract_mesh(mesh.abstract_mesh):
    assert ak.target_platform() == "cpu"
  assert ak.target_platform() == jax.default_backend()


def test_bad_settings_are_refused():
  with pytest.raises(SettingError, match="attention='flash'"):
    dataclasses.replace(CFG, attention="flash")
  with pytest.raises(SettingError, match="bfloat16"):
    dataclasses.replace(CFG, attention="cudnn")
