"""One client for OpenAI-compatible endpoints: requests, timeouts, retries, a rate limit.

What vLLM, SGLang, llama.cpp's server and `annotanchor serve` expose (`/v1/chat/completions`,
`/v1/completions`). `annotate` asks one for annotations (`annotation/client.py` builds its
requests) and `evaluate`'s LLM judge for scores and labels (`evaluation/judge.py`); both go
through `OpenAIClient`. A leaf module: the two stages that use it cannot import each other.

Failures come back as one `RequestFailure`, whose message is one line and whose cause says
what went wrong: 5xx, 429, timeouts, dropped connections and answers that are not the API's
JSON may pass on a retry; other 4xx answers do not.
"""
from __future__ import annotations

import dataclasses
import http.client
import json
import logging
import os
import random
import socket
import threading
import time
import urllib.error
import urllib.request
from typing import Any, Callable, Mapping, Optional, TypeVar

from annotanchor.errors import SettingError

APIS = ("chat", "completions")
_PATHS = {"chat": "chat/completions", "completions": "completions"}
T = TypeVar("T")


class RequestFailure(Exception):
  """A request that did not give an answer.

  Attributes:
    cause: "server_error" (5xx), "rate_limited" (429), "timeout", "connection",
      "client_error" (other 4xx), "bad_response" (not the API's JSON shape), or the cause a
      caller's `parse` failure is counted under (`OpenAIClient.complete`).
    retryable: whether trying again may help.
    status: the HTTP status, if there was one.
    retry_after: seconds the server asked to wait (429/503 `Retry-After`), if any.
    url: the endpoint asked.
    detail: the server's own words (the API's error message, else the body's start).
    attempts: the requests made before giving up.
    gave_up: whether it may have passed on a retry but the attempts ran out.
  """

  def __init__(self, cause: str, message: str, retryable: bool, status: Optional[int] = None,
               retry_after: Optional[float] = None, url: str = "", detail: str = ""):
    super().__init__(message)
    self.cause, self.retryable, self.status, self.retry_after = cause, retryable, status, retry_after
    self.url, self.detail, self.attempts, self.gave_up = url, detail, 1, False


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
  """Exponential backoff with jitter.

  Attempt k (k = 1 after the first failure) waits `min(max_backoff_s, backoff_s * 2**(k-1))`
  times a random factor in [1 - jitter, 1], or the server's `Retry-After` when longer.

  Attributes:
    max_attempts: requests per call, the first included.
    backoff_s: the first wait.
    max_backoff_s: the longest wait.
    jitter: the random share taken off each wait (spreads out retries of many threads).
    retry_bad_responses: whether an answer that is not the API's JSON is asked again.
  """
  max_attempts: int = 5
  backoff_s: float = 1.0
  max_backoff_s: float = 30.0
  jitter: float = 0.5
  retry_bad_responses: bool = True

  def __post_init__(self):
    if self.max_attempts < 1 or self.backoff_s < 0 or not 0 <= self.jitter <= 1:
      raise SettingError(f"RetryPolicy: need max_attempts >= 1, backoff_s >= 0 and jitter in "
                         f"[0, 1]; got {self.max_attempts}, {self.backoff_s}, {self.jitter}")

  def delay(self, attempt: int, retry_after: Optional[float], rng: random.Random) -> float:
    """Seconds to wait after failed attempt number `attempt` (1-based)."""
    base = min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1))
    wait = base * (1 - self.jitter * rng.random())
    return max(wait, min(retry_after or 0.0, self.max_backoff_s))


