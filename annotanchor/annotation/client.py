"""One request to an OpenAI-compatible endpoint (`/v1/chat/completions` or `/v1/completions`).

What vLLM, SGLang, llama.cpp's server and `annotanchor serve` expose. Failures come back as
`RequestFailure` with a cause (the summary counts failures by it) and whether a retry may
help: 5xx, 429, timeouts and dropped connections may; other 4xx answers do not.
"""
from __future__ import annotations

import dataclasses
import http.client
import json
import os
import socket
import urllib.error
import urllib.request
from typing import Any, Mapping, Optional

import gin

from annotanchor.annotation.prompt import AnnotationPrompt
from annotanchor.errors import SettingError

APIS = ("chat", "completions")
# HTTP statuses that mean the endpoint itself is misconfigured: stop the run.
FATAL_STATUSES = (401, 403, 404)


class RequestFailure(Exception):
  """A request that did not give an answer.

  Attributes:
    cause: "server_error" (5xx), "rate_limited" (429), "timeout", "connection",
      "client_error" (other 4xx), "bad_response" (not the API's JSON shape).
    retryable: whether trying again may help.
    status: the HTTP status, if there was one.
    retry_after: seconds the server asked to wait (429/503 `Retry-After`), if any.
  """

  def __init__(self, cause: str, message: str, retryable: bool, status: Optional[int] = None,
               retry_after: Optional[float] = None):
    super().__init__(message)
    self.cause, self.retryable, self.status, self.retry_after = cause, retryable, status, retry_after


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


class OpenAIClient:
  """Sends annotation prompts to an Endpoint.

  Args:
    endpoint: where and how to ask.
    prompt: the prompt (its system message is sent on chat endpoints).
  """

  def __init__(self, endpoint: Endpoint, prompt: AnnotationPrompt):
    self.endpoint, self.prompt = endpoint, prompt
    path = "chat/completions" if endpoint.api == "chat" else "completions"
    self.url = f"{endpoint.base_url.rstrip('/')}/{path}"
    self.headers = {"Content-Type": "application/json"}
    key = os.environ.get(endpoint.api_key_env, "") if endpoint.api_key_env else ""
    if key:
      self.headers["Authorization"] = f"Bearer {key}"

  def body(self, text: str) -> dict[str, Any]:
    """The request body for one rendered prompt."""
    e = self.endpoint
    body = {"model": e.model, "max_tokens": e.max_tokens, "temperature": e.temperature,
            "top_p": e.top_p, **e.extra_body}
    if e.api == "chat":
      system = [{"role": "system", "content": self.prompt.system}] if self.prompt.system else []
      body["messages"] = system + [{"role": "user", "content": text}]
    else:
      body["prompt"] = text
    return body

  def complete(self, text: str) -> str:
    """The answer's text for one prompt.

    Raises:
      RequestFailure: the request failed (see its cause).
    """
    data = json.dumps(self.body(text)).encode("utf-8")
    request = urllib.request.Request(self.url, data=data, headers=self.headers, method="POST")
    try:
      with urllib.request.urlopen(request, timeout=self.endpoint.timeout_s) as response:
        raw = response.read()
    except urllib.error.HTTPError as e:
      raise _http_failure(e, self.url) from None
    except (TimeoutError, socket.timeout) as e:
      raise RequestFailure("timeout", f"{self.url}: no answer within "
                           f"{self.endpoint.timeout_s}s ({e})", True) from None
    except urllib.error.URLError as e:
      cause = "timeout" if isinstance(e.reason, (TimeoutError, socket.timeout)) else "connection"
      raise RequestFailure(cause, f"{self.url}: {e.reason}", True) from None
    except (ConnectionError, OSError, http.client.HTTPException) as e:  # Dropped mid-answer.
      raise RequestFailure("connection", f"{self.url}: {e}", True) from None
    return _answer_text(raw, self.endpoint.api, self.url)


def _http_failure(error: urllib.error.HTTPError, url: str) -> RequestFailure:
  try:
    detail = json.loads(error.read() or b"{}").get("error", {}).get("message", "")
  except (json.JSONDecodeError, AttributeError, OSError):
    detail = ""
  message = f"{url}: HTTP {error.code}" + (f": {detail}" if detail else "")
  retry_after = None
  try:
    retry_after = float(error.headers.get("Retry-After", ""))
  except (TypeError, ValueError):
    pass
  if error.code == 429:
    return RequestFailure("rate_limited", message, True, 429, retry_after)
  if error.code >= 500:
    return RequestFailure("server_error", message, True, error.code, retry_after)
  return RequestFailure("client_error", message, False, error.code)


def _answer_text(raw: bytes, api: str, url: str) -> str:
  """`choices[0].message.content` (chat) or `choices[0].text` (completions)."""
  try:
    choice = json.loads(raw)["choices"][0]
    text = choice["message"]["content"] if api == "chat" else choice["text"]
  except (json.JSONDecodeError, UnicodeDecodeError, KeyError, IndexError, TypeError):
    shown = raw[:200].decode("utf-8", "replace")
    raise RequestFailure("bad_response", f"{url}: not an OpenAI {api} response: {shown!r}",
                         True) from None
  if not isinstance(text, str):
    raise RequestFailure("bad_response", f"{url}: the answer's text is {type(text).__name__}",
                         True)
  return text
