"""Which JAX backend a command starts: TPU on TPU VMs, the GPU where one is, else the CPU.

With the `tpu` extra installed (libtpu, for `annotanchor compile`), JAX tries the TPU
backend at start-up on every host and, on a machine without TPU chips, logs a screen of
errors before falling back; on a GPU host it may pick neither cleanly. `annotanchor`
commands therefore call `choose_platform()` before JAX is imported. When JAX_PLATFORMS
is unset:

  TPU chip on the PCI bus (Google, vendor 0x1ae0)       nothing set (JAX finds the TPU)
  NVIDIA GPU (vendor 0x10de, display/3-D class) and
    the `gpu` extra's CUDA plugin installed             JAX_PLATFORMS=cuda,cpu
  NVIDIA GPU without the plugin                         a warning naming the extra, then:
  libtpu installed                                      JAX_PLATFORMS=cpu
  otherwise                                             nothing set (JAX's default: CPU)

An explicit JAX_PLATFORMS always wins. `annotanchor compile` still reaches libtpu's
compiler through jax.experimental.topologies, which does not need the TPU backend.
"""
from __future__ import annotations

import glob
import importlib.util
import logging
import os

_GOOGLE_PCI_VENDOR = "0x1ae0"
_NVIDIA_PCI_VENDOR = "0x10de"
_DISPLAY_CLASS = "0x03"  # PCI class 03: VGA / 3-D controllers (not NVSwitch bridges, 06).
# The PJRT plugins of jax[cuda12] / jax[cuda13].
CUDA_PLUGINS = ("jax_cuda12_plugin", "jax_cuda13_plugin")
GPU_INSTALL = "pip install -e '.[gpu]' (jax[cuda12]==0.10.2)"


def _read(path: str) -> str:
  try:
    with open(path) as f:
      return f.read().strip()
  except OSError:
    return ""


def _devices(pci_root: str, vendor: str, device_class: str = "") -> bool:
  for device in glob.glob(os.path.join(pci_root, "*")):
    if (_read(os.path.join(device, "vendor")) == vendor
        and _read(os.path.join(device, "class")).startswith(device_class)):
      return True
  return False


def tpu_chips_attached(pci_root: str = "/sys/bus/pci/devices") -> bool:
  """True when a Google (TPU) PCI device is present, as on every TPU VM."""
  return _devices(pci_root, _GOOGLE_PCI_VENDOR)


def nvidia_gpus_attached(pci_root: str = "/sys/bus/pci/devices") -> bool:
  """True when an NVIDIA display or 3-D controller (a GPU) is on the PCI bus."""
  return _devices(pci_root, _NVIDIA_PCI_VENDOR, _DISPLAY_CLASS)


def cuda_plugin_installed() -> bool:
  return any(importlib.util.find_spec(name) is not None for name in CUDA_PLUGINS)


def choose_platform(environ=os.environ, pci_root: str = "/sys/bus/pci/devices") -> str | None:
  """Sets JAX_PLATFORMS as the module docstring says. Must run before JAX is imported.

  Returns:
    The value it set, or None when it set nothing.
  """
  if "JAX_PLATFORMS" in environ or tpu_chips_attached(pci_root):
    return None
  log = logging.getLogger(__name__)
  if nvidia_gpus_attached(pci_root):
    if cuda_plugin_installed():
      environ["JAX_PLATFORMS"] = "cuda,cpu"
      return environ["JAX_PLATFORMS"]
    log.warning("NVIDIA GPU found but JAX's CUDA plugin is not installed; running on the "
                "CPU. For the GPU: %s", GPU_INSTALL)
  if importlib.util.find_spec("libtpu") is None:
    return None
  environ["JAX_PLATFORMS"] = "cpu"
  log.debug("libtpu installed without TPU chips: JAX_PLATFORMS=cpu")
  return "cpu"
