"""Annotators: something that gives the tags of one chunk of a record.

  LLMAnnotator        asks an OpenAI-compatible endpoint (prompt -> answer -> parse), retrying
                      server errors, timeouts and unparseable answers with backoff and jitter
  MetadataAnnotator   turns existing fields of the record (category, title, source) into tags

Both return schema-valid, non-empty tags or raise `ChunkFailure` with a cause; a chunk is
never given an empty annotation.
"""
from __future__ import annotations

import dataclasses
import logging
import random
import threading
import time
from typing import Any, Callable, Mapping, Optional, Protocol

import gin

from annotanchor.annotation.client import FATAL_STATUSES, Endpoint, OpenAIClient, RequestFailure
from annotanchor.annotation.parse import ResponseParseError, parse_response
from annotanchor.annotation.prompt import AnnotationPrompt
from annotanchor.annotation.ratelimit import TokenBucket
from annotanchor.annotation.schema import TagSchema
from annotanchor.data.annotations import Tag
from annotanchor.errors import SettingError, UserError

Record = Mapping[str, Any]


class ChunkFailure(Exception):
  """A chunk that got no annotation.

  Attributes:
    cause: why (a RequestFailure cause, "unparseable", or "missing_metadata").
    attempts: how many requests were made.
  """

  def __init__(self, cause: str, message: str, attempts: int = 1):
    super().__init__(message)
    self.cause, self.attempts = cause, attempts


class EndpointError(UserError):
  """The endpoint refuses every request (bad URL, model or key) or is unreachable: the run stops.

  Attributes:
    cause: the cause of the chunk's failure ("connection", or the refusing answer's
      RequestFailure cause), under which the summary counts it with the other failures.
  """

  def __init__(self, message: str, cause: str):
    super().__init__(message)
    self.cause = cause


class Annotator(Protocol):
  """Gives the tags of one chunk of a record."""

  def annotate(self, chunk: str, record: Record) -> tuple[Tag, ...]:
    """Returns at least one tag, or raises ChunkFailure (EndpointError stops the run)."""
    ...


@gin.configurable
@dataclasses.dataclass(frozen=True)
class RetryPolicy:
  """Exponential backoff with jitter.

  Attempt k (k = 1 after the first failure) waits `min(max_backoff_s, backoff_s * 2**(k-1))`
  times a random factor in [1 - jitter, 1], or the server's `Retry-After` when longer.

  Attributes:
    max_attempts: requests per chunk, the first included.
    backoff_s: the first wait.
    max_backoff_s: the longest wait.
    jitter: the random share taken off each wait (spreads out retries of many threads).
  """
  max_attempts: int = 5
  backoff_s: float = 1.0
  max_backoff_s: float = 30.0
  jitter: float = 0.5

  def __post_init__(self):
    if self.max_attempts < 1 or self.backoff_s < 0 or not 0 <= self.jitter <= 1:
      raise SettingError(f"RetryPolicy: need max_attempts >= 1, backoff_s >= 0 and jitter in "
                         f"[0, 1]; got {self.max_attempts}, {self.backoff_s}, {self.jitter}")

  def delay(self, attempt: int, retry_after: Optional[float], rng: random.Random) -> float:
    """Seconds to wait after failed attempt number `attempt` (1-based)."""
    base = min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1))
    wait = base * (1 - self.jitter * rng.random())
    return max(wait, min(retry_after or 0.0, self.max_backoff_s))


