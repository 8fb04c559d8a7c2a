"""annotate on SFT sets: prompt/response pairs and `messages` conversations; the output is
what the anchored-SFT sources read; a killed chat run resumes with nothing lost or
duplicated, and its output trains an anchored chat SFT run."""
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from annotanchor.annotation.annotators import LLMAnnotator, RetryPolicy
from annotanchor.annotation.client import Endpoint
from annotanchor.annotation.record_kinds import RecordKind
from annotanchor.annotation.runner import annotate_corpus
from annotanchor.data import sources, vocabulary
from annotanchor.data.annotations import AnnotationFormat
from annotanchor.data.prompts import PromptTemplate
from annotanchor.data.validated import SftExamples
from tests.annotation.fake_server import FakeEndpoint
from tests.faults.conftest import run, write_corpus_gin

FMT = AnnotationFormat()

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENV = {**os.environ, "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": REPO}


def chat(i):
  return {"id": f"c{i}", "messages": [
      {"role": "system", "content": "Be brief."},
      {"role": "user", "content": f"Tell story {i}."},
      {"role": "assistant", "content": f"Story {i}a."},
      {"role": "user", "content": "Another?"},
      {"role": "assistant", "content": f"Story {i}b."}]}


def _answer(n, prompt):
  """Tags naming the story the annotator was shown (and whether it saw the prompt)."""
  story = re.search(r"Story (\d+)([ab])\.", prompt).groups()
  seen = "prompt" if prompt.startswith("Prompt:") or "Prompt: " in prompt else "response"
  return "answer", f"topic:s{story[0]}{story[1]} style:{seen}"


def write_jsonl(path, records):
  path.write_text("".join(json.dumps(r) + "\n" for r in records))
  return str(path)


def _llm(server):
  return LLMAnnotator(Endpoint(base_url=server.url, api_key_env=""),
                      retry=RetryPolicy(max_attempts=2, backoff_s=0.01))


def test_chat_records_get_an_annotation_per_assistant_turn(tmp_path):
  inputs = write_jsonl(tmp_path / "chat.jsonl", [chat(i) for i in range(3)])
  with FakeEndpoint(_answer) as server:
    summary = annotate_corpus([inputs], str(tmp_path / "out"), _llm(server),
                              kind=RecordKind("sft_chat"), concurrency=2, fmt=FMT)
    shown = [r["messages"][-1]["content"] for r in server.requests]
  assert summary["chunks_written"] == 6 and summary["documents_written"] == 3
  assert not any("Tell story" in s for s in shown)  # the responses alone
  records = [json.loads(l) for l in open(tmp_path / "out" / "annotated-00000.jsonl")]
  assert records[1]["id"] == "c1" and records[1]["messages"][0] == chat(1)["messages"][0]
  assert [m.get("annotation") for m in records[1]["messages"]] == [
      None, None, "<ann> topic:s1a style:response </ann>", None,
      "<ann> topic:s1b style:response </ann>"]
  # The anchored chat source reads them as they are.
  example = sources.chat_example(records[1], "out:2", "messages", PromptTemplate())
  assert example["pieces"][1:5] == ["<ann>", " topic:", "s1a", " style:"]


def test_pairs_with_the_prompt_shown(tmp_path):
  pairs = [{"prompt": f"Tell story {i}.", "response": f"Story {i}a.", "id": f"p{i}"}
           for i in range(4)]
  inputs = write_jsonl(tmp_path / "pairs.jsonl", pairs)
  with FakeEndpoint(_answer) as server:
    annotate_corpus([inputs], str(tmp_path / "out"), _llm(server),
                    kind=RecordKind("sft_pairs", text_field="response", show_prompt=True), fmt=FMT)
    assert server.requests[0]["messages"][-1]["content"].count("Prompt: Tell story") == 1
  examples = list(sources.read_examples([str(tmp_path / "out" / "annotated-*.jsonl")],
                                        SftExamples(FMT)))
  assert [(e["prompt"], e["annotation"]) for e in examples] == [
      (f"Tell story {i}.", f"topic:s{i}a style:prompt") for i in range(4)]


