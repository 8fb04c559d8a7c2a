"""Orbax's synchronous calls wait for every read they started before closing their loop.

Orbax runs each synchronous save, restore or metadata read as a coroutine on a fresh event
loop (`orbax.checkpoint._src.asyncio_utils._run_sync_via_new_loop`) that it closes as soon
as the coroutine ends. A restore reads its arrays with `asyncio.gather`, which ends at the
first failed read while the other reads are still in flight. With a damaged checkpoint
(a missing or truncated array file) Orbax therefore closes the loop under those reads;
each then finishes on a TensorStore thread, calls `loop.call_soon_threadsafe` on the closed
loop and prints `RuntimeError: Event loop is closed` with its traceback, and the abandoned
coroutines print "Exception ignored in ..." when they are collected. How many depends on
thread timing, which made the resume-past-a-damaged-checkpoint test fail at random.

`install()` replaces that function with one that, when the coroutine failed, first lets
every task still on the loop finish (their errors are collected, not raised: the first
error is the one that propagates, as before) and only then closes the loop. A successful
call is unchanged. Orbax is pinned (constraints.txt); tests/training/test_orbax_loops.py
fails if the pinned version no longer has the function this replaces.
"""
from __future__ import annotations

import asyncio
from typing import Any, Coroutine, TypeVar

from orbax.checkpoint._src import asyncio_utils

_T = TypeVar("_T")
_REPLACED = "_run_sync_via_new_loop"


def run_until_settled(coro: Coroutine[Any, Any, _T]) -> _T:
  """Runs `coro` on a fresh event loop, as Orbax does, but closes the loop only once no
  task on it is pending, also when `coro` raised.

  Like Orbax's own function it avoids `asyncio.run()`, whose teardown races with other
  threads' loops over asyncio's global task set.
  """
  loop = asyncio.new_event_loop()
  try:
    asyncio.set_event_loop(loop)
    try:
      return loop.run_until_complete(coro)
    except BaseException:
      pending = asyncio.all_tasks(loop)
      if pending:  # The reads abandoned by a failed gather: let them end on this loop.
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
      raise
  finally:
    asyncio.set_event_loop(None)
    loop.close()


def install() -> None:
  """Makes Orbax's synchronous calls use `run_until_settled` (idempotent).

  Raises:
    RuntimeError: the installed Orbax has no function of that name (a version other than
      the pinned one), so the fix would silently not apply.
  """
  if not hasattr(asyncio_utils, _REPLACED):
    raise RuntimeError(f"orbax.checkpoint._src.asyncio_utils has no {_REPLACED}: the "
                       "installed Orbax is not the pinned version (constraints.txt)")
  setattr(asyncio_utils, _REPLACED, run_until_settled)
