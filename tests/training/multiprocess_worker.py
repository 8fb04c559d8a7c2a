"""One of two CPU processes (4 fake devices each, gloo) training the tiny model together.

Run by test_multiprocess.py with ANNOTANCHOR_COORDINATOR / _NUM_PROCESSES / _PROCESS_ID set.
"""
import sys

from annotanchor.training import multihost

multihost.maybe_initialize_distributed()

import jax  # noqa: E402  (after distributed initialisation)

from tests.training import tiny_setup  # noqa: E402

if __name__ == "__main__":
  assert jax.process_count() == 2 and jax.device_count() == 8, jax.devices()
  tiny_setup.run(sys.argv[1], {"fsdp": 8}, process_index=jax.process_index(),
                 process_count=jax.process_count())
