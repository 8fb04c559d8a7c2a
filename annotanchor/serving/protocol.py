"""The OpenAI API's request and response shapes: validation, chat rendering, responses.

A completion request continues its prompt as it is; a chat request is rendered with the
prompt template of the SFT data (`annotanchor.data.prompts.PromptTemplate`):

  render_chat([{"role": "system", "content": "Be brief."},
               {"role": "user", "content": "Tell a story."}], PromptTemplate())
  -> "<user> Be brief.\\n\\nTell a story.\\n<assistant>"

(the SFT data has no system turn: system text opens the first user turn; earlier assistant
turns are rendered as `\\n<assistant> text\\n<user> ...`). A bad request raises `APIError`,
whose `body()` is the API's error shape `{"error": {"message", "type", "param", "code"}}`.
"""
from __future__ import annotations

import dataclasses
import secrets
import time
from typing import Any, Mapping, Optional, Sequence

from annotanchor.data import conversations
from annotanchor.data.prompts import PromptTemplate
from annotanchor.errors import is_count, require

ANNOTATION_OPTIONS = ("return", "strip")
MAX_STOPS = 4


class APIError(Exception):
  """An error answered in the API's shape.

  Args:
    status: the HTTP status (400 bad request, 404 unknown model or route, ...).
    message: what is wrong, naming the field.
    type: the error type ("invalid_request_error", "not_found_error", "server_error").
    param: the request field at fault, if one is.
    code: a machine-readable code, if any.
  """

  def __init__(self, status: int, message: str, type: str = "invalid_request_error",
               param: Optional[str] = None, code: Optional[str] = None):
    super().__init__(message)
    self.status, self.type, self.param, self.code = status, type, param, code

  def body(self) -> dict[str, Any]:
    return {"error": {"message": str(self), "type": self.type, "param": self.param,
                      "code": self.code}}


@dataclasses.dataclass(frozen=True)
class Limits:
  """What the server accepts (`annotanchor serve`'s typed group, checked when built).

  Attributes:
    model: the served model's name (requests naming another get 404).
    max_n: the most samples per prompt.
    max_prompts: the most prompts in one completion request, and in one sampler call
      (the batcher's batch).
    max_tokens: the largest `max_tokens`.
    default_max_tokens: `max_tokens` when a request leaves it out.
    annotation: the `annotation` option when a request leaves it out.

  Raises:
    SettingError: naming the field, for a value the server cannot use.
  """
  model: str = "annotanchor"
  max_n: int = 16
  max_prompts: int = 8
  max_tokens: int = 512
  default_max_tokens: int = 64
  annotation: str = "strip"

  def __post_init__(self):
    require(isinstance(self.model, str) and bool(self.model), "Limits.model", self.model,
            "a non-empty string")
    for name in ("max_n", "max_prompts", "max_tokens"):
      require(is_count(getattr(self, name)), f"Limits.{name}", getattr(self, name),
              "a positive int")
    require(is_count(self.default_max_tokens) and self.default_max_tokens <= self.max_tokens,
            "Limits.default_max_tokens", self.default_max_tokens,
            f"a positive int of at most Limits.max_tokens={self.max_tokens}")
    require(self.annotation in ANNOTATION_OPTIONS, "Limits.annotation", self.annotation,
            f"one of {ANNOTATION_OPTIONS}")


@dataclasses.dataclass(frozen=True)
class SamplingRequest:
  """A validated request.

  Attributes:
    chat: a chat request (else a completion request).
    texts: the model prompts (rendered, for chat).
    n, max_tokens, temperature, top_p: sampling settings.
    stop: strings that end the returned text (not included).
    seed: seeds the samples (random when the request has none).
    annotation: "return" the sampled annotation before the response, or "strip" it.
  """
  chat: bool
  texts: tuple[str, ...]
  n: int
  max_tokens: int
  temperature: float
  top_p: float
  stop: tuple[str, ...]
  seed: int
  annotation: str


def _number(body: Mapping[str, Any], name: str, default: float, low: float, high: float,
            integer: bool = False, low_open: bool = False) -> Any:
  value = body.get(name)
  if value is None:
    return default
  kinds = (int,) if integer else (int, float)
  if isinstance(value, bool) or not isinstance(value, kinds):
    raise APIError(400, f"'{name}' must be {'an integer' if integer else 'a number'}, got "
                   f"{value!r}", param=name)
  if value < low or value > high or (low_open and value == low):
    raise APIError(400, f"'{name}'={value} is out of range: need {low} {'<' if low_open else '<='}"
                   f" {name} <= {high}", param=name)
  return value


