"""The sampler over the Decoder: KV-cache and full-forward `TokensToLogits`, jitted on a mesh.

  sampler = DecoderSampler(config, mesh)
  out = sampler(params, prompts, prompt_lengths, jax.random.PRNGKey(0),
                SamplingConfig(max_new_tokens=64, num_decodes=4, temperature=1.0))

The cache is sized to the request (P + T - 1 slots at most, not `config.max_len`) and grows
with it (`CACHE_GROWTH` slots at a time), so attention in each step reads few slots it
cannot use; `config.max_len` bounds P + T - 1.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from annotanchor.decoding.sampler import SampleOutput, SamplingConfig, temperature_sample
from annotanchor.errors import SettingError
from annotanchor.model.config import TransformerConfig
from annotanchor.model.transformer import Decoder
from annotanchor.training import checkpoints, partitioning


def cache_slots(prompt_len: int, config: SamplingConfig) -> int:
  """Cache slots a request uses: the prompt plus every drawn token but the last."""
  return prompt_len + config.max_new_tokens - 1


def abstract_params(config: TransformerConfig, mesh: Mesh) -> tuple[Any, Any]:
  """(the Decoder's parameters as sharded ShapeDtypeStructs, their shardings) on `mesh`.

  Raises:
    MeshError: a parameter dimension does not divide by its mesh axes.
  """
  boxed = jax.eval_shape(Decoder(config).init, jax.random.PRNGKey(0),
                         jnp.zeros((1, 1), jnp.int32))["params"]
  return partitioning.sharded_abstract(boxed, mesh)


def kv_cache_shapes(network: Decoder, rows: int) -> Any:
  """ShapeDtypeStructs of the KV cache for `rows` rows of `network` (config.max_len slots)."""
  return jax.eval_shape(lambda: network.init(
      jax.random.PRNGKey(0), jnp.zeros((rows, 1), jnp.int32), decode=True)["cache"])


def kv_cache_shardings(shapes: Any, mesh: Mesh) -> Any:
  """NamedShardings of a KV cache: rows over the batch axes, key/value heads over `model`.

  Leaves are cached_key/cached_value [..., rows, kv_heads, slots, head_dim], cached_valid
  [..., rows, slots] and cache_index [...], with a leading layer axis when scanned. Heads
  stay whole when the model axis does not divide them.
  """
  def sharding(path, x):
    name = path[-1].key
    if name == "cache_index":
      return NamedSharding(mesh, P())
    trailing = 3 if name in ("cached_key", "cached_value") else 1
    lead = (None,) * (x.ndim - trailing - 1)
    spec = [partitioning.BATCH_AXES] + [None] * trailing
    if trailing == 3 and x.shape[-3] % mesh.shape["model"] == 0:
      spec[1] = "model"
    return NamedSharding(mesh, P(*lead, *spec))
  return jax.tree_util.tree_map_with_path(sharding, shapes)


def kv_cache_fns(network: Decoder, params: Any, rows: int):
  """(empty KV cache for `rows` rows, TokensToLogits through it) for `network`."""
  cache = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), kv_cache_shapes(network, rows))
  return cache, functools.partial(apply_with_cache, network, params)


def apply_with_cache(network: Decoder, params: Any, tokens: jax.Array, positions: jax.Array,
                     segment_ids: jax.Array, cache: Any) -> tuple[jax.Array, Any]:
  """One KV-cache call of `network` (a TokensToLogits once network and params are bound).

  Returns the last position's logits only, [rows, 1, vocab]: for a prefill of 16 tokens
  the other 15 positions' logits projection was an eighth of its FLOPs, all discarded.
  """
  logits, variables = network.apply(
      {"params": params, "cache": cache}, tokens, positions=positions,
      segment_ids=segment_ids, decode=True, last_only=True, mutable=["cache"])
  return logits, variables["cache"]


# The KV-cache sampler grows its cache in steps of this many slots: attention reads every
# slot of the cache each step, so a cache sized to the request from the start made the
# early steps read (and mask out) slots not yet written.
CACHE_GROWTH = 32


def _grow_kv_cache(cache: Any, slots: int) -> Any:
  """The cache with zero (invalid) slots appended up to `slots`; see _attend_through_cache."""
  def grow(path, x):
    name = path[-1].key
    if name in ("cached_key", "cached_value"):  # [b, kvh, max_len, hd]
      return jnp.pad(x, ((0, 0), (0, 0), (0, slots - x.shape[2]), (0, 0)))
    if name == "cached_valid":  # [b, max_len]
      return jnp.pad(x, ((0, 0), (0, slots - x.shape[1])))
    return x
  return jax.tree_util.tree_map_with_path(grow, cache)


def cache_sizes(prompt_len: int, slots: int, growth: int = CACHE_GROWTH) -> list[int]:
  """The growing cache's sizes, phase by phase: the prompt plus up to `growth` drawn tokens
  (rounded up to a multiple of `growth`), then `growth` more slots a phase, up to `slots`.

  A cache of n slots serves the decode steps s <= n - prompt_len (step s feeds slot
  prompt_len + s - 1). Example: cache_sizes(16, 143, 32) -> [32, 64, 96, 128, 143].
  """
  sizes = [min(slots, -(-(prompt_len + 1) // growth) * growth)]
  while sizes[-1] < slots:
    sizes.append(min(slots, sizes[-1] + growth))
  return sizes


def growing_kv_cache_fns(config: TransformerConfig, params: Any, rows: int, prompt_len: int,
                         slots: int, growth: int = CACHE_GROWTH):
  """(empty KV cache, TokensToLogits, phases) for `temperature_sample` with a growing cache.

  The first cache holds the prompt plus up to `growth` drawn tokens (rounded up to a
  multiple of `growth`); each phase adds `growth` slots, up to `slots`.
  """
  sizes = cache_sizes(prompt_len, slots, growth)
  fns = [kv_cache_fns(Decoder(dataclasses.replace(config, max_len=n)), params, rows)
         for n in sizes]
  cache, fn = fns[0]
  # A cache of n slots serves the steps that feed slot n - 1 at most: step s feeds slot
  # prompt_len + s - 1.
  phases = [(n - prompt_len, functools.partial(_grow_kv_cache, slots=m), f)
            for n, m, (_, f) in zip(sizes, sizes[1:], fns[1:])]
  return cache, fn, phases


def full_forward_fns(network: Decoder, params: Any, rows: int, slots: int):
  """(empty token buffer, TokensToLogits that reruns the whole buffer): the no-cache baseline.

  The "cache" is the token, position and segment buffer; each call writes its chunk at the
  next free slot and runs the full (causal, segment-masked) forward over all `slots`.
  """
  cache = {"tokens": jnp.zeros((rows, slots), jnp.int32),
           "positions": jnp.zeros((rows, slots), jnp.int32),
           "segment_ids": jnp.zeros((rows, slots), jnp.int32),  # 0: empty or padding.
           "index": jnp.zeros((), jnp.int32)}

  def tokens_to_logits(tokens, positions, segment_ids, cache):
    start = cache["index"]
    write = lambda buf, x: jax.lax.dynamic_update_slice(buf, x, (0, start))
    cache = {"tokens": write(cache["tokens"], tokens),
             "positions": write(cache["positions"], positions),
             "segment_ids": write(cache["segment_ids"], segment_ids),
             "index": start + tokens.shape[1]}
    logits = network.apply({"params": params}, cache["tokens"], positions=cache["positions"],
                           segment_ids=cache["segment_ids"])
    return jax.lax.dynamic_slice_in_dim(logits, start, tokens.shape[1], axis=1), cache

  return cache, tokens_to_logits


class DecoderSampler:
  """`temperature_sample` over the Decoder, jitted with sharded parameters and batch.

  Parameters take their logical-axis shardings on `mesh` (DEFAULT_RULES); prompts and
  outputs are split by rows over the batch axes (data, fsdp), so the number of prompts
  must divide by data * fsdp. Compiles once per (prompt shape, SamplingConfig).

  Args:
    config: the network's shape.
    mesh: the device mesh (default: every device on `data`).
    use_cache: False reruns the full forward pass for every token (the baseline).
    cache_growth: the KV cache grows by this many slots at a time (see
      `growing_kv_cache_fns`).
  """

  def __init__(self, config: TransformerConfig, mesh: Mesh | None = None,
               use_cache: bool = True, cache_growth: int = CACHE_GROWTH):
    self.config = config
    self.cache_growth = cache_growth
    self.mesh = mesh if mesh is not None else partitioning.make_mesh({"data": -1})
    self.use_cache = use_cache
    self.abstract_params, self.param_shardings = abstract_params(config, self.mesh)
    self._compiled: dict[tuple[int, SamplingConfig], Any] = {}

  @property
  def batch_degree(self) -> int:
    """The prompt count must be a multiple of this (the batch axes' total size)."""
    return math.prod(self.mesh.shape[a] for a in partitioning.BATCH_AXES)

  def _build(self, prompt_len: int, sampling: SamplingConfig):
    slots = cache_slots(prompt_len, sampling)
    if slots > self.config.max_len:
      raise SettingError(
          f"a prompt of {prompt_len} tokens plus {sampling.max_new_tokens} new tokens needs "
          f"{slots} cache slots, more than the model's max_len={self.config.max_len}")
    network = Decoder(dataclasses.replace(self.config, max_len=slots))

    def run(params, prompts, prompt_lengths, rng):
      rows = prompts.shape[0] * sampling.num_decodes
      if self.use_cache:
        cache, fn, phases = growing_kv_cache_fns(
            self.config, params, rows, prompt_len, slots, self.cache_growth)
      else:
        cache, fn = full_forward_fns(network, params, rows, slots)
        phases = ()
      return temperature_sample(fn, cache, prompts, prompt_lengths, rng, sampling, phases)

    rows = partitioning.batch_sharding(self.mesh)
    replicated = NamedSharding(self.mesh, P())
    return partitioning.logical_jit(
        run, self.mesh, in_shardings=(self.param_shardings, rows, rows, replicated),
        out_shardings=SampleOutput(tokens=rows, lengths=rows, stopped=rows))

  def __call__(self, params: Any, prompts: np.ndarray, prompt_lengths: np.ndarray,
               rng: jax.Array, sampling: SamplingConfig) -> SampleOutput:
    """Samples; see `temperature_sample` (`rng`: one key, or one per prompt).

    Raises:
      ValueError: the request does not fit the model's max_len, or the prompt count does
        not divide by the batch axes of the mesh.
    """
    if prompts.shape[0] % self.batch_degree:
      raise SettingError(f"{prompts.shape[0]} prompts do not divide by the mesh's batch axes "
                         f"data*fsdp={self.batch_degree}; pad the batch")
    key = (prompts.shape[1], sampling)
    if key not in self._compiled:
      self._compiled[key] = self._build(prompts.shape[1], sampling)
    return self._compiled[key](params, jnp.asarray(prompts, jnp.int32),
                               jnp.asarray(prompt_lengths, jnp.int32), rng)


def restore_sampler(config: TransformerConfig, checkpoint_path: str,
                    mesh_degrees: dict[str, int] | None = None) -> tuple[DecoderSampler, Any]:
  """A sampler on a mesh and a checkpoint's parameters restored onto it.

  Args:
    config: the network's shape (the checkpoint's).
    checkpoint_path: a MODEL_DIR, its checkpoints/ directory or a step directory.
    mesh_degrees: degrees per mesh axis; default every device on `data`.

  Raises:
    FileNotFoundError: no checkpoint at CHECKPOINT_PATH.
    checkpoints.CheckpointMismatchError: the checkpoint has another shape.
  """
  sampler = DecoderSampler(config, partitioning.make_mesh(mesh_degrees or {"data": -1}))
  return sampler, checkpoints.restore_params(checkpoint_path, sampler.abstract_params,
                                             "CHECKPOINT_PATH")
