"""Building blocks of the decoder: RMSNorm, rotary embeddings, GQA attention, SwiGLU MLP.

Every parameter is created with logical axis names and every main activation is
constrained by them; the partitioner (annotanchor.training.partitioning) maps the names to
mesh axes.
"""
from __future__ import annotations

import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from annotanchor.model import attention_kernels
from annotanchor.model.attention_kernels import MASK_VALUE as _MASK_VALUE
from annotanchor.model.config import TransformerConfig


def logical_init(std: float, axes: tuple[str, ...]):
  return nn.with_logical_partitioning(nn.initializers.normal(std), axes)


def constrain(x, axes: tuple[str, ...]):
  return nn.with_logical_constraint(x, axes)


class RMSNorm(nn.Module):
  """Root-mean-square norm over the last axis, computed in float32.

  With a tuple of axis names, over that many trailing axes at once, with a scale of
  their shape: OLMo-2's QK-norm over a whole projection is axis_name=("heads", "kv") on
  [batch, length, heads, head_dim] (the mean over all heads * head_dim values).
  """

  eps: float
  dtype: jnp.dtype
  param_dtype: jnp.dtype
  axis_name: str | tuple[str, ...] = "embed"

  @nn.compact
  def __call__(self, x):
    names = (self.axis_name,) if isinstance(self.axis_name, str) else tuple(self.axis_name)
    axes = -1 if len(names) == 1 else tuple(range(-len(names), 0))
    scale = self.param(
        "scale", nn.with_logical_partitioning(nn.initializers.ones, names),
        x.shape[x.ndim - len(names):], self.param_dtype)
    x32 = x.astype(jnp.float32)
    y = x32 * jax.lax.rsqrt(jnp.mean(jnp.square(x32), axis=axes, keepdims=True) + self.eps)
    return (y * scale.astype(jnp.float32)).astype(self.dtype)


