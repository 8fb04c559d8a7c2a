"""Annotate's requests to an OpenAI-compatible endpoint: where to send them and what they hold.

The sending itself (timeouts, retries, the rate limit, failures with a cause) is the
shared `annotanchor.openai_client.OpenAIClient`, which the LLM judge uses too.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Mapping, Optional

import gin

from annotanchor.annotation.prompt import AnnotationPrompt
from annotanchor.errors import SettingError
from annotanchor.openai_client import APIS, OpenAIClient, RetryPolicy, TokenBucket

# HTTP statuses that mean the endpoint itself is misconfigured: stop the run.
FATAL_STATUSES = (401, 403, 404)


@gin.configurable
@dataclasses.dataclass(frozen=True)
class Endpoint:
  """An OpenAI-compatible server and the sampling settings of the annotation requests.

  Attributes:
    base_url: up to and including `/v1`, e.g. "http://127.0.0.1:8000/v1".
    model: the served model's name (the request's `model` field).
    api: "chat" (messages, for instruct models) or "completions" (a raw prompt).
    api_key_env: environment variable holding the bearer token ("" sends none).
    timeout_s: per-request timeout (connect and read).
    max_tokens, temperature, top_p: sampling settings of each request.
    extra_body: more request fields, e.g. {"annotation": "return"} for `annotanchor serve`.
  """
  base_url: str = "http://127.0.0.1:8000/v1"
  model: str = ""
  api: str = "chat"
  api_key_env: str = "OPENAI_API_KEY"
  timeout_s: float = 60.0
  max_tokens: int = 64
  temperature: float = 0.0
  top_p: float = 1.0
  extra_body: Mapping[str, Any] = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    if self.api not in APIS:
      raise SettingError(f"Endpoint.api={self.api!r}; expected one of {APIS}")
    if not self.base_url.startswith(("http://", "https://")):
      raise SettingError(f"Endpoint.base_url={self.base_url!r} is not an http(s) URL")
    if self.timeout_s <= 0:
      raise SettingError(f"Endpoint.timeout_s={self.timeout_s} must be positive")

  def client(self, retry: Optional[RetryPolicy] = None, limiter: Optional[TokenBucket] = None,
             sleep: Callable[[float], None] = time.sleep) -> OpenAIClient:
    """The shared client, sending to this endpoint."""
    return OpenAIClient(self.base_url, self.api, self.api_key_env, self.timeout_s, retry,
                        limiter, sleep)

  def body(self, prompt: AnnotationPrompt, text: str) -> dict[str, Any]:
    """The request body for one rendered prompt (the prompt's system message on chat)."""
    body = {"model": self.model, "max_tokens": self.max_tokens,
            "temperature": self.temperature, "top_p": self.top_p, **self.extra_body}
    if self.api == "chat":
      system = [{"role": "system", "content": prompt.system}] if prompt.system else []
      body["messages"] = system + [{"role": "user", "content": text}]
    else:
      body["prompt"] = text
    return body
