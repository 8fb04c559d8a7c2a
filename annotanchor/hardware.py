"""Accelerator facts from the vendors' spec sheets: memory, bandwidth and peak FLOP rates.

A leaf module: the trainer reads peak rates for MFU, `annotanchor.tpu` reads the TPU
chips' memory and topology facts for ahead-of-time compiles.

TPU figures per chip from Google Cloud's system-architecture pages (retrieved 2026):
  v4   https://cloud.google.com/tpu/docs/v4   32 GiB HBM2, 1,200 GB/s, 275 TFLOP/s bf16
  v5e  https://cloud.google.com/tpu/docs/v5e  16 GiB HBM2, 819 GB/s, 197 TFLOP/s bf16
  v5p  https://cloud.google.com/tpu/docs/v5p  95 GiB HBM2e, 2,765 GB/s, 459 TFLOP/s bf16
  v6e  https://cloud.google.com/tpu/docs/v6e  32 GiB HBM, 1,640 GB/s, 918 TFLOP/s bf16
v4 and v5p chips hold two TensorCores run as one device (megacore) and their slice names
count TensorCores (v4-32 = 16 chips); v5e and v6e slice names count chips (v5e-64 = 64).
Multi-host slices put 4 chips on each host (v5e and v6e single-host VMs hold up to 8).
GPU figures: dense bf16 Tensor Core peak per GPU (the data sheets quote "with sparsity",
twice these), matched by `jax.Device.device_kind` prefix, the longer names first:
  H100 SXM (80GB HBM3)  989 TFLOP/s, H100 PCIe 756, H100 NVL 835
      https://resources.nvidia.com/en-us-tensor-core/nvidia-tensor-core-gpu-datasheet
  H200 SXM  989 TFLOP/s, H200 NVL 835   https://www.nvidia.com/en-us/data-center/h200/
  A100 (SXM4 and PCIe, 40/80GB) 312     https://www.nvidia.com/en-us/data-center/a100/
"""
from __future__ import annotations

import dataclasses

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


# Dense bf16 peak per GPU, by `jax.Device.device_kind` prefix (sources above); a kind that
# is a prefix of another comes after it.
GPU_PEAK_BF16_FLOPS = {
    "NVIDIA H100 80GB HBM3": 989e12,
    "NVIDIA H100 PCIe": 756e12,
    "NVIDIA H100 NVL": 835e12,
    "NVIDIA H200 NVL": 835e12,
    "NVIDIA H200": 989e12,
    "NVIDIA A100": 312e12,
}
