"""The LLM annotator against a local server that fails on purpose: retries, timeouts, limits."""
import pytest

from annotanchor.annotation.annotators import ChunkFailure, EndpointError, LLMAnnotator, RetryPolicy
from annotanchor.annotation.client import Endpoint
from annotanchor.openai_client import TokenBucket
from tests.annotation.fake_server import FakeEndpoint

FAST = RetryPolicy(max_attempts=4, backoff_s=0.01, max_backoff_s=0.05)


def annotator(server, api="chat", timeout_s=5.0, retry=FAST, waits=None):
  sleep = waits.append if waits is not None else (lambda s: None)
  return LLMAnnotator(Endpoint(base_url=server.url, model="m", api=api, timeout_s=timeout_s),
                      retry=retry, sleep=sleep)


@pytest.mark.parametrize("api", ["chat", "completions"])
def test_server_errors_and_garbage_are_retried_until_an_answer(api):
  steps = {1: ("status", 500), 2: ("garbage", b"<html>502 Bad Gateway</html>"),
           3: ("status", 503), 4: ("answer", "topic:dragons")}
  with FakeEndpoint(lambda n, prompt: steps[n]) as server:
    assert annotator(server, api).annotate("A dragon.", {}) == (("topic", "dragons"),)
  assert len(server.requests) == 4
  body = server.requests[0]
  assert body["model"] == "m" and body["max_tokens"] == 64
  if api == "chat":
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert "A dragon." in body["messages"][1]["content"]
  else:
    assert "A dragon." in body["prompt"]


def test_a_slow_answer_times_out_and_is_retried():
  script = lambda n, prompt: ("sleep", 2.0) if n == 1 else ("answer", "topic:fast")
  with FakeEndpoint(script) as server:
    assert annotator(server, timeout_s=0.3).annotate("x", {}) == (("topic", "fast"),)


def test_failures_after_the_last_attempt_carry_their_cause():
  with FakeEndpoint(lambda n, prompt: ("answer", "I'd rather not.")) as server:
    with pytest.raises(ChunkFailure, match="no valid key:value tag") as e:
      annotator(server).annotate("x", {})
  assert (e.value.cause, e.value.attempts, len(server.requests)) == ("unparseable", 4, 4)
  with FakeEndpoint(lambda n, prompt: ("sleep", 1.0)) as server:
    with pytest.raises(ChunkFailure) as e:
      annotator(server, timeout_s=0.2, retry=RetryPolicy(2, 0.0)).annotate("x", {})
  assert e.value.cause == "timeout" and e.value.attempts == 2


def test_client_errors_are_not_retried_and_a_refusing_endpoint_stops_the_run():
  with FakeEndpoint(lambda n, prompt: ("status", 400)) as server:
    with pytest.raises(ChunkFailure, match="HTTP 400: failing on purpose") as e:
      annotator(server).annotate("x", {})
  assert e.value.cause == "client_error" and len(server.requests) == 1
  with FakeEndpoint(lambda n, prompt: ("status", 404)) as server:
    with pytest.raises(EndpointError, match="HTTP 404.*check Endpoint.base_url"):
      annotator(server).annotate("x", {})


def test_backoff_doubles_with_jitter_and_honours_a_cap():
  waits = []
  policy = RetryPolicy(max_attempts=5, backoff_s=1.0, max_backoff_s=4.0, jitter=0.5)
  with FakeEndpoint(lambda n, prompt: ("status", 500)) as server:
    with pytest.raises(ChunkFailure):
      annotator(server, retry=policy, waits=waits).annotate("x", {})
  assert len(waits) == 4
  for wait, base in zip(waits, [1.0, 2.0, 4.0, 4.0]):
    assert base * 0.5 <= wait <= base


def test_rate_limited_answers_wait_as_long_as_the_server_asks():
  waits = []
  steps = {1: ("status", 429), 2: ("answer", "genre:myth")}
  with FakeEndpoint(lambda n, prompt: steps[n]) as server:
    assert annotator(server, retry=RetryPolicy(3, 0.01, 5.0), waits=waits).annotate(
        "x", {}) == (("genre", "myth"),)
  assert waits == [2.0]  # Retry-After: 2, longer than the backoff.


def test_token_bucket_spaces_requests():
  now = [0.0]
  sleeps = []
  def sleep(s):
    sleeps.append(s)
    now[0] += s
  bucket = TokenBucket(rate=2.0, burst=2, clock=lambda: now[0], sleep=sleep)
  for _ in range(4):
    bucket.acquire()
  assert sleeps == [0.5, 0.5]  # Two go out at once (the burst), then one every 0.5 s.
