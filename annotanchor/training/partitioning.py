"""The mesh, the logical-axis rules, and the shardings derived from them.

Mesh axes:
  data   pure data parallelism: parameters replicated, batch split.
  fsdp   data parallelism with parameters (and optimizer state) split along `embed`
         (ZeRO-3 / t5x 2-D style); gathered per layer by XLA.
  model  tensor parallelism: heads, MLP width and vocabulary split.

Logical axis -> mesh axes (DEFAULT_RULES). Rules are tried in order and a mesh axis is
used at most once per array, so for activations [batch, length, embed] `batch` takes
data+fsdp and `embed` stays whole, while for a weight [embed, mlp] `embed` goes to fsdp:

  | logical   | mesh            | where                                     |
  |-----------|-----------------|-------------------------------------------|
  | batch     | (data, fsdp)    | activations and input batches             |
  | vocab     | model           | embedding rows, logits                    |
  | mlp       | model           | MLP hidden width                          |
  | heads     | model           | query heads                               |
  | kv_heads  | model           | key/value heads (GQA)                     |
  | embed     | fsdp            | weights' model width (activations: whole) |
  | length    | -               | sequence                                  |
  | kv        | -               | head width                                |
  | layers    | -               | the stacked layer axis under nn.scan      |

Parameters get their shardings from these rules through jit's in/out shardings; the
model's activation constraints (`layers.constrain`, flax's `with_logical_constraint`)
apply only while the rules and a mesh are in scope, which `logical_jit` arranges for
every step it jits (train, decode).
"""
from __future__ import annotations

import functools
import math
from typing import Any, Callable, Mapping, Sequence

import flax.linen as nn
import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from annotanchor.errors import UserError

MESH_AXES = ("data", "fsdp", "model")
BATCH_AXES = ("data", "fsdp")

DEFAULT_RULES = (
    ("batch", BATCH_AXES),
    ("vocab", "model"),
    ("mlp", "model"),
    ("heads", "model"),
    ("kv_heads", "model"),
    ("embed", "fsdp"),
    ("length", None),
    ("kv", None),
    ("layers", None),
)


class MeshError(UserError, ValueError):
  """A mesh that does not fit the devices, the parameters or the batch."""


def mesh_shape(degrees: Mapping[str, int], num_devices: int) -> tuple[int, ...]:
  """Resolves degrees (one may be -1: fill) to a shape over MESH_AXES.

  >>> mesh_shape({"data": -1, "model": 4}, 8)
  (2, 1, 4)
  """
  unknown = set(degrees) - set(MESH_AXES)
  if unknown:
    raise MeshError(f"MESH names unknown axes {sorted(unknown)}; the axes are {MESH_AXES}")
  sizes = {axis: int(degrees.get(axis, 1)) for axis in MESH_AXES}
  fill = [a for a, s in sizes.items() if s == -1]
  if len(fill) > 1:
    raise MeshError(f"MESH {dict(degrees)}: at most one axis may be -1, got {fill}")
  bad = [a for a, s in sizes.items() if s == 0 or s < -1]
  if bad:
    raise MeshError(f"MESH {dict(degrees)}: degrees must be positive or -1 ({bad})")
  known = math.prod(s for s in sizes.values() if s != -1)
  if fill:
    if num_devices % known:
      raise MeshError(
          f"MESH {dict(degrees)}: the fixed degrees multiply to {known}, which does not "
          f"divide the {num_devices} devices")
    sizes[fill[0]] = num_devices // known
  elif known != num_devices:
    raise MeshError(
        f"MESH {dict(degrees)}: degrees multiply to {known} but there are {num_devices} "
        f"devices (use -1 on one axis to fill)")
  return tuple(sizes[a] for a in MESH_AXES)


def make_mesh(degrees: Mapping[str, int], devices: Sequence[jax.Device] | None = None) -> Mesh:
  """A mesh over MESH_AXES with Auto axis types (GSPMD-style logical rules)."""
  devices = list(jax.devices() if devices is None else devices)
  shape = mesh_shape(degrees, len(devices))
  auto = (jax.sharding.AxisType.Auto,) * len(MESH_AXES)
  return jax.make_mesh(shape, MESH_AXES, axis_types=auto, devices=devices)


