"""causal_attention (query blocks over key prefixes) equals naive full attention."""
import jax
import jax.numpy as jnp
import numpy as np

from annotanchor.model import attention_kernels


def full_attention(q, k, v, mask, dtype):
  """The naive reference: every query against every key, GQA by repeating k and v."""
  group = q.shape[2] // k.shape[2]
  k, v = jnp.repeat(k, group, axis=2), jnp.repeat(v, group, axis=2)
  scores = jnp.einsum("bqhd,bshd->bhqs", q, k) / jnp.sqrt(jnp.float32(q.shape[-1]))
  scores = jnp.where(mask[:, None], scores, -1e10)
  return jnp.einsum("bhqs,bshd->bqhd", jax.nn.softmax(scores, axis=-1), v).astype(dtype)


def _inputs(b=2, length=40, h=4, kvh=2, d=8):
  keys = jax.random.split(jax.random.PRNGKey(0), 3)
  q = jax.random.normal(keys[0], (b, length, h, d))
  k = jax.random.normal(keys[1], (b, length, kvh, d))
  v = jax.random.normal(keys[2], (b, length, kvh, d))
  slots = jnp.arange(length)
  segment_ids = jnp.asarray(np.repeat([[1, 2, 3, 0]], b, 0).repeat(length // 4, 1))
  mask = (slots[:, None] >= slots[None, :])[None] & (segment_ids[:, :, None] ==
                                                      segment_ids[:, None, :])
  return q, k, v, mask


def test_chunked_matches_full_attention_packed_gqa():
  q, k, v, mask = _inputs()
  full = full_attention(q, k, v, mask, jnp.float32)
  for chunk in (8, 16, 40, 64):  # 16: a shorter last block; 40, 64: one block
    got = attention_kernels.causal_attention(q, k, v, mask, jnp.float32, chunk=chunk)
    np.testing.assert_allclose(got, full, rtol=1e-5, atol=1e-6, err_msg=f"chunk={chunk}")


def test_chunked_gradients_match_full_attention():
  q, k, v, mask = _inputs()
  def grads(fn):
    return jax.grad(lambda *x: jnp.sum(jnp.sin(fn(*x, mask, jnp.float32))), argnums=(0, 1, 2))(
        q, k, v)
  want = grads(full_attention)
  got = grads(lambda *a: attention_kernels.causal_attention(*a, chunk=16))
  for g, w in zip(got, want):
    np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
