"""Multi-process set-up and global arrays from process-local batches."""
from __future__ import annotations

import os
from typing import Mapping

import jax
import numpy as np
from jax.experimental import multihost_utils

from annotanchor.training import partitioning

# Set by launchers (tpu_scripts, tests) to ask for jax.distributed.initialize.
_COORDINATOR_ENV = "ANNOTANCHOR_COORDINATOR"


def maybe_initialize_distributed(coordinator_address: str | None = None,
                                 num_processes: int | None = None,
                                 process_id: int | None = None,
                                 initialize: bool | None = None) -> None:
  """Calls jax.distributed.initialize when asked by arguments, the environment, or on TPU pods.

  On TPU VMs with several workers JAX discovers everything itself (initialize=True). For
  CPU processes (tests) give the coordinator, count and id, or set ANNOTANCHOR_COORDINATOR,
  ANNOTANCHOR_NUM_PROCESSES and ANNOTANCHOR_PROCESS_ID; gloo collectives are selected.
  """
  coordinator_address = coordinator_address or os.environ.get(_COORDINATOR_ENV)
  if coordinator_address:
    num_processes = num_processes or int(os.environ["ANNOTANCHOR_NUM_PROCESSES"])
    process_id = process_id if process_id is not None else int(os.environ["ANNOTANCHOR_PROCESS_ID"])
    if os.environ.get("JAX_PLATFORMS", "") == "cpu":
      jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=coordinator_address,
                               num_processes=num_processes, process_id=process_id)
  elif initialize:
    jax.distributed.initialize()


def global_batch(local_batch: Mapping[str, np.ndarray], mesh) -> dict[str, jax.Array]:
  """Global arrays, batch-sharded over the mesh, from each process's own rows."""
  sharding = partitioning.batch_sharding(mesh)
  return {name: jax.make_array_from_process_local_data(sharding, np.asarray(value))
          for name, value in local_batch.items()}


def any_process(flag: bool) -> bool:
  """True when `flag` is set on any process (a collective: call it on all of them)."""
  if jax.process_count() == 1:
    return flag
  return bool(np.any(multihost_utils.process_allgather(np.asarray(flag))))
