"""An LLM judge behind an OpenAI-compatible endpoint, and the quality function that asks it.

It POSTs to `{base_url}/chat/completions` (stdlib urllib, no client library) and
reads a score from the reply, which the default template asks to end with
`SCORE: <0-10>`; the score is divided by `max_score` into [0, 1].
"""
import dataclasses
import json
import os
import re
import time
import urllib.error
import urllib.request
from typing import Optional

from annotanchor.errors import UserError

DEFAULT_TEMPLATE = (
    "Rate the response to the prompt for quality: does it follow the prompt, is it "
    "well written and well formed? Reply with a short reason, then a last line "
    "'SCORE: n' with n an integer from 0 (worst) to 10 (best).\n\n"
    "PROMPT:\n{prompt}\n\nRESPONSE:\n{response}")

_SCORE = re.compile(r"SCORE\s*:\s*(-?\d+(?:\.\d+)?)", re.IGNORECASE)


class JudgeError(UserError, RuntimeError):
  """The judge could not be reached or gave no usable answer.

  Attributes:
    cause: "http_status" (an error status, after retries where one may help),
      "connection" (unreachable or timed out), "bad_response" (not the API's JSON), or
      "bad_answer" (the reply's text holds no usable answer).
  """

  def __init__(self, message: str, cause: str = "bad_answer"):
    super().__init__(message)
    self.cause = cause


@dataclasses.dataclass
class JudgeEndpoint:
  """A chat model behind an OpenAI-compatible endpoint, asked one user message at a time.

  Attributes:
    base_url: e.g. "http://127.0.0.1:8000/v1".
    model: the model name sent in the request.
    api_key_env: environment variable holding the bearer token (none sent if unset).
    timeout_s: per request.
    max_retries: further tries after a connection error, 429 or 5xx, with
      exponential backoff from `backoff_s`; 4xx other than 429 fails at once.
    temperature: sent to the endpoint; 0 for repeatable judgements.
  """
  base_url: str
  model: str
  api_key_env: Optional[str] = "OPENAI_API_KEY"
  timeout_s: float = 60.0
  max_retries: int = 3
  backoff_s: float = 1.0
  temperature: float = 0.0

  def ask(self, message: str) -> str:
    """Sends one user message; returns the reply's text."""
    url = self.base_url.rstrip("/") + "/chat/completions"
    body = json.dumps({"model": self.model, "temperature": self.temperature,
                       "messages": [{"role": "user", "content": message}]}).encode()
    headers = {"Content-Type": "application/json"}
    key = os.environ.get(self.api_key_env) if self.api_key_env else None
    if key:
      headers["Authorization"] = f"Bearer {key}"
    last, cause = None, None
    for attempt in range(self.max_retries + 1):
      if attempt:
        time.sleep(self.backoff_s * 2 ** (attempt - 1))
      request = urllib.request.Request(url, data=body, headers=headers, method="POST")
      try:
        with urllib.request.urlopen(request, timeout=self.timeout_s) as reply:
          payload = reply.read()
      except urllib.error.HTTPError as e:
        detail = e.read()[:200].decode("utf-8", "replace")
        last, cause = f"HTTP {e.code} from {url}: {detail}", "http_status"
        if e.code != 429 and e.code < 500:
          raise JudgeError(last, cause) from None
        continue
      except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
        last, cause = f"cannot reach {url}: {getattr(e, 'reason', e)}", "connection"
        continue
      try:
        return json.loads(payload)["choices"][0]["message"]["content"]
      except (ValueError, KeyError, IndexError, TypeError):
        raise JudgeError(f"{url} answered without choices[0].message.content: "
                         f"{payload[:200]!r}", "bad_response") from None
    raise JudgeError(f"{last} (gave up after {self.max_retries + 1} tries)", cause)


@dataclasses.dataclass
class JudgeQuality(JudgeEndpoint):
  """Scores samples with a chat model (the endpoint settings are JudgeEndpoint's).

  Attributes:
    template: the user message; `{prompt}` and `{response}` are filled in.
    max_score: the top of the judge's scale.
  """
  template: str = DEFAULT_TEMPLATE
  max_score: float = 10.0

  def __call__(self, prompt: str, annotation: str, response: str) -> float:
    content = self.ask(self.template.format(prompt=prompt, response=response))
    matches = _SCORE.findall(content)
    if not matches:
      raise JudgeError(f"judge reply holds no 'SCORE: n': {content[:200]!r}")
    score = float(matches[-1])
    if not 0 <= score <= self.max_score:
      raise JudgeError(f"judge score {score} outside 0..{self.max_score}")
    return score / self.max_score
