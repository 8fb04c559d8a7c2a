"""The training loop as 2 CPU processes x 4 devices (gloo) agrees with one process; the
checkpoint both wrote restores in a single process on a different mesh."""
import os
import socket
import subprocess
import sys

import jax
import numpy as np

from annotanchor.model.model import DecoderOnlyModel
from annotanchor.training import checkpoints, optim, partitioning, train_state
from tests.training import tiny_setup
from tests.xla_flags import xla_flags

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def test_two_processes_match_one_and_restore_elsewhere(tmp_path):
  multi_dir = str(tmp_path / "multi")
  port = _free_port()
  procs = []
  for pid in range(2):
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": REPO,
           "XLA_FLAGS": xla_flags(devices=4),
           "ANNOTANCHOR_COORDINATOR": f"127.0.0.1:{port}", "ANNOTANCHOR_NUM_PROCESSES": "2",
           "ANNOTANCHOR_PROCESS_ID": str(pid)}
    procs.append(subprocess.Popen(
        [sys.executable, os.path.join(REPO, "tests/training/multiprocess_worker.py"), multi_dir],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
  outputs = [p.communicate(timeout=300)[0] for p in procs]
  for p, out in zip(procs, outputs):
    assert p.returncode == 0, out[-3000:]

  single = tiny_setup.run(str(tmp_path / "single"), {"fsdp": 8})
  np.testing.assert_allclose(tiny_setup.logged_losses(multi_dir),
                             tiny_setup.logged_losses(str(tmp_path / "single")), rtol=1e-5)

  # Both processes wrote their shards of every item (Orbax's per-process OCDBT stores).
  for item in ("params", "opt_state"):
    for pid in range(2):
      store = os.path.join(multi_dir, "checkpoints", "3", item, f"ocdbt.process_{pid}")
      sizes = [os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(store) for f in fs]
      assert sum(sizes) > 0, f"process {pid} wrote no {item} data under {store}"

  # The checkpoint both processes wrote, restored by this one process on another mesh.
  tx, _ = optim.make_optimizer(optim.OptimizerConfig(), 10)
  mesh = partitioning.make_mesh({"data": 2, "model": 4})
  abstract, _ = train_state.abstract_state(DecoderOnlyModel(tiny_setup.TINY), tx, mesh)
  restored = checkpoints.Checkpointer(multi_dir, save_every=10).restore(3, abstract)
  # Adam divides by sqrt(v), so reduction-order differences land at the scale of one
  # update (lr=1e-2), not of the value: allow 1e-4 of an update, as across meshes.
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
               jax.device_get(restored.params), jax.device_get(single.state.params))
