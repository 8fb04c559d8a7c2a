"""Opt-in pytest plugin: the CPU time of each test, its own process's and that of the
processes it started (waited for), setup and teardown of its fixtures included.

The suite is CPU-bound (docs/performance.md), so CPU time, not wall time, says which tests
cost the budget, and it holds on a shared machine where wall times do not:

  ANNOTANCHOR_TEST_CPU_DIR=/tmp/cpu make test PYTEST_ARGS="-n 2 --dist loadscope \
      --no-loadscope-reorder -p tests.cpu_time_plugin"

writes one JSONL per worker under that directory: {"id", "wall", "self", "child"} seconds.
A module-scoped fixture counts in the first test that uses it.
"""
import json
import os
import resource
import time

import pytest


def _cpu_seconds() -> tuple[float, float]:
  own = resource.getrusage(resource.RUSAGE_SELF)
  children = resource.getrusage(resource.RUSAGE_CHILDREN)
  return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
  del nextitem
  start_wall, (start_own, start_children) = time.time(), _cpu_seconds()
  yield
  own, children = _cpu_seconds()
  out_dir = os.environ.get("ANNOTANCHOR_TEST_CPU_DIR", "test-cpu")
  os.makedirs(out_dir, exist_ok=True)
  with open(os.path.join(out_dir, f"{os.getpid()}.jsonl"), "a", encoding="utf-8") as f:
    f.write(json.dumps({"id": item.nodeid, "wall": time.time() - start_wall,
                        "self": own - start_own, "child": children - start_children}) + "\n")
