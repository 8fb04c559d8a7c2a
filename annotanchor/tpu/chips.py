"""TPU chip facts and slice names (`v5e-64`) -> the topology JAX can compile for.

Figures per chip from Google Cloud's system-architecture pages (retrieved 2026):
  v4   https://cloud.google.com/tpu/docs/v4   32 GiB HBM2, 1,200 GB/s, 275 TFLOP/s bf16
  v5e  https://cloud.google.com/tpu/docs/v5e  16 GiB HBM2, 819 GB/s, 197 TFLOP/s bf16
  v5p  https://cloud.google.com/tpu/docs/v5p  95 GiB HBM2e, 2,765 GB/s, 459 TFLOP/s bf16
  v6e  https://cloud.google.com/tpu/docs/v6e  32 GiB HBM, 1,640 GB/s, 918 TFLOP/s bf16
v4 and v5p chips hold two TensorCores run as one device (megacore) and their slice names
count TensorCores (v4-32 = 16 chips); v5e and v6e slice names count chips (v5e-64 = 64).
Multi-host slices put 4 chips on each host (v5e and v6e single-host VMs hold up to 8).
"""
from __future__ import annotations

import dataclasses
import math
import re

from annotanchor.errors import UserError

GIB = 2**30


@dataclasses.dataclass(frozen=True)
class ChipSpec:
  """One TPU generation.

  Attributes:
    name: generation as in slice names ("v5e").
    device_kinds: `jax.Device.device_kind` strings of the chip, most specific first.
    hbm_bytes: high-bandwidth memory per chip.
    hbm_bandwidth: HBM bytes per second per chip.
    peak_bf16_flops: dense bf16 FLOP/s per chip.
    cores_per_chip: TensorCores counted by the slice name per chip.
    torus_dims: 3 for v4/v5p (3-D torus), 2 for v5e/v6e.
    chip_config: libtpu's chip configuration giving one device per chip.
    chips_per_host: chips attached to each host of a multi-host slice.
  """

  name: str
  device_kinds: tuple[str, ...]
  hbm_bytes: int
  hbm_bandwidth: float
  peak_bf16_flops: float
  cores_per_chip: int
  torus_dims: int
  chip_config: str = "default"
  chips_per_host: int = 4


CHIPS = {
    "v4": ChipSpec("v4", ("TPU v4",), 32 * GIB, 1200e9, 275e12, cores_per_chip=2,
                   torus_dims=3, chip_config="megacore"),
    "v5e": ChipSpec("v5e", ("TPU v5 lite", "TPU v5e"), 16 * GIB, 819e9, 197e12,
                    cores_per_chip=1, torus_dims=2),
    "v5p": ChipSpec("v5p", ("TPU v5p", "TPU v5"), 95 * GIB, 2765e9, 459e12, cores_per_chip=2,
                    torus_dims=3),
    "v6e": ChipSpec("v6e", ("TPU v6 lite", "TPU v6e"), 32 * GIB, 1640e9, 918e12,
                    cores_per_chip=1, torus_dims=2),
}


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
