"""Progress of a long evaluation step (judge requests, embedding batches).

On a terminal: a tqdm bar. Otherwise (a log file, a CI job): a line on stderr at every
tenth of the work and at its end, e.g. `judge: 120/256 samples`, so a log shows the run
moving without a line per item.
"""
from __future__ import annotations

import math
import sys
import threading
from typing import Optional

import tqdm

# Lines a step prints without a terminal: one per tenth of the work.
_LINES = 10


class Progress:
  """Counts the finished items of one step; `update` may be called from several threads.

  Args:
    label: what is counted, e.g. "judge" or "embedding".
    total: the items of the step.
    unit: their name, e.g. "samples".
    progress_bar: a tqdm bar (default: when stderr is a terminal); otherwise lines.
  """

  def __init__(self, label: str, total: int, unit: str, progress_bar: Optional[bool] = None):
    self.label, self.total, self.unit, self.done = label, total, unit, 0
    self._lock = threading.Lock()
    self._every = max(1, math.ceil(total / _LINES))
    interactive = sys.stderr.isatty() if progress_bar is None else progress_bar
    self._bar = (tqdm.tqdm(total=total, desc=label, unit=unit, dynamic_ncols=True)
                 if interactive else None)

  def update(self, n: int = 1) -> None:
    """Counts `n` more finished items."""
    with self._lock:
      before, self.done = self.done, self.done + n
      if self._bar is not None:
        self._bar.update(n)
      elif before // self._every != self.done // self._every or self.done == self.total:
        print(f"{self.label}: {self.done}/{self.total} {self.unit}", file=sys.stderr, flush=True)

  def close(self) -> None:
    if self._bar is not None:
      self._bar.close()

  def __enter__(self) -> "Progress":
    return self

  def __exit__(self, *exc) -> None:
    self.close()
