"""XLA_FLAGS for the test suite's processes, in-process and children alike.

The suite is bound by XLA:CPU compiles of small programs, not by running them. LLVM at
optimization level 0 without its expensive passes compiles them faster
(tests/training/test_step.py: 58 s -> 36 s on the 2-core CPU) and computes the same
operations, so every tolerance holds as it is. The demo and benchmarks run with XLA's
defaults (Makefile).
"""
FAST_COMPILE = ("--xla_backend_optimization_level=0", "--xla_llvm_disable_expensive_passes=true")


def xla_flags(devices: int | None = None) -> str:
  """XLA_FLAGS for a test process: fast compiles and, if given, `devices` fake CPU devices."""
  count = () if devices is None else (f"--xla_force_host_platform_device_count={devices}",)
  return " ".join(FAST_COMPILE + count)
