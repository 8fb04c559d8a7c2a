"""Training self-attention kernels behind `TransformerConfig.attention`.

Each kernel takes q [batch, length, heads, head_dim], k and v [batch, length, kv_heads,
head_dim] (grouped-query: query head i reads key/value head i // (heads // kv_heads)) and
the packing segment ids [batch, length] (None when unpacked), and computes causal softmax
attention within each segment:

  splash  TPU: Pallas splash attention (CausalMask, SegmentIds; rows padded at the end to a
          multiple of 128); on another backend it runs in Pallas interpret mode (exact but
          slow: for tests).
  cudnn   GPU: `jax.nn.dot_product_attention(implementation="cudnn")`, causal, with packed
          rows as a [batch, 1, length, length] segment mask (jax.nn has no segment-id
          argument; cuDNN reads the mask as an additive bias inside its flash kernel). Off
          GPU the same call runs jax.nn's XLA implementation.
  xla     the plain reference: full scores, masked, softmax, @ v.
  cpu     `causal_attention` (query blocks over key prefixes, each a custom-VJP block whose
          backward reuses the forward's probabilities), tuned for XLA:CPU; it reads the
          dense [batch, length, length] mask built from the segment ids.

"auto" picks by the platform the step is compiled for (the devices of the mesh in scope
under `partitioning.logical_jit`, so a TPU AOT compile on a CPU host gets splash; else the
default backend): splash on TPU, cudnn on GPU for bf16 compute (xla for float32, which cuDNN's flash attention does not
run), cpu on CPU.
"""
from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp


# Large negative instead of -inf: a query whose keys are all masked (a left-padding slot
# in the decode cache) gets a uniform softmax rather than NaN.
MASK_VALUE = -1e10

# Longest splash block that divides the row length is used (MaxText's default is 512).
_SPLASH_BLOCKS = (512, 256, 128)


def target_platform() -> str:
  """"tpu", "gpu" or "cpu": the devices of the mesh in scope, else the default backend."""
  mesh = jax.sharding.get_abstract_mesh()
  device = None if mesh.empty else mesh.abstract_device
  platform = device.platform if device is not None else jax.default_backend()
  return "gpu" if platform in ("cuda", "rocm") else platform


def resolve(attention: str, dtype) -> str:
  """The kernel `attention` names; "auto" chosen by `target_platform()` and `dtype`."""
  if attention != "auto":
    return attention
  platform = target_platform()
  if platform == "tpu":
    return "splash"
  if platform == "gpu":
    return "cudnn" if jnp.dtype(dtype) in (jnp.bfloat16, jnp.float16) else "xla"
  return "cpu"


def segment_mask(segment_ids, length: int, batch: int):
  """[batch, length, length] booleans: causal, and within one segment when packed."""
  slots = jnp.arange(length)
  mask = jnp.broadcast_to(slots[:, None] >= slots[None, :], (batch, length, length))
  if segment_ids is not None:
    mask = mask & (segment_ids[:, :, None] == segment_ids[:, None, :])
  return mask


