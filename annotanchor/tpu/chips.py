"""TPU slice names (`v5e-64`) -> the topology JAX can compile for.

The chips' own facts (memory, bandwidth, peak FLOP rate, torus) are in
`annotanchor/hardware.py`.
"""
from __future__ import annotations

import dataclasses
import math
import re

from annotanchor.errors import UserError
from annotanchor.hardware import CHIPS, ChipSpec


class TopologyError(UserError, ValueError):
  """A TPU slice name that is not understood."""


@dataclasses.dataclass(frozen=True)
class Topology:
  """A TPU slice: its chip, its name and its torus shape in chips."""

  chip: ChipSpec
  name: str
  shape: tuple[int, ...]

  @property
  def num_chips(self) -> int:
    return math.prod(self.shape)

  @property
  def libtpu_name(self) -> str:
    """The topology string of jax.experimental.topologies ("v5e:8x8")."""
    return f"{self.chip.name}:{'x'.join(map(str, self.shape))}"


def torus_shape(chips: int, dims: int) -> tuple[int, ...]:
  """The shape Cloud TPU gives a slice of `chips` chips: double the smallest (last) side.

  >>> torus_shape(64, 2), torus_shape(16, 3), torus_shape(64, 3)
  ((8, 8), (2, 2, 4), (4, 4, 4))
  """
  shape = [2, 2] + [1] * (dims - 2)
  if chips < 4 or chips & (chips - 1):
    raise TopologyError(f"{chips} chips: slices hold a power of two of at least 4 chips")
  while math.prod(shape) < chips:
    smallest = min(shape)
    last = max(i for i, s in enumerate(shape) if s == smallest)
    shape[last] *= 2
  return tuple(shape)


def parse_topology(name: str) -> Topology:
  """`v5e-64` (slice name) or `v5e:8x8` (explicit torus) -> Topology.

  Raises:
    TopologyError: naming the accepted forms and generations.
  """
  forms = f"expected e.g. 'v5e-64' or 'v5e:8x8' with a generation in {sorted(CHIPS)}"
  match = re.fullmatch(r"(v\d+[a-z]?)(?:-(\d+)|:(\d+(?:x\d+)+))", name.strip())
  if not match or match.group(1) not in CHIPS:
    raise TopologyError(f"TOPOLOGY={name!r}: {forms}")
  chip = CHIPS[match.group(1)]
  if match.group(2):
    cores = int(match.group(2))
    if cores % chip.cores_per_chip:
      raise TopologyError(f"TOPOLOGY={name!r}: {chip.name} slices count {chip.cores_per_chip} "
                          f"TensorCores per chip")
    shape = torus_shape(cores // chip.cores_per_chip, chip.torus_dims)
  else:
    shape = tuple(int(s) for s in match.group(3).split("x"))
    if len(shape) != chip.torus_dims:
      raise TopologyError(f"TOPOLOGY={name!r}: {chip.name} tori have {chip.torus_dims} sides")
  return Topology(chip=chip, name=name.strip(), shape=shape)
