"""The LLM-judge labeller against a local server with recorded answers, failing on purpose:
garbage, 500s, timeouts; the disk cache makes a second evaluate send no request."""
import json

import pytest

from annotanchor import evaluate as evaluate_mod
from annotanchor.evaluation.judge import JudgeError
from annotanchor.evaluation.judge_labels import JudgeLabeller, normalise_label, parse_reply
from tests.annotation.fake_server import FakeEndpoint

ATTRS = {"genre": "the story genre", "hero": "the main character's name"}
# The recorded judge: what it answers for each response.
RECORDED = {
    "A myth about Mira.": '{"genre": "Myth", "hero": "Mira."}',
    "A myth about Ada.": 'Sure! {"genre": "myth", "hero": "Ada"}',
    "A tale about Lars.": '```json\n{"genre": "Fairy Tale", "hero": "Lars"}\n```',
    "A tale about nobody.": '{"genre": "fairy tale", "hero": "none"}',
}


def _recorded(n, prompt):
  response = prompt.rsplit("RESPONSE:\n", 1)[1]
  return ("answer", RECORDED[response]) if response in RECORDED else ("answer", "no idea")


def _labeller(server, **kw):
  return JudgeLabeller(base_url=server.url, model="judge", attributes=ATTRS, max_retries=1,
                       backoff_s=0.01, timeout_s=2, api_key_env=None, **kw)


def test_normalisation_and_reply_parsing():
  assert normalise_label("The Glass Harbor.") == "the_glass_harbor"
  assert normalise_label(" N/A ") == "unknown" and normalise_label(None) == "unknown"
  assert parse_reply('x {"genre": "Myth", "other": 1} y', ["genre", "hero"]) == {"genre": "myth"}
  assert parse_reply("not json {", ["genre"]) == {}


def test_labels_and_cache_on_disk(tmp_path):
  with FakeEndpoint(_recorded) as server:
    judge = _labeller(server, cache_dir=str(tmp_path))
    assert judge("p", "", "A myth about Mira.") == {"genre": "myth", "hero": "mira"}
    assert judge("p", "", "A tale about nobody.") == {"genre": "fairy_tale", "hero": "unknown"}
    assert judge("p", "", "A myth about Mira.") == {"genre": "myth", "hero": "mira"}
    assert len(server.requests) == 2
    # A new labeller (a new process) reads the cache: nothing is asked again.
    again = _labeller(server, cache_dir=str(tmp_path))
    assert again("p", "", "A tale about nobody.")["genre"] == "fairy_tale"
    assert len(server.requests) == 2
    # Another judge model is another cache key.
    other = JudgeLabeller(base_url=server.url, model="judge-2", attributes=ATTRS,
                          api_key_env=None, cache_dir=str(tmp_path))
    other("p", "", "A myth about Mira.")
    assert len(server.requests) == 3


def test_garbage_500s_and_timeouts_are_counted_and_not_cached(tmp_path):
  def script(n, prompt):
    response = prompt.rsplit("RESPONSE:\n", 1)[1]
    if response == "garbage":
      return "garbage", b"<html>oops</html>"
    if response == "down":
      return "status", 500
    if response == "slow":
      return "sleep", 5
    if response == "half":
      return "answer", '{"genre": "myth"}'
    return "answer", "I cannot answer that."
  with FakeEndpoint(script) as server:
    judge = _labeller(server, cache_dir=str(tmp_path), concurrency=4)
    judge.label_many([("p", "", r) for r in ("garbage", "down", "slow", "half", "prose")])
    summary = judge.summary()
    assert summary["failures"] == {"bad_response": 1, "connection": 1, "http_status": 1,
                                   "missing_attribute": 1, "unparsable_reply": 1}
    assert summary["requests"] == 5 and summary["failed_requests"] == 3
    # What is still missing is asked again; what was answered is not.
    assert judge("p", "", "half") == {"genre": "myth", "hero": "unknown"}
    assert server.requests[-1]["messages"][0]["content"].count("- ") == 1  # hero only
    assert judge("p", "", "down") == {"genre": "unknown", "hero": "unknown"}
  cached = [json.loads(l)["value"] for l in open(tmp_path / "judge_labels.jsonl")]
  assert cached == ["myth"]  # only the one real answer


def test_an_unreachable_judge_stops_the_run():
  judge = JudgeLabeller(base_url="http://127.0.0.1:9/v1", model="m", attributes=["genre"],
                        max_retries=0, api_key_env=None)
  with pytest.raises(JudgeError, match="answered none of 2 requests"):
    judge.label_many([("p", "", "a"), ("p", "", "b")])


def test_second_evaluate_sends_zero_requests(tmp_path, write_arm):
  files = {
      "base": write_arm("base", {"p0": ["A myth about Mira.", "A tale about Lars."]}),
      "sft": write_arm("sft", {"p0": ["A myth about Mira.", "A myth about Mira."]}),
      "anchored": write_arm("anchored", {"p0": ["A myth about Ada.", "A tale about Lars."]}),
  }
  with FakeEndpoint(_recorded) as server:
    def run(out):
      return evaluate_mod.evaluate(evaluate_mod.evaluate_config(
          files, str(tmp_path / out), labeller=_labeller(server, cache_dir=str(tmp_path / "c")),
          embedder=None, num_resamples=20, write_plots=False))
    first = run("e1")
    asked = len(server.requests)
    assert asked == 3  # the distinct responses, each asked once
    second = run("e2")
    assert len(server.requests) == asked
  assert second["arms"] == first["arms"]
  assert first["settings"]["labeller_summary"]["requests"] == 3
  assert second["settings"]["labeller_summary"]["requests"] == 0
  # sft's responses are one story: no hero entropy; base's two heroes: 1 bit.
  assert first["arms"]["sft"]["entropy_by_attribute"]["hero"]["value"] == 0.0
  assert first["arms"]["base"]["entropy_by_attribute"]["hero"]["value"] == pytest.approx(1.0)