def xla_attention(q, k, v, segment_ids, dtype):
  """The reference: every query against every key of its segment, causally."""
  b, length, h, d = q.shape
  kvh = k.shape[2]
  qg = q.reshape(b, length, kvh, h // kvh, d)
  scores = jnp.einsum("bqkgd,bskd->bkgqs", qg, k, preferred_element_type=jnp.float32)
  scores = scores / jnp.sqrt(jnp.float32(d))
  mask = segment_mask(segment_ids, length, b)
  scores = jnp.where(mask[:, None, None], scores, MASK_VALUE)
  probs = jax.nn.softmax(scores, axis=-1).astype(v.dtype)
  out = jnp.einsum("bkgqs,bskd->bqkgd", probs, v, preferred_element_type=jnp.float32)
  return out.reshape(b, length, h, d).astype(dtype)


def cudnn_attention(q, k, v, segment_ids, dtype, implementation: str | None = None):
  """jax.nn.dot_product_attention, causal, packed rows masked by segment.

  Args:
    implementation: "cudnn" or "xla"; None: cudnn on GPU, jax.nn's XLA path elsewhere.
  """
  if implementation is None:
    implementation = "cudnn" if target_platform() == "gpu" else "xla"
  mask = None
  if segment_ids is not None:  # Causality comes from is_causal (cuDNN skips those blocks).
    mask = (segment_ids[:, :, None] == segment_ids[:, None, :])[:, None]
  out = jax.nn.dot_product_attention(q, k, v, mask=mask, is_causal=True,
                                     implementation=implementation)
  return out.astype(dtype)


def splash_padded_length(length: int) -> int:
  """The row length splash runs at: `length` rounded up to its smallest block, 128."""
  return -(-length // _SPLASH_BLOCKS[-1]) * _SPLASH_BLOCKS[-1]


def splash_block(length: int) -> int:
  """The splash block for rows of `length` (a multiple of 128): the largest of 512/256/128
  dividing it."""
  return next(block for block in _SPLASH_BLOCKS if length % block == 0)


def _splash_local(q, k, v, segment_ids, interpret: bool):
  """Splash attention on one shard: q [b, h, l, d] pre-scaled, k, v [b, kvh, l, d]."""
  from jax.experimental.pallas.ops.tpu import splash_attention as splash

  _, h, length, _ = q.shape
  block = splash_block(length)
  sizes = splash.BlockSizes(
      block_q=block, block_kv=block, block_kv_compute=block, block_q_dkv=block,
      block_kv_dkv=block, block_kv_dkv_compute=block, block_q_dq=block, block_kv_dq=block)
  mask = splash.MultiHeadMask([splash.CausalMask((length, length))] * h)
  # The MHA kernel serves grouped-query attention itself (kv head = head // group).
  kernel = splash.make_splash_mha(mask, block_sizes=sizes, head_shards=1, q_seq_shards=1,
                                  interpret=interpret)
  if segment_ids is None:
    return jax.vmap(kernel)(q, k, v)
  return jax.vmap(kernel)(q, k, v, splash.SegmentIds(q=segment_ids, kv=segment_ids))


def splash_attention(q, k, v, segment_ids, dtype, interpret: bool | None = None):
  """Pallas splash attention, sharded by batch and heads over the mesh in scope.

  A pallas_call is opaque to XLA's partitioner, so under a mesh of several devices the
  kernel runs in `shard_map` with the activations' own shardings (the logical rules in
  scope: batch over data+fsdp, heads over model); the length axis is never split.

  Args:
    interpret: Pallas interpret mode; None: on any platform but TPU.
  """
  if interpret is None:
    interpret = target_platform() != "tpu"
  length, d = q.shape[1], q.shape[-1]
  # Rows are padded at the end to a multiple of the block: under the causal mask no real
  # query sees the padding, and its own outputs are cut off.
  pad = splash_padded_length(length) - length
  if pad:
    q, k, v = (jnp.pad(x, ((0, 0), (0, pad), (0, 0), (0, 0))) for x in (q, k, v))
    if segment_ids is not None:
      segment_ids = jnp.pad(segment_ids, ((0, 0), (0, pad)))
  qh = (q * (1.0 / d**0.5)).astype(q.dtype).transpose(0, 2, 1, 3)  # splash does not scale.
  kh, vh = k.transpose(0, 2, 1, 3), v.transpose(0, 2, 1, 3)
  args, local = (qh, kh, vh, segment_ids), functools.partial(_splash_local, interpret=interpret)
  specs = ("heads", "kv_heads", "kv_heads", None)
  if segment_ids is None:
    args, local, specs = args[:3], lambda *a: _splash_local(*a, None, interpret), specs[:3]
  mesh = jax.sharding.get_abstract_mesh()
  if not mesh.empty and mesh.size > 1:
    specs = tuple(nn.logical_to_mesh_axes(("batch", "length") if heads is None else
                                          ("batch", heads, "length", "kv")) for heads in specs)
    local = jax.shard_map(local, mesh=mesh, in_specs=specs, out_specs=specs[0],
                          check_vma=False)
  out = local(*args)
  return out.transpose(0, 2, 1, 3)[:, :length].astype(dtype)


# Query block of causal_attention: 128 skips 3/8 of the score matrix at length 512.
CAUSAL_QUERY_CHUNK = 128


@jax.custom_vjp
def _attention_block(q, k, v, mask):
  """Softmax attention of one query block, head-major, with a hand-written backward.

  Args:
    q: [batch, kv_heads, rows, head_dim] (rows = query positions x group, query-major).
    k, v: [batch, kv_heads, keys, head_dim].
    mask: [batch, 1, rows, keys] booleans.

  Returns:
    [batch, kv_heads, rows, head_dim] float32.

  The same arithmetic as full attention (scores / sqrt(d), masked, softmax, @ v); the
  backward keeps the probabilities from the forward and computes every gradient with
  dot_generals whose [rows, keys] operand is already in matmul layout, so XLA copies no
  score-sized tensor into a transposed layout.
  """
  return _attention_block_fwd(q, k, v, mask)[0]


def _attention_block_fwd(q, k, v, mask):
  scale = jnp.sqrt(jnp.float32(q.shape[-1]))
  scores = jnp.einsum("bhrd,bhsd->bhrs", q, k, preferred_element_type=jnp.float32) / scale
  scores = jnp.where(mask, scores, MASK_VALUE)
  probs = jax.nn.softmax(scores, axis=-1)
  out = jnp.einsum("bhrs,bhsd->bhrd", probs, v, preferred_element_type=jnp.float32)
  return out, (q, k, v, probs)


def _attention_block_bwd(res, g):
  q, k, v, probs = res
  scale = jnp.sqrt(jnp.float32(q.shape[-1]))
  # d(probs), then the softmax backward probs * (dp - sum(dp * probs)).
  dp = jnp.einsum("bhrd,bhsd->bhrs", g, v, preferred_element_type=jnp.float32)
  ds = probs * (dp - jnp.sum(dp * probs, axis=-1, keepdims=True)) / scale
  dq = jnp.einsum("bhrs,bhsd->bhrd", ds, k, preferred_element_type=jnp.float32)
  # dk, dv contract over rows: computed as [d, keys] with the [rows, keys] operand as the
  # matmul's right-hand side in place, then the small result is transposed.
  dk = jnp.swapaxes(jnp.einsum("bhrd,bhrs->bhds", q, ds, preferred_element_type=jnp.float32), 2, 3)
  dv = jnp.swapaxes(jnp.einsum("bhrd,bhrs->bhds", g, probs, preferred_element_type=jnp.float32), 2, 3)
  return dq.astype(q.dtype), dk.astype(k.dtype), dv.astype(v.dtype), None


_attention_block.defvjp(_attention_block_fwd, _attention_block_bwd)


def causal_attention(q, k, v, mask, dtype, chunk: int = CAUSAL_QUERY_CHUNK):
  """Grouped-query self-attention under a causal mask, skipping the masked keys.

  Queries are taken in blocks of `chunk`; the block [start, end) attends only to keys
  [0, end), since the causal mask hides every later key. A hidden key's softmax weight is
  exactly 0 (exp(MASK_VALUE - max) underflows), so the result equals full attention up to
  float32 summation order, for roughly (n + 1) / 2n of the work with n blocks. Each block
  runs head-major ([batch, kv_heads, rows, head_dim]) through `_attention_block`, whose
  backward reuses the forward's probabilities.

  Requires q_len == k_len and a mask that is causal (mask[i, j] False for j > i) with the
  diagonal allowed, as in training; decoding uses `layers.cached_attention`.

  Args:
    q: [batch, length, heads, head_dim].
    k, v: [batch, length, kv_heads, head_dim].
    mask: [batch, length, length] booleans, True where the query may attend to the key.
    dtype: dtype of the output.
    chunk: query block size.

  Returns:
    [batch, length, heads, head_dim].
  """
  b, length, h, d = q.shape
  kvh = k.shape[2]
  group = h // kvh
  # [b, l, kvh * g, d] -> [b, kvh, l * g, d]: row i * g + j is query i, head j of the group.
  qh = q.reshape(b, length, kvh, group, d).transpose(0, 2, 1, 3, 4).reshape(b, kvh, length * group, d)
  kh = k.transpose(0, 2, 1, 3)
  vh = v.transpose(0, 2, 1, 3)
  outs = []
  for start in range(0, length, chunk):
    end = min(start + chunk, length)
    m = mask[:, None, start:end, :end]
    if group > 1:
      m = jnp.repeat(m, group, axis=2)
    outs.append(_attention_block(qh[:, :, start * group:end * group], kh[:, :, :end],
                                 vh[:, :, :end], m))
  out = outs[0] if len(outs) == 1 else jnp.concatenate(outs, axis=2)
  out = out.reshape(b, kvh, length, group, d).transpose(0, 2, 1, 3, 4).reshape(b, length, h, d)
  return out.astype(dtype)


def cpu_attention(q, k, v, segment_ids, dtype):
  """`causal_attention` behind the kernels' common signature: the dense mask from the
  segments."""
  return causal_attention(q, k, v, segment_mask(segment_ids, q.shape[1], q.shape[0]), dtype)


# The kernels `Attention` calls by name for training.
KERNELS = {"splash": splash_attention, "cudnn": cudnn_attention, "xla": xla_attention,
           "cpu": cpu_attention}
