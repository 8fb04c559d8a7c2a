"""Quality functions and the judge hook against a local HTTP server."""
import dataclasses
import http.server
import json
import threading

import numpy as np
import pytest

from annotanchor.evaluation import quality
from annotanchor.evaluation.judge import JudgeError, JudgeQuality


def test_scores_and_checks():
  checks = lambda p, a, r: {"well_formed": True, "followed": r.startswith("ok")}
  rows = [[("p", "", "ok 1"), ("p", "", "bad")], [("q", "", "ok"), ("q", "", "ok")]]
  out = quality.quality_per_prompt(checks, rows)
  np.testing.assert_allclose(out["quality"], [0.5, 1.0])
  np.testing.assert_allclose(out["well_formed"], [1.0, 1.0])
  np.testing.assert_allclose(out["followed"], [0.5, 1.0])
  out = quality.quality_per_prompt(quality.constant_quality(0.25), rows)
  assert list(out) == ["quality"] and out["quality"].tolist() == [0.25, 0.25]


@dataclasses.dataclass(frozen=True)
class _Verdict:
  well_formed: bool
  followed: bool


def test_dataclass_checks():
  out = quality.score_sample(lambda p, a, r: _Verdict(True, False), "p", "", "r")
  assert out == {"quality": 0.0, "well_formed": 1.0, "followed": 0.0}


@pytest.mark.parametrize("bad", [1.5, -0.1, float("nan"), "good", {}])
def test_bad_scores(bad):
  with pytest.raises(ValueError):
    quality.score_sample(lambda p, a, r: bad, "p", "", "r")


class _Judge(http.server.BaseHTTPRequestHandler):
  """Replies per the server's script: a list of (status, body) consumed in order."""

  def do_POST(self):
    body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
    self.server.requests.append((self.path, dict(self.headers), body))
    status, reply = self.server.script.pop(0)
    data = reply.encode() if isinstance(reply, str) else json.dumps(reply).encode()
    self.send_response(status)
    self.send_header("Content-Type", "application/json")
    self.send_header("Content-Length", str(len(data)))
    self.end_headers()
    self.wfile.write(data)

  def log_message(self, *args):
    pass


@pytest.fixture
def judge_server():
  server = http.server.HTTPServer(("127.0.0.1", 0), _Judge)
  server.requests, server.script = [], []
  thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
  thread.start()
  yield server
  server.shutdown()
  server.server_close()


def _reply(text):
  return {"choices": [{"message": {"role": "assistant", "content": text}}]}


def _judge(server, **kw):
  return JudgeQuality(base_url=f"http://127.0.0.1:{server.server_port}/v1", model="judge-1",
                      backoff_s=0.0, api_key_env="ANNOTANCHOR_TEST_KEY", **kw)


def test_judge_scores(judge_server, monkeypatch):
  monkeypatch.setenv("ANNOTANCHOR_TEST_KEY", "sk-test")
  judge_server.script = [(200, _reply("Fine story.\nSCORE: 7"))]
  assert _judge(judge_server)("Tell a story.", "<ann> a:b </ann>", "Once...") == 0.7
  path, headers, body = judge_server.requests[0]
  assert path == "/v1/chat/completions"
  assert headers["Authorization"] == "Bearer sk-test"
  assert body["model"] == "judge-1" and body["temperature"] == 0.0
  assert "Tell a story." in body["messages"][0]["content"]
  assert "Once..." in body["messages"][0]["content"]


def test_judge_retries_server_errors(judge_server):
  judge_server.script = [(500, "boom"), (503, "busy"), (200, _reply("SCORE: 10"))]
  assert _judge(judge_server, max_retries=2)("p", "", "r") == 1.0
  assert len(judge_server.requests) == 3


def test_judge_gives_up(judge_server):
  judge_server.script = [(500, "boom")] * 2
  with pytest.raises(JudgeError, match="HTTP 500 .*gave up after 2 tries"):
    _judge(judge_server, max_retries=1)("p", "", "r")


def test_judge_client_error_is_not_retried(judge_server):
  judge_server.script = [(401, "bad key"), (200, _reply("SCORE: 1"))]
  with pytest.raises(JudgeError, match="HTTP 401.*bad key"):
    _judge(judge_server)("p", "", "r")
  assert len(judge_server.requests) == 1


@pytest.mark.parametrize("reply, message", [
    (_reply("I like it."), "no 'SCORE: n'"),
    (_reply("SCORE: 11"), "outside 0..10"),
    ({"error": "?"}, "without choices"),
    ("not json", "without choices"),
])
def test_judge_unusable_replies(judge_server, reply, message):
  judge_server.script = [(200, reply)]
  with pytest.raises(JudgeError, match=message):
    _judge(judge_server)("p", "", "r")


def test_judge_unreachable():
  judge = JudgeQuality(base_url="http://127.0.0.1:9/v1", model="m", max_retries=0,
                       timeout_s=2.0)
  with pytest.raises(JudgeError, match="cannot reach"):
    judge("p", "", "r")
