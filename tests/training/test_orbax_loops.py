"""A failed Orbax call lets the work it started end on its loop before closing it
(annotanchor/training/orbax_loops.py)."""
import asyncio
import threading

import pytest
from orbax.checkpoint._src import asyncio_utils

from annotanchor.training import checkpoints, orbax_loops


def test_checkpoints_installs_it_into_the_pinned_orbax():
  assert checkpoints.orbax_loops is orbax_loops  # Imported, hence installed.
  assert asyncio_utils._run_sync_via_new_loop is orbax_loops.run_until_settled
  assert asyncio_utils.run_sync(asyncio.sleep(0, result=7)) == 7


async def _gather_with_a_failure(finished: list[str], thread_errors: list[BaseException]):
  """A failing read and one that ends later on another thread, as TensorStore's do."""
  loop = asyncio.get_running_loop()
  done = loop.create_future()

  def complete_later():
    threading.Event().wait(0.2)  # Well after the failure ended the gather.
    try:
      loop.call_soon_threadsafe(done.set_result, None)
    except RuntimeError as e:  # What Orbax's own loop handling led to: "Event loop is closed".
      thread_errors.append(e)

  threading.Thread(target=complete_later, daemon=True).start()

  async def slow_read():
    await done
    finished.append("slow read")

  async def failing_read():
    raise ValueError("NOT_FOUND: a missing array file")

  await asyncio.gather(slow_read(), failing_read())


def test_a_failed_call_waits_for_its_other_reads_then_raises_the_first_error():
  finished, thread_errors = [], []
  with pytest.raises(ValueError, match="NOT_FOUND: a missing array file"):
    orbax_loops.run_until_settled(_gather_with_a_failure(finished, thread_errors))
  assert finished == ["slow read"]
  assert thread_errors == []


def test_install_refuses_an_orbax_without_the_function(monkeypatch):
  monkeypatch.delattr(asyncio_utils, "_run_sync_via_new_loop")
  with pytest.raises(RuntimeError, match="not the pinned version"):
    orbax_loops.install()