def _stops(body: Mapping[str, Any]) -> tuple[str, ...]:
  stop = body.get("stop")
  if stop is None:
    return ()
  stops = [stop] if isinstance(stop, str) else stop
  if (not isinstance(stops, list) or len(stops) > MAX_STOPS
      or not all(isinstance(s, str) and s for s in stops)):
    raise APIError(400, f"'stop' must be a non-empty string or a list of at most {MAX_STOPS} "
                   "of them", param="stop")
  return tuple(stops)


def _common(body: Any, limits: Limits, chat: bool, texts: Sequence[str]) -> SamplingRequest:
  if body.get("stream"):
    raise APIError(400, "'stream' is not supported; send stream=false", param="stream")
  model = body.get("model")
  if model not in (None, "", limits.model):
    raise APIError(404, f"The model {model!r} does not exist; this server serves "
                   f"{limits.model!r}", type="invalid_request_error", param="model",
                   code="model_not_found")
  annotation = body.get("annotation", limits.annotation)
  if annotation not in ANNOTATION_OPTIONS:
    raise APIError(400, f"'annotation' must be one of {list(ANNOTATION_OPTIONS)}, got "
                   f"{annotation!r}", param="annotation")
  max_tokens = body.get("max_completion_tokens") if chat else None
  name = "max_completion_tokens" if max_tokens is not None else "max_tokens"
  seed = body.get("seed")
  if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
    raise APIError(400, f"'seed' must be an integer, got {seed!r}", param="seed")
  return SamplingRequest(
      chat=chat, texts=tuple(texts),
      n=_number(body, "n", 1, 1, limits.max_n, integer=True),
      max_tokens=_number(body, name, limits.default_max_tokens, 1, limits.max_tokens,
                         integer=True),
      temperature=float(_number(body, "temperature", 1.0, 0.0, 2.0)),
      top_p=float(_number(body, "top_p", 1.0, 0.0, 1.0, low_open=True)),
      stop=_stops(body), seed=secrets.randbits(62) if seed is None else seed,
      annotation=annotation)


def _object(body: Any) -> Mapping[str, Any]:
  if not isinstance(body, dict):
    raise APIError(400, "the request body must be a JSON object")
  return body


def parse_completion(body: Any, limits: Limits) -> SamplingRequest:
  """Validates a `/v1/completions` body (prompt: a string or a list of strings)."""
  body = _object(body)
  prompt = body.get("prompt")
  prompts = [prompt] if isinstance(prompt, str) else prompt
  if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) for p in prompts):
    raise APIError(400, "'prompt' must be a string or a non-empty list of strings (token-id "
                   "prompts are not supported)", param="prompt")
  if len(prompts) > limits.max_prompts:
    raise APIError(400, f"{len(prompts)} prompts; at most {limits.max_prompts} per request",
                   param="prompt")
  return _common(body, limits, False, prompts)


def render_chat(messages: Any, template: PromptTemplate) -> str:
  """The model prompt of a conversation (see the module docstring and
  `annotanchor.data.conversations`, the rule SFT conversations are rendered by too).

  Raises:
    APIError: no messages, an unknown role, or a last message that is not the user's.
  """
  try:
    turns = conversations.conversation_turns(messages)
  except conversations.ConversationError as e:
    raise APIError(400, str(e), param=e.param) from None
  if turns[-1][0] != "user":
    raise APIError(400, "the last message must be the user's", param="messages")
  return conversations.render_prompt(turns, template)


def parse_chat(body: Any, limits: Limits, template: PromptTemplate) -> SamplingRequest:
  """Validates a `/v1/chat/completions` body."""
  body = _object(body)
  return _common(body, limits, True, [render_chat(body.get("messages"), template)])


def apply_stops(text: str, stops: Sequence[str]) -> tuple[str, bool]:
  """`text` cut before the earliest stop string, and whether one was found.

  Example: apply_stops("a. b\\n\\nc", ["\\n\\n"]) -> ("a. b", True).
  """
  cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=-1)
  return (text, False) if cut < 0 else (text[:cut], True)


def response(request: SamplingRequest, model: str, choices: Sequence[tuple[str, str]],
             prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
  """The API's answer: choices are (text, finish_reason), n per prompt, in order."""
  if request.chat:
    shaped = [{"index": i, "message": {"role": "assistant", "content": text},
               "finish_reason": reason} for i, (text, reason) in enumerate(choices)]
    kind, prefix = "chat.completion", "chatcmpl"
  else:
    shaped = [{"index": i, "text": text, "logprobs": None, "finish_reason": reason}
              for i, (text, reason) in enumerate(choices)]
    kind, prefix = "text_completion", "cmpl"
  return {"id": f"{prefix}-{secrets.token_hex(12)}", "object": kind, "created": int(time.time()),
          "model": model, "choices": shaped,
          "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens}}


def models_response(model: str, created: int) -> dict[str, Any]:
  """`/v1/models`: the one served model."""
  return {"object": "list",
          "data": [{"id": model, "object": "model", "created": created, "owned_by": "annotanchor"}]}