@pytest.mark.parametrize("record,cause", [
    ({"messages": [{"role": "user", "content": "hi"}]}, "has no assistant turn"),
    ({"messages": "hi"}, "non-empty list"),
    ({"prompt": "x"}, "missing field 'messages'"),
])
def test_a_bad_chat_record_is_a_failure_with_its_cause(tmp_path, record, cause):
  inputs = write_jsonl(tmp_path / "chat.jsonl", [chat(0), record, chat(2)])
  with FakeEndpoint(_answer) as server:
    summary = annotate_corpus([inputs], str(tmp_path / "out"), _llm(server),
                              kind=RecordKind("sft_chat"), fmt=FMT)
  assert summary["documents_written"] == 2 and summary["failures"] == {"bad_record": 1}
  failure = json.loads(open(tmp_path / "out" / "failures-00000.jsonl").readline())
  assert cause in failure["message"] and "record 2" in failure["where"]


def _slow_answer(n, prompt):
  time.sleep(0.1)
  return _answer(n, prompt)


# Slow (42 s of CPU): the default run covers both halves, kill and resume in
# tests/annotation/test_kill_resume.py (shards do not depend on the record kind) and a chat
# corpus training anchored SFT in tests/faults/test_chat_sft_faults.py.
@pytest.mark.slow
def test_killed_chat_run_resumes_and_its_output_trains_anchored_sft(tmp_path):
  num, per_shard = 12, 2
  raw = write_jsonl(tmp_path / "chat.jsonl", [chat(i) for i in range(num)])
  out = tmp_path / "out"
  with FakeEndpoint(_slow_answer) as server:
    cmd = [sys.executable, "-m", "annotanchor.cli", "annotate", "--gin_file=gin/runs/annotate.gin",
           f"--gin.INPUTS=['{raw}']", f"--gin.OUTPUT_DIR='{out}'",
           f"--gin.ENDPOINT_URL='{server.url}'", "--gin.CONCURRENCY=2",
           f"--gin.DOCS_PER_SHARD={per_shard}", "--gin.annotate.record_kind='sft_chat'"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while len(list(out.glob("*.done"))) < 2 and proc.poll() is None and time.time() < deadline:
      time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    _, stderr = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, stderr[-2000:]
    finished = len(list(out.glob("*.done")))
    assert 2 <= finished < num // per_shard
    before = len(server.requests)
    done = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
  assert len(server.requests) - before == 2 * (num - finished * per_shard)
  records = [json.loads(l) for shard in sorted(out.glob("annotated-*.jsonl")) for l in open(shard)]
  assert [r["id"] for r in records] == [f"c{i}" for i in range(num)]
  assert [[m["annotation"] for m in r["messages"] if m["role"] == "assistant"]
          for r in records] == [[f"<ann> topic:s{i}a style:response </ann>",
                                 f"<ann> topic:s{i}b style:response </ann>"] for i in range(num)]
  # The shards train an anchored chat SFT run as they are.
  texts = [m["content"] for r in records for m in r["messages"]] + ["topic:s1a style:response"]
  vocab = vocabulary.train_sentencepiece(texts * 5, str(tmp_path / "spm.model"), vocab_size=300)
  corpus_gin = write_corpus_gin(
      tmp_path / "corpus.gin", vocabulary_path=vocab, sft={"train": f"{out}/annotated-*.jsonl"},
      sft_format="messages", cache_dir=str(tmp_path / "cache"))
  trained = run(["train", "--gin_file=gin/models/tiny.gin", "--gin_file=gin/runs/sft.gin",
                 f"--gin_file={corpus_gin}", f"--gin.MODEL_DIR='{tmp_path / 'run'}'",
                 "--gin.TRAIN_STEPS=2", "--gin.BATCH_SIZE=2",
                 "--gin.TASK_FEATURE_LENGTHS={'targets': 64}",
                 "--gin.MIXTURE_OR_TASK_NAME='user_sft_anchored'", "--gin.VOCAB_SIZE=512",
                 "--gin.INITIAL_CHECKPOINT_PATH=None"])
  assert trained.returncode == 0, trained.stderr[-3000:]
  assert os.path.isdir(tmp_path / "run" / "checkpoints" / "2")
