"""Compiling the train and decode steps ahead of time for a TPU topology, on any host.

`jax.experimental.topologies` (with libtpu installed) gives the devices of a named slice
without the hardware; the steps are lowered on abstract arrays carrying their shardings
on a mesh over those devices and compiled by XLA:TPU, which reports per-chip memory and
its cost estimate. Nothing is allocated.

XLA's cost analysis counts a while loop's body once, so for scanned layers (and for the
gradient-accumulation loop over microbatches) it would miss all iterations but one. The
cost is therefore taken from the same step compiled without loops, unscanned with 1 and 2
layers and with m0 and m0 + 1 unrolled microbatches of the real size, and extrapolated
(layers and microbatches are identical, so the cost is bilinear in their counts):
  cost(L, M) = f(1,m0) + (L-1) d_L + (M-m0) d_M + (L-1)(M-m0) d_LM,
with d_L = f(2,m0) - f(1,m0), d_M = f(1,m0+1) - f(1,m0),
d_LM = f(2,m0+1) - f(2,m0) - f(1,m0+1) + f(1,m0).
m0 is 2 when M > 2: one microbatch takes the step's path without the accumulation loop,
whose cost lies off the line through 2, 3, 4, ... (with the activation constraints in the
step, basing on 1 and 2 missed a loop-free 4-layer, 4-microbatch compile's HBM bytes by
2.2%; basing on 2 and 3 by 0.4%).
"""
from __future__ import annotations

import dataclasses
import importlib.util
import math
import os
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from annotanchor import platforms
from annotanchor.decoding import model_sampler
from annotanchor.errors import SettingError
from annotanchor.model import attention_kernels
from annotanchor.model.config import TransformerConfig
from annotanchor.model.model import PACKING_FEATURES, REQUIRED_FEATURES, DecoderOnlyModel
from annotanchor.model.preference_model import PreferenceModel
from annotanchor.model.transformer import Decoder
from annotanchor.tpu.chips import Topology
from annotanchor.training import partitioning, step as step_lib


def libtpu_missing_reason() -> str | None:
  """Why TPU compilation cannot run here, or None when libtpu is installed."""
  if importlib.util.find_spec("libtpu") is None:
    return ("libtpu is not installed; install the tpu extra: pip install -e '.[tpu]' "
            "(libtpu==0.0.42.1, the build matching jax 0.10.2; it compiles on CPU hosts)")
  return None


