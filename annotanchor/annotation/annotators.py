"""Annotators: something that gives the tags of one chunk of a record.

  LLMAnnotator        asks an OpenAI-compatible endpoint (prompt -> answer -> parse), retrying
                      server errors, timeouts and unparseable answers with backoff and jitter
  MetadataAnnotator   turns existing fields of the record (category, title, source) into tags

Both return schema-valid, non-empty tags or raise `ChunkFailure` with a cause; a chunk is
never given an empty annotation.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Mapping, Optional, Protocol

import gin

from annotanchor.annotation.client import FATAL_STATUSES, Endpoint
from annotanchor.annotation.parse import ResponseParseError, parse_response
from annotanchor.annotation.prompt import AnnotationPrompt
from annotanchor.annotation.schema import TagSchema
from annotanchor.data.annotations import Tag
from annotanchor.errors import UserError
from annotanchor.openai_client import RequestFailure, RetryPolicy, TokenBucket

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
    self.endpoint = endpoint
    self.client = endpoint.client(self.retry, TokenBucket(requests_per_s, burst), sleep)

  def annotate(self, chunk: str, record: Record) -> tuple[Tag, ...]:
    del record  # The chunk alone is annotated.
    body = self.endpoint.body(self.prompt, self.prompt.render(chunk, self.schema.allowed_keys))
    try:  # An answer that does not parse is asked again, as a failed request is.
      return self.client.complete(body, lambda answer: parse_response(answer, self.schema),
                                  parse_errors=(ResponseParseError,), parse_cause="unparseable")
    except RequestFailure as e:
      if e.status in FATAL_STATUSES:
        raise EndpointError(f"{e} (check Endpoint.base_url, model and api_key_env)",
                            e.cause) from None
      if e.cause == "connection" and not self.client.reached:
        raise EndpointError(f"cannot reach the endpoint: {e} ({e.attempts} attempts; is the "
                            f"server up? check Endpoint.base_url)", e.cause) from None
      raise ChunkFailure(e.cause, str(e), e.attempts) from None


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
