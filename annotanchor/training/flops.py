"""Peak FLOP rates for MFU: a table for accelerators, a measurement for CPUs."""
from __future__ import annotations

import time

import jax
import jax.numpy as jnp

from annotanchor.hardware import CHIPS, GPU_PEAK_BF16_FLOPS

# Dense bf16 peak per device, from the vendors' spec sheets (annotanchor/hardware.py).
# Matched by prefix in this order, so a more specific kind comes before its prefixes.
PEAK_FLOPS_BY_KIND = {
    **{kind: chip.peak_bf16_flops for chip in CHIPS.values() for kind in chip.device_kinds},
    **GPU_PEAK_BF16_FLOPS,
}


def measure_matmul_flops(size: int = 1024, dtype=jnp.float32, repeats: int = 10) -> float:
  """FLOP/s of a jitted [size, size] @ [size, size] matmul on the default device."""
  a = jnp.ones((size, size), dtype)
  matmul = jax.jit(lambda x, y: x @ y)
  matmul(a, a).block_until_ready()  # compile
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    matmul(a, a).block_until_ready()
    best = min(best, time.perf_counter() - start)
  return 2.0 * size**3 / best


def peak_flops_per_device(override: float | None = None) -> tuple[float, str]:
  """(peak FLOP/s of one device, where the figure came from)."""
  if override:
    return override, "configured"
  kind = jax.devices()[0].device_kind
  for name, flops in PEAK_FLOPS_BY_KIND.items():
    if kind.startswith(name):
      return flops, f"spec sheet ({kind})"
  return measure_matmul_flops(), f"measured float32 matmul rate ({kind})"
