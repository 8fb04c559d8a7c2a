"""An LLM judge behind an OpenAI-compatible endpoint, and the quality function that asks it.

It asks `{base_url}/chat/completions` through the shared `annotanchor.openai_client`
(timeouts, retries, a rate limit) and reads a score from the reply, which the default
template asks to end with `SCORE: <0-10>`; the score is divided by `max_score` into [0, 1].
"""
import dataclasses
import math
import re
from typing import Optional

from annotanchor.errors import UserError
from annotanchor.openai_client import OpenAIClient, RequestFailure, RetryPolicy, TokenBucket

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


# The shared client's causes, as the judge counts them.
_CAUSES = {"server_error": "http_status", "rate_limited": "http_status",
           "client_error": "http_status", "timeout": "connection", "connection": "connection",
           "bad_response": "bad_response"}


def _judge_error(failure: RequestFailure) -> JudgeError:
  """The JudgeError of a request that failed: one line, under the judge's cause."""
  cause = _CAUSES[failure.cause]
  if cause == "http_status":
    message = f"HTTP {failure.status} from {failure.url}: {failure.detail}"
  elif cause == "connection":
    message = f"cannot reach {failure.url}: {failure.detail}"
  else:
    message = str(failure)
  if failure.gave_up:
    message += f" (gave up after {failure.attempts} tries)"
  return JudgeError(message, cause)


@dataclasses.dataclass
class JudgeEndpoint:
  """A chat model behind an OpenAI-compatible endpoint, asked one user message at a time.

  Attributes:
    base_url: e.g. "http://127.0.0.1:8000/v1".
    model: the model name sent in the request.
    api_key_env: environment variable holding the bearer token (none sent if unset).
    timeout_s: per request.
    max_retries: further tries after a connection error, 429 or 5xx, with
      exponential backoff from `backoff_s` (or the server's Retry-After when longer);
      4xx other than 429 and an answer that is not the API's JSON fail at once.
    temperature: sent to the endpoint; 0 for repeatable judgements.
    requests_per_s: a rate limit over every thread asking this judge (None: off).
  """
  base_url: str
  model: str
  api_key_env: Optional[str] = "OPENAI_API_KEY"
  timeout_s: float = 60.0
  max_retries: int = 3
  backoff_s: float = 1.0
  temperature: float = 0.0
  requests_per_s: Optional[float] = None

  def __post_init__(self):
    retry = RetryPolicy(max_attempts=self.max_retries + 1, backoff_s=self.backoff_s,
                        max_backoff_s=math.inf, jitter=0.0, retry_bad_responses=False)
    self._client = OpenAIClient(self.base_url, "chat", self.api_key_env, self.timeout_s, retry,
                                TokenBucket(self.requests_per_s))

  def ask(self, message: str) -> str:
    """Sends one user message; returns the reply's text.

    Raises:
      JudgeError: the request failed (after the retries where one may help).
    """
    body = {"model": self.model, "temperature": self.temperature,
            "messages": [{"role": "user", "content": message}]}
    try:
      return self._client.complete(body)
    except RequestFailure as e:
      raise _judge_error(e) from None


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