class TokenBucket:
  """A thread-safe token bucket: blocks callers of `acquire` so that requests keep to a rate.

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


class OpenAIClient:
  """Sends request bodies to one endpoint and returns the answers' text, retrying.

  Thread-safe. `reached` turns True once any request got past connecting (an answer, or an
  error status), which tells a server that is not there from one that fails.

  Args:
    base_url: up to and including `/v1`, e.g. "http://127.0.0.1:8000/v1".
    api: "chat" (messages) or "completions" (a raw prompt).
    api_key_env: environment variable holding the bearer token (None or "": none sent).
    timeout_s: per request (connect and read).
    retry: which failures are asked again, and the waits between.
    limiter: a rate limit over every thread of the client (None: off).
    sleep: injectable for tests.
  """

  def __init__(self, base_url: str, api: str = "chat", api_key_env: Optional[str] = None,
               timeout_s: float = 60.0, retry: Optional[RetryPolicy] = None,
               limiter: Optional[TokenBucket] = None,
               sleep: Callable[[float], None] = time.sleep):
    if api not in APIS:
      raise SettingError(f"api={api!r}; expected one of {APIS}")
    self.api, self.timeout_s = api, timeout_s
    self.url = f"{base_url.rstrip('/')}/{_PATHS[api]}"
    self.headers = {"Content-Type": "application/json"}
    key = os.environ.get(api_key_env, "") if api_key_env else ""
    if key:
      self.headers["Authorization"] = f"Bearer {key}"
    self.retry = retry or RetryPolicy()
    self.limiter = limiter or TokenBucket(None)
    self.reached = False  # Only ever set.
    self._sleep = sleep
    self._rng, self._rng_lock = random.Random(), threading.Lock()

  def complete(self, body: Mapping[str, Any], parse: Callable[[str], T] = str,
               parse_errors: tuple[type[Exception], ...] = (),
               parse_cause: str = "unparseable") -> T:
    """`parse` of the answer's text, asking again while a failure may pass.

    Args:
      body: the request body (model, messages or prompt, sampling settings).
      parse: reads the answer's text; the text itself by default.
      parse_errors: exceptions of `parse` that asking again may cure (a model's answer that
        does not parse); each counts as a failed attempt of cause `parse_cause`.
      parse_cause: the cause such a failure is reported under.

    Raises:
      RequestFailure: the last failure, with `attempts` set; at once if it cannot pass.
    """
    for attempt in range(1, self.retry.max_attempts + 1):
      self.limiter.acquire()
      try:
        answer = parse(self.send(body))
        self.reached = True
        return answer
      except RequestFailure as e:
        failure = e
      except parse_errors as e:
        failure = RequestFailure(parse_cause, str(e), True, url=self.url)
      failure.attempts = attempt
      if failure.cause != "connection":  # It answered, or at least accepted the connection.
        self.reached = True
      retryable = failure.retryable and (failure.cause != "bad_response"
                                         or self.retry.retry_bad_responses)
      if not retryable:
        raise failure
      if attempt < self.retry.max_attempts:
        with self._rng_lock:
          wait = self.retry.delay(attempt, failure.retry_after, self._rng)
        logging.debug("retrying in %.2fs after %s: %s", wait, failure.cause, failure)
        self._sleep(wait)
    failure.gave_up = True
    raise failure

  def send(self, body: Mapping[str, Any]) -> str:
    """One request; the answer's text.

    Raises:
      RequestFailure: the request failed (see its cause).
    """
    data = json.dumps(body).encode("utf-8")
    request = urllib.request.Request(self.url, data=data, headers=self.headers, method="POST")
    try:
      with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
        raw = response.read()
    except urllib.error.HTTPError as e:
      raise _http_failure(e, self.url) from None
    except (TimeoutError, socket.timeout) as e:
      detail = f"no answer within {self.timeout_s}s ({e})"
      raise RequestFailure("timeout", f"{self.url}: {detail}", True, url=self.url,
                           detail=detail) from None
    except urllib.error.URLError as e:
      cause = "timeout" if isinstance(e.reason, (TimeoutError, socket.timeout)) else "connection"
      raise RequestFailure(cause, f"{self.url}: {e.reason}", True, url=self.url,
                           detail=str(e.reason)) from None
    except (ConnectionError, OSError, http.client.HTTPException) as e:  # Dropped mid-answer.
      raise RequestFailure("connection", f"{self.url}: {e}", True, url=self.url,
                           detail=str(e)) from None
    return _answer_text(raw, self.api, self.url)


def _one_line(text: str, limit: int = 200) -> str:
  return " ".join(text.split())[:limit]


def _http_failure(error: urllib.error.HTTPError, url: str) -> RequestFailure:
  try:
    body = error.read() or b""
  except OSError:
    body = b""
  try:  # The API's error shape; else the body's own start (a proxy's HTML page, plain text).
    detail = json.loads(body).get("error", {}).get("message", "")
  except (ValueError, AttributeError):
    detail = _one_line(body.decode("utf-8", "replace"))
  message = f"{url}: HTTP {error.code}" + (f": {detail}" if detail else "")
  retry_after = None
  try:
    retry_after = float(error.headers.get("Retry-After", ""))
  except (TypeError, ValueError):
    pass
  if error.code == 429:
    return RequestFailure("rate_limited", message, True, 429, retry_after, url, detail)
  if error.code >= 500:
    return RequestFailure("server_error", message, True, error.code, retry_after, url, detail)
  return RequestFailure("client_error", message, False, error.code, url=url, detail=detail)


def _answer_text(raw: bytes, api: str, url: str) -> str:
  """`choices[0].message.content` (chat) or `choices[0].text` (completions)."""
  field = "message.content" if api == "chat" else "text"
  try:
    choice = json.loads(raw)["choices"][0]
    text = choice["message"]["content"] if api == "chat" else choice["text"]
  except (json.JSONDecodeError, UnicodeDecodeError, KeyError, IndexError, TypeError):
    shown = raw[:200].decode("utf-8", "replace")
    raise RequestFailure("bad_response", f"{url} answered without choices[0].{field} (not an "
                         f"OpenAI {api} response): {shown!r}", True, url=url) from None
  if not isinstance(text, str):
    raise RequestFailure("bad_response", f"{url}: the answer's text is {type(text).__name__}",
                         True, url=url)
  return text
