"""annotate_corpus: shards the data sources read back, failures, the summary's figures, resume."""
import json
import math

import pytest
import tensorflow as tf

from annotanchor.annotation.annotators import (EndpointError, LLMAnnotator, MetadataAnnotator,
                                               RetryPolicy)
from annotanchor.annotation.client import Endpoint
from annotanchor.annotation.runner import annotate_corpus
from annotanchor.annotation.shards import ShardError
from annotanchor.annotation.schema import TagSchema
from annotanchor.data import sources
from annotanchor.data.annotations import AnnotationFormat
from annotanchor.data.validated import Documents
from tests.annotation.fake_server import FakeEndpoint

FMT = AnnotationFormat()

DOCS = [{"id": f"d{i}", "text": f"Chunk {i}a.\n\nChunk {i}b.", "category": cat, "source": "wiki"}
        for i, cat in enumerate(["sea", "sea", "war", "war", "sea", "harvest"])]


def write_jsonl(path, records):
  path.write_text("".join(json.dumps(r) + "\n" for r in records))
  return str(path)


def read_back(pattern):
  return list(sources.read_examples([pattern], Documents(AnnotationFormat())))


def test_metadata_run_writes_shards_the_data_sources_read_and_a_summary(tmp_path):
  inputs = write_jsonl(tmp_path / "raw.jsonl", DOCS)
  out = tmp_path / "out"
  summary = annotate_corpus([inputs], str(out), MetadataAnnotator(
      fields={"category": "topic", "source": "domain"}), docs_per_shard=4, concurrency=2, fmt=FMT)
  assert sorted(p.name for p in out.glob("annotated-*")) == [
      "annotated-00000.jsonl", "annotated-00000.jsonl.done",
      "annotated-00001.jsonl", "annotated-00001.jsonl.done"]
  docs = read_back(str(out / "annotated-*.jsonl"))
  assert [d["chunks"] for d in docs] == [[f"Chunk {i}a.", f"Chunk {i}b."] for i in range(6)]
  assert docs[2]["annotations"] == ["topic:war domain:wiki"] * 2
  # topic over the 12 written chunks: sea 6, war 4, harvest 2.
  p = [6 / 12, 4 / 12, 2 / 12]
  topic = summary["tags"]["topic"]
  assert topic["entropy_bits"] == pytest.approx(-sum(x * math.log2(x) for x in p), abs=1e-4)
  assert (topic["distinct"], topic["count"], topic["coverage"]) == (3, 12, 1.0)
  assert topic["top"][0] == ["sea", 6] or topic["top"][0] == ("sea", 6)
  assert summary["tags"]["domain"]["entropy_bits"] == 0.0
  assert {k: summary[k] for k in ("shards", "documents", "documents_written", "chunks",
                                  "chunks_annotated", "chunks_written", "failed",
                                  "chunks_this_run")} == {
      "shards": 2, "documents": 6, "documents_written": 6, "chunks": 12,
      "chunks_annotated": 12, "chunks_written": 12, "failed": 0, "chunks_this_run": 12}
  assert json.loads((out / "summary.json").read_text()) == json.loads(json.dumps(summary))


def test_failed_chunks_keep_their_document_out_and_are_counted_by_cause(tmp_path):
  docs = DOCS[:3] + [{"id": "bad"}, {"text": "Lone FAIL chunk.\n\nfine chunk"}]
  inputs = write_jsonl(tmp_path / "raw.jsonl", docs)
  def script(n, prompt):
    if "FAIL" in prompt:
      return ("status", 500)
    return ("answer", "nothing useful" if "1b" in prompt else "topic:tide")
  with FakeEndpoint(script) as server:
    llm = LLMAnnotator(Endpoint(base_url=server.url), retry=RetryPolicy(2, 0.0),
                       schema=TagSchema())
    summary = annotate_corpus([inputs], str(tmp_path / "out"), llm, concurrency=3, fmt=FMT)
  written = read_back(str(tmp_path / "out" / "annotated-*.jsonl"))
  assert [d["chunks"][0] for d in written] == ["Chunk 0a.", "Chunk 2a."]
  assert all(a == "topic:tide" for d in written for a in d["annotations"])
  assert summary["failures"] == {"bad_record": 1, "server_error": 1, "unparseable": 1}
  assert (summary["documents"], summary["documents_written"], summary["chunks"],
          summary["chunks_annotated"], summary["chunks_written"]) == (5, 2, 8, 6, 4)
  failures = [json.loads(l) for l in (tmp_path / "out" / "failures-00000.jsonl").open()]
  assert {(f["cause"], f.get("chunk")) for f in failures} == {
      ("unparseable", 1), ("bad_record", None), ("server_error", 0)}
  assert "missing field 'text'" in [f for f in failures if f["cause"] == "bad_record"][0]["message"]