def logical_jit(fn: Callable, mesh: Mesh, rules=DEFAULT_RULES, **jit_kwargs):
  """`jax.jit(fn, **jit_kwargs)` with `rules` and `mesh` in scope while `fn` is traced.

  Flax's `nn.with_logical_constraint` (the model's `constrain`) returns its input
  unchanged unless logical-axis rules are set (`nn.logical_axis_rules`) and a mesh is in
  context (`jax.sharding.get_abstract_mesh()` non-empty); without them XLA chooses the
  activations' layouts itself and may gather them over `fsdp`. `jax.set_mesh` may not be
  entered inside a jit trace, so the abstract mesh is set instead, around the traced
  body: every trace (a call, `.lower`, `.trace`) sees the rules, wherever it starts.

  Args:
    fn: the step to jit.
    mesh: the mesh its arguments' shardings live on.
    rules: logical axis -> mesh axes.
    **jit_kwargs: passed to `jax.jit` (in_shardings, out_shardings, donate_argnums, ...).
  """
  @functools.wraps(fn)
  def traced(*args, **kwargs):
    with nn.logical_axis_rules(rules), jax.sharding.use_abstract_mesh(mesh.abstract_mesh):
      return fn(*args, **kwargs)
  return jax.jit(traced, **jit_kwargs)


def logical_specs(boxed_tree: Any) -> Any:
  """PartitionSpecs of logical axis names for a tree of nn.LogicallyPartitioned leaves."""
  return nn.get_partition_spec(boxed_tree)


def mesh_shardings(boxed_tree: Any, mesh: Mesh, rules=DEFAULT_RULES) -> Any:
  """NamedShardings on `mesh` for a tree of (abstract) boxed values; unboxed leaves replicate."""
  return nn.logical_to_mesh_sharding(logical_specs(boxed_tree), mesh, rules)


def sharded_abstract(boxed_tree: Any, mesh: Mesh, rules=DEFAULT_RULES) -> tuple[Any, Any]:
  """(unboxed ShapeDtypeStructs carrying their shardings, the shardings) of a boxed tree.

  Raises:
    MeshError: a dimension does not divide by its mesh axes (see check_divisible).
  """
  check_divisible(boxed_tree, mesh, rules)
  shardings = mesh_shardings(boxed_tree, mesh, rules)
  abstract = jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
                          nn.meta.unbox(boxed_tree), shardings)
  return abstract, shardings


def check_divisible(boxed_tree: Any, mesh: Mesh, rules=DEFAULT_RULES) -> None:
  """Fails at start-up when a sharded dimension does not divide by its mesh axes.

  Raises:
    MeshError: naming the array, the dimension, its logical axis and the mesh axes.
  """
  is_box = lambda x: isinstance(x, nn.LogicallyPartitioned)
  flat, _ = jax.tree_util.tree_flatten_with_path(boxed_tree, is_leaf=is_box)
  for path, leaf in flat:
    if not is_box(leaf):
      continue
    mesh_axes = nn.logical_to_mesh_axes(leaf.names, rules)
    for dim, (size, logical, axes) in enumerate(zip(leaf.value.shape, leaf.names, mesh_axes)):
      if axes is None:
        continue
      axes = (axes,) if isinstance(axes, str) else tuple(axes)
      degree = math.prod(mesh.shape[a] for a in axes)
      if size % degree:
        raise MeshError(
            f"{jax.tree_util.keystr(path)}: dimension {dim} (logical {logical!r}, size {size}) "
            f"does not divide by mesh axes {axes} of total size {degree} (mesh {dict(mesh.shape)})")


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Input batches: rows split over data and fsdp."""
  return NamedSharding(mesh, P(BATCH_AXES))


def check_batch(batch_size: int, mesh: Mesh, microbatches: int = 1) -> None:
  """Fails at start-up when the global (micro)batch does not split over the batch axes."""
  degree = math.prod(mesh.shape[a] for a in BATCH_AXES)
  if batch_size % microbatches:
    raise MeshError(f"BATCH_SIZE={batch_size} does not divide into {microbatches} microbatches")
  if (batch_size // microbatches) % degree:
    raise MeshError(
        f"microbatch of {batch_size // microbatches} rows does not divide by the batch mesh "
        f"axes data*fsdp={degree} (mesh {dict(mesh.shape)})")

