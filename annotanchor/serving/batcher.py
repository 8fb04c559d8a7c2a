"""Batching concurrent requests: one sampler call for the requests waiting together.

The worker takes the first waiting request, then more: with `window_s` 0 (the default) the
requests that queued while the previous call ran, so a lone request waits for nothing and
batches grow only when the model is the bottleneck; with `window_s` > 0 it also waits that
long for more, up to `max_batch` prompts. Requests with the same DecodeSettings run together
(the jitted sampler compiles per setting), each group in one call. Padding rows (repeats of
the last prompt, results dropped) fill every call of more than one prompt up to max_batch
(`engine.padded_size`), so only two batch shapes are compiled. Example, max_batch 8:
requests A (1 prompt, T=1.0), B (2 prompts, T=1.0), C (1 prompt, T=0.0) waiting together
-> calls [A B B +5 padding] and [C].
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import queue
import threading
import time
from typing import Callable, Sequence

from annotanchor.decoding.generate import Continuation, DecodeSettings
from annotanchor.errors import SettingError
from annotanchor.serving.engine import padded_size

RunFn = Callable[[DecodeSettings, Sequence[str], Sequence[str]], list[list[Continuation]]]


@dataclasses.dataclass
class _Job:
  settings: DecodeSettings
  prompt_ids: Sequence[str]
  texts: Sequence[str]
  future: concurrent.futures.Future


class Batcher:
  """Runs jobs (a request's prompts) on one worker thread, batched.

  Args:
    run: (settings, prompt ids, texts) -> continuations per text; e.g. `Engine.run`.
    max_batch: the most prompts in one call.
    window_s: how long to wait for more requests after the first (0: take those waiting).
  """

  def __init__(self, run: RunFn, max_batch: int = 8, window_s: float = 0.0):
    if max_batch < 1 or window_s < 0:
      raise SettingError(f"need max_batch >= 1 and window_s >= 0, got {max_batch}, {window_s}")
    self._run, self.max_batch, self.window_s = run, max_batch, window_s
    self._queue: "queue.Queue[_Job | None]" = queue.Queue()
    self.calls: list[int] = []  # Prompts (without padding) in each call, for logs and tests.
    self._thread = threading.Thread(target=self._loop, name="batcher", daemon=True)
    self._thread.start()

  def submit(self, settings: DecodeSettings, prompt_ids: Sequence[str],
             texts: Sequence[str]) -> concurrent.futures.Future:
    """Queues a job; the future gives one list of continuations per text."""
    if len(texts) > self.max_batch:
      raise ValueError(f"{len(texts)} prompts in one job; at most max_batch={self.max_batch}")
    future = concurrent.futures.Future()
    self._queue.put(_Job(settings, list(prompt_ids), list(texts), future))
    return future

  def close(self) -> None:
    """Stops the worker after the jobs already queued."""
    self._queue.put(None)
    self._thread.join()

  def _collect(self) -> tuple[list[_Job], bool]:
    first = self._queue.get()
    if first is None:
      return [], True
    jobs, waiting = [first], len(first.texts)
    deadline = time.monotonic() + self.window_s
    while waiting < self.max_batch:
      try:
        job = self._queue.get(timeout=max(deadline - time.monotonic(), 0))
      except queue.Empty:
        break
      if job is None:
        return jobs, True
      jobs.append(job)
      waiting += len(job.texts)
    return jobs, False

  def _loop(self) -> None:
    closing = False
    while not closing:
      jobs, closing = self._collect()
      groups: dict[DecodeSettings, list[_Job]] = {}
      for job in jobs:
        groups.setdefault(job.settings, []).append(job)
      for settings, group in groups.items():
        while group:  # Calls of at most max_batch prompts, jobs kept whole.
          call, size = [], 0
          while group and size + len(group[0].texts) <= self.max_batch:
            size += len(group[0].texts)
            call.append(group.pop(0))
          self._call(settings, call)

  def _call(self, settings: DecodeSettings, jobs: list[_Job]) -> None:
    ids = [pid for job in jobs for pid in job.prompt_ids]
    texts = [text for job in jobs for text in job.texts]
    pad = padded_size(len(texts), self.max_batch) - len(texts)
    start = time.perf_counter()
    try:
      results = self._run(settings, ids + [ids[-1]] * pad, texts + [texts[-1]] * pad)
    except Exception as e:  # Every request of the call gets the error.
      logging.exception("sampler call failed")
      for job in jobs:
        job.future.set_exception(e)
      return
    self.calls.append(len(texts))
    logging.debug("batch of %d prompts (%d requests, +%d padding) in %.2fs", len(texts),
                 len(jobs), pad, time.perf_counter() - start)
    for job in jobs:
      job.future.set_result(results[:len(job.texts)])
      results = results[len(job.texts):]