def test_rerun_skips_finished_shards_redoes_partial_ones_and_refuses_other_inputs(tmp_path):
  inputs = write_jsonl(tmp_path / "raw.jsonl", DOCS)
  out = tmp_path / "out"
  meta = MetadataAnnotator()
  annotate_corpus([inputs], str(out), meta, docs_per_shard=2, fmt=FMT)
  first = {p.name: p.read_text() for p in out.glob("annotated-*")}
  (out / "annotated-00001.jsonl.done").unlink()  # Shard 1 as if killed before its marker.
  (out / "annotated-00001.jsonl").write_text('{"torn": ')
  summary = annotate_corpus([inputs], str(out), meta, docs_per_shard=2, fmt=FMT)
  assert summary["chunks_this_run"] == 4 and summary["documents"] == 6
  assert {p.name: p.read_text() for p in out.glob("annotated-*")} == first
  with pytest.raises(ShardError, match="other docs_per_shard"):
    annotate_corpus([inputs], str(out), meta, docs_per_shard=3, fmt=FMT)


def test_processes_split_the_shards_and_tfrecord_output_reads_back(tmp_path):
  inputs = [write_jsonl(tmp_path / "a.jsonl", DOCS[:4]), write_jsonl(tmp_path / "b.jsonl", DOCS[4:])]
  (tmp_path / "c.txt").write_text("A text file.\n\n\nIts second chunk.\n")
  inputs.append(str(tmp_path / "c.txt"))
  out = tmp_path / "out"
  meta = MetadataAnnotator(fields={"category": "topic"})
  with pytest.raises(ValueError, match="shard_index=2"):
    annotate_corpus(inputs, str(out), meta, shard_index=2, shard_count=2, fmt=FMT)
  summaries = [annotate_corpus(inputs, str(out), meta, docs_per_shard=2, shard_index=i,
                               shard_count=2, output_format="tfrecord", fmt=FMT) for i in (0, 1)]
  assert [s["shards"] for s in summaries] == [2, 2]
  assert (out / "summary-1-of-2.json").exists()
  docs = [d for path in sorted(tf.io.gfile.glob(str(out / "annotated-*.tfrecord")))
          for d in read_back(path)]
  assert [d["annotations"][0] for d in docs] == ["topic:sea", "topic:sea", "topic:war",
                                                 "topic:war", "topic:sea", "topic:harvest"]
  # The text file (shard 3, process 1) has no category: a failure, not an empty annotation.
  assert summaries[0]["failures"] == {} and summaries[1]["failures"] == {"missing_metadata": 2}


def test_an_endpoint_that_refuses_every_request_stops_the_run_before_any_shard(tmp_path):
  inputs = write_jsonl(tmp_path / "raw.jsonl", DOCS)
  with FakeEndpoint(lambda n, prompt: ("status", 401)) as server:
    with pytest.raises(EndpointError, match="HTTP 401"):
      annotate_corpus([inputs], str(tmp_path / "out"),
                      LLMAnnotator(Endpoint(base_url=server.url)), concurrency=2, fmt=FMT)
  assert not list((tmp_path / "out").glob("annotated-*"))
  # The refused chunks are in the summary, by cause, with why the run stopped.
  summary = json.loads((tmp_path / "out" / "summary.json").read_text())
  assert summary["failed"] >= 1 and summary["failures"] == {"client_error": summary["failed"]}
  assert summary["chunks"] == summary["failed"] and "HTTP 401" in summary["stopped"]
