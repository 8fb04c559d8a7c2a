"""Which JAX backend a command starts: CPU on hosts that have libtpu but no TPU chip.

With the `tpu` extra installed (libtpu, for `annotanchor compile`), JAX tries the TPU
backend at start-up on every host and, on a machine without TPU chips, logs a screen of
errors before falling back to the CPU. `annotanchor` commands therefore call
`default_to_cpu_without_tpu()` before JAX is imported: when JAX_PLATFORMS is unset, libtpu
is installed and no TPU chip (Google PCI vendor 0x1ae0) is attached, it sets
JAX_PLATFORMS=cpu. On a TPU VM the chips are found and nothing is set; an explicit
JAX_PLATFORMS always wins. `annotanchor compile` still reaches libtpu's compiler through
jax.experimental.topologies, which does not need the TPU backend.
"""
from __future__ import annotations

import glob
import importlib.util
import logging
import os

_GOOGLE_PCI_VENDOR = "0x1ae0"


def tpu_chips_attached(pci_root: str = "/sys/bus/pci/devices") -> bool:
  """True when a Google (TPU) PCI device is present, as on every TPU VM."""
  for vendor in glob.glob(os.path.join(pci_root, "*", "vendor")):
    try:
      with open(vendor) as f:
        if f.read().strip() == _GOOGLE_PCI_VENDOR:
          return True
    except OSError:
      continue
  return False


def default_to_cpu_without_tpu(environ=os.environ, pci_root: str = "/sys/bus/pci/devices") -> bool:
  """Sets JAX_PLATFORMS=cpu when libtpu is installed but no TPU is attached.

  Must run before JAX is imported. Returns whether it set the variable.
  """
  if "JAX_PLATFORMS" in environ or importlib.util.find_spec("libtpu") is None:
    return False
  if tpu_chips_attached(pci_root):
    return False
  environ["JAX_PLATFORMS"] = "cpu"
  logging.getLogger(__name__).debug("libtpu installed without TPU chips: JAX_PLATFORMS=cpu")
  return True
