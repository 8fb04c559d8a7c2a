"""`annotanchor evaluate` with an LLM-judge labeller, as a process: an unreachable judge
stops the run in one line, and a recorded judge's answers are asked only once."""
import json

from tests.annotation.fake_server import FakeEndpoint
from tests.evaluation.conftest import make_samples
from tests.faults.conftest import REPO, assert_one_line_error, run

from annotanchor.evaluation.samples import write_samples

ANSWERS = {"A myth about Mira.": '{"genre": "myth"}', "A tale about Lars.": '{"genre": "tale"}'}


def _args(tmp_path, url, out):
  for arm, responses in (("base", ["A myth about Mira.", "A tale about Lars."]),
                         ("sft", ["A myth about Mira."] * 2), ("anchored", ["A tale about Lars."] * 2)):
    write_samples(str(tmp_path / f"{arm}.jsonl"), make_samples(arm, {"p0": responses}))
  files = {a: str(tmp_path / f"{a}.jsonl") for a in ("base", "sft", "anchored")}
  return [f"--gin_file={REPO}/gin/runs/evaluate.gin", f"--gin.SAMPLE_FILES={files!r}",
          f"--gin.OUTPUT_DIR='{tmp_path / out}'", "--gin.evaluate.labeller=@JudgeLabeller()",
          "--gin.evaluate.embedder=None", f"--gin.JudgeLabeller.base_url='{url}'",
          "--gin.JudgeLabeller.model='judge'", "--gin.JudgeLabeller.max_retries=0",
          "--gin.JudgeLabeller.attributes=['genre']",
          f"--gin.JudgeLabeller.cache_dir='{tmp_path / 'cache'}'"]


def test_an_unreachable_judge_is_one_line_and_writes_no_report(tmp_path):
  result = run(["evaluate", *_args(tmp_path, "http://127.0.0.1:9/v1", "e")])
  assert_one_line_error(result, "evaluate", "JudgeError", "127.0.0.1:9", "answered none")
  assert not (tmp_path / "e").exists()


def test_a_second_evaluate_asks_the_judge_nothing(tmp_path):
  with FakeEndpoint(lambda n, p: ("answer", ANSWERS[p.rsplit("RESPONSE:\n", 1)[1]])) as server:
    for out in ("e1", "e2"):
      assert run(["evaluate", *_args(tmp_path, server.url, out)]).returncode == 0
    assert len(server.requests) == 2
  summaries = [json.load(open(tmp_path / o / "report.json"))["settings"]["labeller_summary"]
               for o in ("e1", "e2")]
  assert [s["requests"] for s in summaries] == [2, 0]
