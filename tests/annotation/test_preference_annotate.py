"""annotate on preference records: both answers of each pair (and a prompt's earlier
assistant turns) get their annotations where the anchored preference task reads them."""
import json
import re

from annotanchor.annotation.annotators import LLMAnnotator, RetryPolicy
from annotanchor.annotation.client import Endpoint
from annotanchor.annotation.record_kinds import RecordKind
from annotanchor.annotation.runner import annotate_corpus
from annotanchor.data import sources
from annotanchor.data.annotations import AnnotationFormat
from annotanchor.data.preference_records import PreferenceExamples
from annotanchor.data.prompts import PromptTemplate
from tests.annotation.fake_server import FakeEndpoint

USER = {"role": "user", "content": "Tell story 1."}
EARLIER = [USER, {"role": "assistant", "content": "Once."}, {"role": "user", "content": "More?"}]
RECORDS = [
    {"id": "strings", "prompt": "Tell story 0.", "chosen": "Calm sea.", "rejected": "No."},
    {"id": "tulu", "chosen": EARLIER + [{"role": "assistant", "content": "Calm sea."}],
     "rejected": EARLIER + [{"role": "assistant", "content": "No."}]},
    {"id": "trl", "prompt": [USER], "chosen": [{"role": "assistant", "content": "Calm sea."}],
     "rejected": [{"role": "assistant", "content": "No."}]},
]


def _answer(n, prompt):
  """A tag naming the answer the annotator was shown."""
  word = re.search(r"(Calm) sea\.|(No)\.|(Once)\.", prompt)
  return "answer", f"topic:{next(w for w in word.groups() if w).lower()}"


def test_preference_records_get_both_answers_annotated(tmp_path):
  inputs = tmp_path / "pairs.jsonl"
  inputs.write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
  with FakeEndpoint(_answer) as server:
    llm = LLMAnnotator(Endpoint(base_url=server.url, api_key_env=""),
                       retry=RetryPolicy(max_attempts=2, backoff_s=0.01))
    summary = annotate_corpus([str(inputs)], str(tmp_path / "out"), llm,
                              kind=RecordKind("preference_pairs"), fmt=AnnotationFormat())
  assert summary["chunks_written"] == 2 + 3 + 2 and summary["documents_written"] == 3
  out = tmp_path / "out" / "annotated-00000.jsonl"
  strings, tulu, trl = [json.loads(line) for line in open(out)]
  assert (strings["chosen_annotation"], strings["rejected_annotation"]) == (
      "<ann> topic:calm </ann>", "<ann> topic:no </ann>")
  # The shared earlier turn is annotated once, on both sides.
  assert tulu["chosen"][1]["annotation"] == tulu["rejected"][1]["annotation"] == \
      "<ann> topic:once </ann>"
  assert [tulu[s][-1]["annotation"] for s in ("chosen", "rejected")] == [
      "<ann> topic:calm </ann>", "<ann> topic:no </ann>"]
  assert trl["rejected"][0]["annotation"] == "<ann> topic:no </ann>"
  # The anchored preference source reads every record as written.
  examples = list(sources.read_examples([str(out)], PreferenceExamples(PromptTemplate())))
  assert len(examples) == 3
  assert examples[1]["rejected_pieces"][1:4] == ["<ann>", " topic:", "once"]