def topology_devices(topology: Topology) -> list[jax.Device]:
  """The devices of `topology` (one per chip), for a mesh to compile against.

  Raises:
    RuntimeError: libtpu is missing.
  """
  reason = libtpu_missing_reason()
  if reason:
    raise RuntimeError(reason)
  from jax.experimental import topologies

  if not platforms.tpu_chips_attached():
    # libtpu's lockfile guards real chips; compiles on a CPU host may run side by side.
    os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
  side = int(math.sqrt(topology.chip.chips_per_host))
  desc = topologies.get_topology_desc(
      platform="tpu", topology_name=topology.libtpu_name,
      chip_config_name=topology.chip.chip_config,
      chips_per_host_bounds=(side, topology.chip.chips_per_host // side, 1), num_slices=1)
  return list(desc.devices)


@dataclasses.dataclass(frozen=True)
class Memory:
  """Per-chip bytes of a compiled step (XLA's memory analysis).

  `total` counts donated arguments once: outputs that reuse an argument's buffer
  (aliased) are not added again.
  """

  arguments: int
  outputs: int
  aliased: int
  temporaries: int
  generated_code: int

  @property
  def total(self) -> int:
    return self.arguments + self.outputs - self.aliased + self.temporaries + self.generated_code

  @classmethod
  def of(cls, compiled) -> "Memory":
    m = compiled.memory_analysis()
    return cls(arguments=m.argument_size_in_bytes, outputs=m.output_size_in_bytes,
               aliased=m.alias_size_in_bytes, temporaries=m.temp_size_in_bytes,
               generated_code=m.generated_code_size_in_bytes)


@dataclasses.dataclass(frozen=True)
class Cost:
  """Per-chip FLOPs and HBM bytes of one step (XLA's cost analysis)."""

  flops: float
  bytes_accessed: float

  @classmethod
  def of(cls, compiled) -> "Cost":
    analysis = compiled.cost_analysis()
    return cls(flops=float(analysis.get("flops", 0.0)),
               bytes_accessed=float(analysis.get("bytes accessed", 0.0)))

  def __add__(self, other: "Cost") -> "Cost":
    return Cost(self.flops + other.flops, self.bytes_accessed + other.bytes_accessed)

  def __sub__(self, other: "Cost") -> "Cost":
    return Cost(self.flops - other.flops, self.bytes_accessed - other.bytes_accessed)

  def __mul__(self, factor: float) -> "Cost":
    return Cost(self.flops * factor, self.bytes_accessed * factor)


@dataclasses.dataclass(frozen=True)
class ArrayShard:
  """One input array as a chip holds it."""

  name: str
  shape: tuple[int, ...]
  shard_shape: tuple[int, ...]
  spec: str
  bytes_per_chip: int


@dataclasses.dataclass(frozen=True)
class CompiledStep:
  """What compiling one step for a topology tells.

  Attributes:
    name: "train" or "decode".
    memory: per-chip memory of the real (possibly scanned) step.
    cost: per-chip cost, depth-corrected for scanned layers (module docstring).
    arrays: every input array with its sharding, largest per-chip share first.
    error: XLA's message when compilation failed (e.g. out of HBM); memory is then None.
    compile_seconds: wall seconds to trace, lower and compile the real step (the
      loop-free compiles for the cost come on top).
  """

  name: str
  memory: Memory | None
  cost: Cost | None
  arrays: list[ArrayShard]
  error: str | None = None
  compile_seconds: float | None = None


def array_shards(tree: Any, prefix: str) -> list[ArrayShard]:
  """ArrayShards of a tree of ShapeDtypeStructs with shardings, largest first."""
  out = []
  for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
    shard = leaf.sharding.shard_shape(leaf.shape)
    out.append(ArrayShard(
        name=f"{prefix}/{jax.tree_util.keystr(path, simple=True, separator='/')}",
        shape=tuple(leaf.shape), shard_shape=tuple(shard), spec=str(leaf.sharding.spec),
        bytes_per_chip=math.prod(shard) * jnp.dtype(leaf.dtype).itemsize))
  return sorted(out, key=lambda a: -a.bytes_per_chip)


def abstract_batch(batch_size: int, length: int, mesh: Mesh, pack: bool,
                   model: DecoderOnlyModel | None = None) -> dict[str, Any]:
  """The train step's input batch as ShapeDtypeStructs, rows split over the batch axes (a
  preference model's: both sides of `batch_size` pairs, unpacked)."""
  sharding = partitioning.batch_sharding(mesh)
  if isinstance(model, PreferenceModel):
    names = model.features
  else:
    names = REQUIRED_FEATURES + (PACKING_FEATURES if pack else ())
  return {name: jax.ShapeDtypeStruct(
      (batch_size, length), jnp.float32 if name.endswith("decoder_loss_weights") else jnp.int32,
      sharding=sharding) for name in names}


def step_arguments(model: DecoderOnlyModel, abstract, batch_size: int, length: int, mesh: Mesh,
                   pack: bool) -> tuple:
  """What the train step is lowered with: the state, the batch, and a preference model's
  frozen reference parameters (sharded as the policy's)."""
  batch = abstract_batch(batch_size, length, mesh, pack, model)
  frozen = (abstract.params,) if isinstance(model, PreferenceModel) else ()
  return (abstract, batch, *frozen)


def _compile(lower: Callable[[], Any]):
  """(compiled, None), or (None, XLA's message) when XLA:TPU refuses (out of memory)."""
  try:
    return lower().compile(), None
  except jax.errors.JaxRuntimeError as e:
    return None, str(e)


def _compiled_step(name: str, lowered, arrays: list[ArrayShard], start: float,
                   cost_of: Callable[[Any], Cost | None]) -> CompiledStep:
  """Compiles `lowered` and summarizes it (largest arrays first); `start`: when the
  trace began, for compile_seconds; `cost_of(compiled)`: its loop-corrected cost."""
  arrays = sorted(arrays, key=lambda a: -a.bytes_per_chip)
  compiled, error = _compile(lambda: lowered)
  seconds = time.perf_counter() - start
  if compiled is None:
    return CompiledStep(name, None, None, arrays, error, seconds)
  return CompiledStep(name, Memory.of(compiled), cost_of(compiled), arrays,
                      compile_seconds=seconds)


def _loop_corrected_cost(compiled, config: TransformerConfig, microbatches: int,
                         compile_at: Callable[[TransformerConfig, int], Any]) -> Cost | None:
  """The step's per-chip cost with every layer and microbatch counted (module docstring).

  Args:
    compiled: the real step (its cost is exact when it has no loops).
    config: the real network.
    microbatches: the real accumulation count.
    compile_at: (network, microbatches) -> lowered step without loops: layers unscanned,
      the microbatches unrolled, each microbatch of the real size.
  """
  if not config.scan_layers and microbatches == 1:
    return Cost.of(compiled)
  layers = (1, 2) if config.scan_layers else (config.num_layers,)
  counts = (2, 3) if microbatches > 2 else (microbatches,)
  f = {}
  for n in layers:
    for m in counts:
      small, _ = _compile(lambda: compile_at(
          dataclasses.replace(config, scan_layers=False, num_layers=n), m))
      if small is None:
        return None
      f[n, m] = Cost.of(small)
  l0, m0 = layers[0], counts[0]
  cost = f[l0, m0]
  if len(layers) == 2:
    cost = cost + (f[2, m0] - f[1, m0]) * (config.num_layers - 1)
  if len(counts) == 2:
    d_m = f[l0, m0 + 1] - f[l0, m0]
    cost = cost + d_m * (microbatches - m0)
    if len(layers) == 2:
      d_lm = f[2, m0 + 1] - f[2, m0] - f[1, m0 + 1] + f[1, m0]
      cost = cost + d_lm * ((config.num_layers - 1) * (microbatches - m0))
  return cost


def train_attention_kernel(config: TransformerConfig, mesh: Mesh) -> str:
  """The kernel the train step runs for `mesh`'s devices ("auto" resolved)."""
  with jax.sharding.use_abstract_mesh(mesh.abstract_mesh):
    return attention_kernels.resolve(config.attention, config.compute_dtype)


def kernel_attention_flops(config: TransformerConfig, mesh: Mesh, batch_size: int,
                           length: int) -> float:
  """Per-chip FLOPs of the train step's Pallas attention kernels, which XLA's cost analysis
  counts as zero (splash gives its pallas_call no cost estimate); 0 for the other kernels.

  The score and value matmuls as XLA counts them for the xla kernel (masked blocks not
  subtracted): forward 4 x layers x heads x head_dim x length per token, backward twice
  that, and the forward once more when the layers are rematerialised; at the length the
  kernel runs (rows padded to a multiple of 128).
  """
  if train_attention_kernel(config, mesh) != "splash":
    return 0.0
  padded = attention_kernels.splash_padded_length(length)
  forward = 4 * config.num_layers * config.num_heads * config.head_dim * padded
  passes = 3 + (config.remat_policy != "none")
  return forward * passes * batch_size * padded / mesh.size


def compile_train_step(model: DecoderOnlyModel, tx, schedule, mesh: Mesh, *, batch_size: int,
                       length: int, microbatches: int = 1, nan_policy: str = "skip",
                       pack: bool = True) -> CompiledStep:
  """Compiles the train step `annotanchor train` runs, for `mesh`'s (TPU) devices.

  Raises:
    MeshError: the batch or a parameter does not divide by its mesh axes.
  """
  partitioning.check_batch(batch_size, mesh, microbatches)
  start = time.perf_counter()
  rows = batch_size // microbatches
  batch = abstract_batch(batch_size, length, mesh, pack, model)

  def lower_at(config: TransformerConfig, count: int, unroll: bool = True):
    """The step with `count` microbatches of the real size (all of them: count=microbatches)."""
    step, abstract, _ = step_lib.sharded_train_step(
        dataclasses.replace(model, config=config), tx, schedule, mesh,
        batch_size=rows * count, microbatches=count, nan_policy=nan_policy,
        unroll_microbatches=unroll)
    return step.lower(*step_arguments(model, abstract, rows * count, length, mesh,
                                      pack)), abstract

  lowered, abstract = lower_at(model.config, microbatches, unroll=False)
  arrays = array_shards(abstract, "state") + array_shards(batch, "batch")
  if isinstance(model, PreferenceModel):
    arrays += array_shards(abstract.params, "reference")
  kernels = Cost(kernel_attention_flops(model.config, mesh, batch_size, length), 0.0)

  def cost_of(compiled):
    cost = _loop_corrected_cost(compiled, model.config, microbatches,
                                lambda c, m: lower_at(c, m)[0])
    return None if cost is None else cost + kernels

  return _compiled_step("train", lowered, arrays, start, cost_of)


def compile_decode_step(config: TransformerConfig, mesh: Mesh, *, rows: int,
                        slots: int) -> CompiledStep:
  """Compiles one KV-cache decode step (one new token for each of `rows` rows).

  The step the sampler's loop runs: the cache holds `slots` positions, is donated and
  comes back updated, with rows over the batch axes and key/value heads over `model`.

  Args:
    config: the network.
    mesh: a mesh over the topology's devices.
    rows: decode batch (prompts x samples); divides by the batch axes.
    slots: cache length (prompt plus new tokens), at most config.max_len.
  """
  partitioning.check_batch(rows, mesh)
  if slots > config.max_len:
    raise SettingError(f"a decode cache of {slots} slots exceeds the model's max_len="
                       f"{config.max_len}")
  rows_sharding = NamedSharding(mesh, P(partitioning.BATCH_AXES))
  token = jax.ShapeDtypeStruct((rows, 1), jnp.int32, sharding=rows_sharding)

  def lower_at(cfg: TransformerConfig):
    network = Decoder(dataclasses.replace(cfg, max_len=slots))
    cache_shapes = model_sampler.kv_cache_shapes(network, rows)
    cache_shardings = model_sampler.kv_cache_shardings(cache_shapes, mesh)
    cache = jax.tree.map(lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh),
                         cache_shapes, cache_shardings)
    params, _ = model_sampler.abstract_params(cfg, mesh)

    def step(params, cache, tokens, positions):
      logits, cache = model_sampler.apply_with_cache(
          network, params, tokens, positions, jnp.ones_like(tokens), cache)
      return logits[:, -1], cache

    jitted = partitioning.logical_jit(step, mesh, out_shardings=(rows_sharding, cache_shardings),
                                      donate_argnums=(1,))
    return jitted.lower(params, cache, token, token), (params, cache)

  start = time.perf_counter()
  lowered, (params, cache) = lower_at(config)
  arrays = array_shards(params, "params") + array_shards(cache, "cache")
  return _compiled_step("decode", lowered, arrays, start, lambda compiled: _loop_corrected_cost(
      compiled, config, 1, lambda c, m: lower_at(c)[0]))

