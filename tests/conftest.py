"""Test-wide set-up: 8 fake CPU devices and fast XLA compiles, set before JAX starts its
backend (children started with os.environ inherit both)."""
import os

from tests.xla_flags import FAST_COMPILE

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
_flags = os.environ.get("XLA_FLAGS", "").split()
_flags += [f for f in FAST_COMPILE if f.split("=")[0] not in {g.split("=")[0] for g in _flags}]
if not any(f.startswith("--xla_force_host_platform_device_count") for f in _flags):
  _flags.append("--xla_force_host_platform_device_count=8")
os.environ["XLA_FLAGS"] = " ".join(_flags)