@gin.configurable
class LLMAnnotator:
  """Annotates chunks through an instruct LLM behind an OpenAI-compatible endpoint.

  Thread-safe: the runner calls `annotate` from its worker threads. A chunk whose attempts
  all fail to connect, while no request of the run has yet reached the endpoint, raises
  `EndpointError`: a server that is not there (a closed port, a wrong host) stops the run
  at its first chunk instead of failing every chunk of the corpus in turn.

  Args:
    endpoint: the server and request settings.
    prompt: the prompt template.
    schema: what a valid annotation holds.
    retry: backoff policy for retryable failures and unparseable answers.
    requests_per_s: a token-bucket rate limit over all threads (None: off).
    burst: the bucket's size.
    sleep: injectable for tests.
  """

  def __init__(self, endpoint: Endpoint = gin.REQUIRED, prompt: Optional[AnnotationPrompt] = None,
               schema: Optional[TagSchema] = None, retry: Optional[RetryPolicy] = None,
               requests_per_s: Optional[float] = None, burst: int = 1,
               sleep: Callable[[float], None] = time.sleep):
    self.prompt = prompt or AnnotationPrompt()
    self.schema = schema or TagSchema()
    self.retry = retry or RetryPolicy()
    self.client = OpenAIClient(endpoint, self.prompt)
    self.limiter = TokenBucket(requests_per_s, burst)
    self._sleep = sleep
    self._rng = random.Random()
    self._rng_lock = threading.Lock()
    self._reached = False  # Whether any request got past connecting; only ever set.

  def annotate(self, chunk: str, record: Record) -> tuple[Tag, ...]:
    del record  # The chunk alone is annotated.
    text = self.prompt.render(chunk, self.schema.allowed_keys)
    for attempt in range(1, self.retry.max_attempts + 1):
      self.limiter.acquire()
      retry_after = None
      try:
        answer = self.client.complete(text)
        self._reached = True
        return parse_response(answer, self.schema)
      except RequestFailure as e:
        if e.cause != "connection":
          self._reached = True
        if e.status in FATAL_STATUSES:
          raise EndpointError(f"{e} (check Endpoint.base_url, model and api_key_env)",
                              e.cause) from None
        if not e.retryable:
          raise ChunkFailure(e.cause, str(e), attempt) from None
        failure, retry_after = ChunkFailure(e.cause, str(e), attempt), e.retry_after
      except ResponseParseError as e:
        failure = ChunkFailure("unparseable", str(e), attempt)
      if attempt < self.retry.max_attempts:
        with self._rng_lock:
          wait = self.retry.delay(attempt, retry_after, self._rng)
        logging.debug("retrying in %.2fs after %s: %s", wait, failure.cause, failure)
        self._sleep(wait)
    if failure.cause == "connection" and not self._reached:
      raise EndpointError(f"cannot reach the endpoint: {failure} ({failure.attempts} attempts; "
                          f"is the server up? check Endpoint.base_url)", failure.cause)
    raise failure


@gin.configurable
@dataclasses.dataclass(frozen=True)
class MetadataAnnotator:
  """Tags from fields a record already carries; every chunk of the record gets the same tags.

  With `fields={"category": "topic", "source": "domain"}`, the record
  `{"text": ..., "category": "Sea Monsters", "source": "wiki"}` gives every chunk
  `topic:sea_monsters domain:wiki`. List-valued fields give one tag per element.

  Attributes:
    fields: record field -> tag key.
    schema: what a valid annotation holds.
  """
  fields: Mapping[str, str] = dataclasses.field(
      default_factory=lambda: {"category": "topic", "title": "title", "source": "source"})
  schema: TagSchema = dataclasses.field(default_factory=lambda: TagSchema(allowed_keys=None))

  def annotate(self, chunk: str, record: Record) -> tuple[Tag, ...]:
    del chunk  # Record-level tags.
    pairs = []
    for field, key in self.fields.items():
      value = record.get(field)
      for v in value if isinstance(value, list) else [value]:
        if isinstance(v, (str, int, float)) and not isinstance(v, bool) and str(v).strip():
          pairs.append((key, str(v)))
    tags = self.schema.normalize(pairs)
    if not tags:
      raise ChunkFailure("missing_metadata", f"none of the fields {sorted(self.fields)} holds a "
                         f"valid value (record has {sorted(record)})")
    return tags
