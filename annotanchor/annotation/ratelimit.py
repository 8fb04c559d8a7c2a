"""A thread-safe token bucket: at most `rate` requests a second, in bursts of `burst`."""
from __future__ import annotations

import threading
import time
from typing import Callable, Optional

from annotanchor.errors import SettingError


class TokenBucket:
  """Blocks callers of `acquire` so that requests keep to a rate.

  The bucket holds up to `burst` tokens and refills at `rate` tokens a second; each request
  takes one. With rate 2 and burst 1, requests go out at t = 0, 0.5, 1.0, ...

  Args:
    rate: tokens per second; None or 0 turns limiting off.
    burst: bucket size (requests that may go out at once after a quiet spell).
    clock, sleep: injectable for tests.
  """

  def __init__(self, rate: Optional[float], burst: int = 1,
               clock: Callable[[], float] = time.monotonic,
               sleep: Callable[[float], None] = time.sleep):
    if rate is not None and rate < 0 or burst < 1:
      raise SettingError(f"rate limit: need rate >= 0 and burst >= 1, got {rate} and {burst}")
    self.rate, self.burst = rate, burst
    self._clock, self._sleep = clock, sleep
    self._tokens, self._last = float(burst), clock()
    self._lock = threading.Lock()

  def acquire(self) -> None:
    """Takes a token, waiting for one if the bucket is empty."""
    if not self.rate:
      return
    with self._lock:  # Waiters queue here, so tokens go out in arrival order.
      now = self._clock()
      self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
      self._last = now
      if self._tokens < 1:
        wait = (1 - self._tokens) / self.rate
        self._sleep(wait)
        self._last = self._clock()
        self._tokens = 0.0
      else:
        self._tokens -= 1