def llama3_frequencies(inv_freq, factor: float, low_freq_factor: float,
                       high_freq_factor: float, original_max_len: int):
  """Llama 3.1's rescaled rotary frequencies (transformers' `_compute_llama3_parameters`).

  Wavelengths 2 pi / f longer than original_max_len / low_freq_factor are stretched by
  `factor`, those shorter than original_max_len / high_freq_factor kept, and the ones in
  between interpolated: smooth = (original_max_len / wavelength - low) / (high - low),
  f' = (1 - smooth) f / factor + smooth f.
  """
  wavelen = 2 * math.pi / inv_freq
  low_wavelen = original_max_len / low_freq_factor
  high_wavelen = original_max_len / high_freq_factor
  scaled = jnp.where(wavelen > low_wavelen, inv_freq / factor, inv_freq)
  smooth = (original_max_len / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
  smoothed = (1 - smooth) * scaled / factor + smooth * scaled
  medium = (wavelen >= high_wavelen) & (wavelen <= low_wavelen)
  return jnp.where(medium, smoothed, scaled)


def rotary_frequencies(config: TransformerConfig):
  """The [head_dim / 2] float32 rotary frequencies `config` asks for (see apply_rotary)."""
  half = config.head_dim // 2
  inv_freq = config.rope_theta ** (-jnp.arange(half, dtype=jnp.float32) / half)
  if config.rope_type == "llama3":
    inv_freq = llama3_frequencies(inv_freq, config.rope_factor, config.rope_low_freq_factor,
                                  config.rope_high_freq_factor, config.rope_original_max_len)
  return inv_freq


def apply_rotary(x, positions, theta: float, inv_freq=None):
  """Rotary position embedding, in the rotate-half layout of Llama/OLMo checkpoints.

  Args:
    x: [batch, length, heads, head_dim].
    positions: [batch, length] integer positions (per segment when packed).
    theta: frequency base.
    inv_freq: [head_dim / 2] frequencies to use instead of theta's (rotary_frequencies).

  Returns:
    x rotated pairwise: dims i and i + head_dim/2 form one 2-D rotation by
    positions * theta^(-i / (head_dim/2)) (or positions * inv_freq[i]).
  """
  half = x.shape[-1] // 2
  if inv_freq is None:
    inv_freq = theta ** (-jnp.arange(half, dtype=jnp.float32) / half)
  angles = positions.astype(jnp.float32)[..., None] * inv_freq  # [b, l, half]
  sin = jnp.sin(angles)[:, :, None, :]
  cos = jnp.cos(angles)[:, :, None, :]
  x1, x2 = jnp.split(x.astype(jnp.float32), 2, axis=-1)
  out = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
  return out.astype(x.dtype)


def cached_attention(q, k, v, mask, dtype):
  """Grouped-query softmax attention over a head-major KV cache (the decode path).

  Each key/value head serves num_heads // num_kv_heads query heads.

  Args:
    q: [batch, q_len, heads, head_dim].
    k, v: [batch, kv_heads, slots, head_dim], the cache as `_attend_through_cache` keeps it.
    mask: [batch, q_len, slots] booleans, True where the query may attend to the slot.
    dtype: dtype of the output.

  Returns:
    [batch, q_len, heads, head_dim].
  """
  b, lq, h, d = q.shape
  kvh = k.shape[1]
  q = q.reshape(b, lq, kvh, h // kvh, d).transpose(0, 2, 3, 1, 4)  # [b, kvh, g, q, d]
  scores = jnp.einsum("bkgqd,bksd->bkgqs", q, k, preferred_element_type=jnp.float32)
  scores = scores / jnp.sqrt(jnp.float32(d))
  scores = jnp.where(mask[:, None, None, :, :], scores, _MASK_VALUE)
  probs = jax.nn.softmax(scores, axis=-1).astype(v.dtype)
  out = jnp.einsum("bkgqs,bksd->bkgqd", probs, v)
  return out.transpose(0, 3, 1, 2, 4).reshape(b, lq, h, d).astype(dtype)


class Projection(nn.Module):
  """nn.DenseGeneral without bias (same "kernel" parameter, same dot_general), with the
  kernel created at its full shape.

  flax's DenseGeneral creates a kernel of several input or output axes flat, as
  [prod(in), prod(out)], and reshapes the boxed value; on every `apply` it re-runs that
  initializer under eval_shape to check shapes, and once logical-axis rules and a mesh are
  in scope (partitioning.logical_jit) unboxing the flat kernel applies its 3-name
  constraint to a 2-D array, which fails. The attention projections use this instead.
  """

  features: int | tuple[int, ...]
  dtype: jnp.dtype
  param_dtype: jnp.dtype
  kernel_init: object
  axis: int | tuple[int, ...] = -1

  @nn.compact
  def __call__(self, x):
    features = (self.features,) if isinstance(self.features, int) else tuple(self.features)
    axis = (self.axis,) if isinstance(self.axis, int) else tuple(self.axis)
    axis = tuple(sorted(a % x.ndim for a in axis))
    kernel = self.param("kernel", self.kernel_init,
                        tuple(x.shape[a] for a in axis) + features, self.param_dtype)
    x, kernel = nn.dtypes.promote_dtype(x, kernel, dtype=self.dtype)
    return jax.lax.dot_general(x, kernel, ((axis, tuple(range(len(axis)))), ((), ())))


class Attention(nn.Module):
  """Grouped-query self-attention with rotary embeddings, packing and a decode cache.

  Training (decode=False): causal attention within each segment of a packed row.
  Decoding (decode=True): keys and values are written into a cache of `max_len` slots at
  `cache_index`; every row writes the same slots, so prompts of different lengths are
  left-padded and padding is marked invalid (segment id 0). With a batch of one prompt
  of 2 tokens padded to 3, then one decode step:

    prefill tokens  [[pad, a, b]]  segment_ids [[0, 1, 1]]  positions [[0, 0, 1]]
      cache slots    0    1  2  3 ...       cached_valid [[F, T, T, F, ...]]
    step token      [[c]]          segment_ids [[1]]        positions [[2]]
      writes slot 3; the query in slot 3 attends to slots 1, 2, 3.
  """

  config: TransformerConfig
  decode: bool = False

  @nn.compact
  def __call__(self, x, positions, segment_ids):
    cfg = self.config
    dense = functools.partial(Projection, dtype=cfg.compute_dtype, param_dtype=cfg.weight_dtype)
    q = dense((cfg.num_heads, cfg.head_dim), name="query",
              kernel_init=logical_init(cfg.init_std, ("embed", "heads", "kv")))(x)
    k = dense((cfg.num_kv_heads, cfg.head_dim), name="key",
              kernel_init=logical_init(cfg.init_std, ("embed", "kv_heads", "kv")))(x)
    v = dense((cfg.num_kv_heads, cfg.head_dim), name="value",
              kernel_init=logical_init(cfg.init_std, ("embed", "kv_heads", "kv")))(x)
    if cfg.qk_norm:
      norm = functools.partial(RMSNorm, cfg.norm_eps, cfg.compute_dtype, cfg.weight_dtype)
      if cfg.qk_norm_scope == "head":  # Per head, over head_dim (Qwen3).
        q, k = norm("kv", name="query_norm")(q), norm("kv", name="key_norm")(k)
      else:  # Over the whole projection (OLMo-2).
        q = norm(("heads", "kv"), name="query_norm")(q)
        k = norm(("kv_heads", "kv"), name="key_norm")(k)
    inv_freq = rotary_frequencies(cfg)
    q = constrain(apply_rotary(q, positions, cfg.rope_theta, inv_freq),
                  ("batch", "length", "heads", "kv"))
    k = constrain(apply_rotary(k, positions, cfg.rope_theta, inv_freq),
                  ("batch", "length", "kv_heads", "kv"))
    v = constrain(v, ("batch", "length", "kv_heads", "kv"))

    if self.decode:  # Every setting: see docs/hardware.md, "Attention kernels".
      mask = attention_kernels.segment_mask(segment_ids, x.shape[1], x.shape[0])
      k, v, mask = self._attend_through_cache(k, v, segment_ids, mask)
      out = cached_attention(q, k, v, mask, cfg.compute_dtype)
    else:
      kernel = attention_kernels.resolve(cfg.attention, cfg.compute_dtype)
      out = attention_kernels.KERNELS[kernel](q, k, v, segment_ids, cfg.compute_dtype)
    out = constrain(out, ("batch", "length", "heads", "kv"))
    return dense(cfg.d_model, axis=(-2, -1), name="out",
                 kernel_init=logical_init(cfg.init_std, ("heads", "kv", "embed")))(out)

  def _attend_through_cache(self, k, v, segment_ids, mask):
    """Writes k, v at cache_index; returns the whole cache and the mask over its slots.

    The cache is head-major, [batch, kv_heads, max_len, head_dim], the layout in which
    `cached_attention` multiplies it: kept token-major, XLA copied every layer's whole key
    and value cache into that layout on every decode step.
    """
    b, length, kvh, hd = k.shape
    max_len = self.config.max_len
    initialising = not self.has_variable("cache", "cached_key")
    cached_k = self.variable("cache", "cached_key", jnp.zeros, (b, kvh, max_len, hd), k.dtype)
    cached_v = self.variable("cache", "cached_value", jnp.zeros, (b, kvh, max_len, hd), v.dtype)
    cached_valid = self.variable("cache", "cached_valid", jnp.zeros, (b, max_len), jnp.bool_)
    index = self.variable("cache", "cache_index", lambda: jnp.zeros((), jnp.int32))
    if initialising:  # `init` only creates the empty cache.
      return k.transpose(0, 2, 1, 3), v.transpose(0, 2, 1, 3), mask
    start = index.value
    valid = jnp.ones((b, length), jnp.bool_) if segment_ids is None else segment_ids != 0
    cached_k.value = jax.lax.dynamic_update_slice(
        cached_k.value, k.transpose(0, 2, 1, 3), (0, 0, start, 0))
    cached_v.value = jax.lax.dynamic_update_slice(
        cached_v.value, v.transpose(0, 2, 1, 3), (0, 0, start, 0))
    cached_valid.value = jax.lax.dynamic_update_slice(cached_valid.value, valid, (0, start))
    index.value = start + length
    query_slots = start + jnp.arange(length)
    causal = jnp.arange(max_len)[None, :] <= query_slots[:, None]  # [q, max_len]
    mask = causal[None] & cached_valid.value[:, None, :]
    return cached_k.value, cached_v.value, mask


@jax.custom_vjp
def _matmul(x, w):
  """x [..., k] @ w [k, n], with the weight gradient taken as x^T @ dy on an explicit x^T.

  Left to itself XLA's CPU backend computes the weight gradient of a dense layer by copying
  dy (the wide side: [tokens, vocab] for the logits) into a transposed layout; transposing
  x ([tokens, d_model]) instead is 16x less copying at vocab 8192. The optimization barrier
  keeps XLA from folding the transpose back into the dot. Used for the logits projection
  only: in the MLP it moves float32 rounding enough that accumulation-vs-big-batch
  (tests/training/test_step.py) misses its tolerance on one element.
  """
  return jnp.einsum("...k,kn->...n", x, w)


def _matmul_fwd(x, w):
  return _matmul(x, w), (x, w)


def _matmul_bwd(res, g):
  x, w = res
  dx = jnp.einsum("...n,kn->...k", g, w)
  x_t = jax.lax.optimization_barrier(x.reshape(-1, x.shape[-1]).T)
  dw = jnp.dot(x_t, g.reshape(-1, g.shape[-1]), preferred_element_type=jnp.float32)
  return dx.astype(x.dtype), dw.astype(w.dtype)


_matmul.defvjp(_matmul_fwd, _matmul_bwd)


def _plain_matmul(x, w):
  return jnp.einsum("...k,kn->...n", x, w)


class Dense(nn.Module):
  """nn.DenseGeneral without bias over the last `in_axes` input axes, with the same parameter
  ("kernel", [*contracted input dims, *features]), computed through `_matmul`."""

  features: int | tuple[int, ...]
  dtype: jnp.dtype
  param_dtype: jnp.dtype
  kernel_init: object
  in_axes: int = 1

  @nn.compact
  def __call__(self, x):
    features = (self.features,) if isinstance(self.features, int) else tuple(self.features)
    contracted = x.shape[x.ndim - self.in_axes:]
    kernel = self.param("kernel", self.kernel_init, (*contracted, *features), self.param_dtype)
    k = math.prod(contracted)
    x2 = x.astype(self.dtype).reshape(*x.shape[:x.ndim - self.in_axes], k)
    # The barrier's explicit transpose is an XLA:CPU layout fix; elsewhere a plain dot.
    matmul = _matmul if attention_kernels.target_platform() == "cpu" else _plain_matmul
    y = matmul(x2, kernel.astype(self.dtype).reshape(k, math.prod(features)))
    return y.reshape(*x.shape[:x.ndim - self.in_axes], *features)


class MLP(nn.Module):
  """SwiGLU: (silu(x W0) * x W1) Wo."""

  config: TransformerConfig

  @nn.compact
  def __call__(self, x):
    cfg = self.config
    dense = functools.partial(
        nn.DenseGeneral, use_bias=False, dtype=cfg.compute_dtype, param_dtype=cfg.weight_dtype)
    gate = dense(cfg.mlp_dim, name="wi_0", kernel_init=logical_init(cfg.init_std, ("embed", "mlp")))(x)
    up = dense(cfg.mlp_dim, name="wi_1", kernel_init=logical_init(cfg.init_std, ("embed", "mlp")))(x)
    hidden = constrain(nn.silu(gate) * up, ("batch", "length", "mlp"))
    return dense(cfg.d_model, name="wo", kernel_init=logical_init(cfg.init_std, ("mlp", "embed")))(hidden)
