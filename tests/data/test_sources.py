"""Sources: valid records, and the promised error for every kind of bad record."""
import json

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from annotanchor.data import sources
from annotanchor.data.annotations import AnnotationFormat
from annotanchor.data.validated import Documents, SftExamples

FMT = AnnotationFormat()

GOOD = {"text": "One.\n\nTwo.", "annotations": ["<ann> a:x </ann>", {"b": "two words"}]}


def _jsonl(tmp_path, lines, name="docs.jsonl"):
  path = tmp_path / name
  path.write_text("".join((l if isinstance(l, str) else json.dumps(l)) + "\n" for l in lines))
  return str(path)


def _read(paths, **kwargs):
  return list(sources.read_examples(paths, Documents(FMT), **kwargs))


def test_reads_documents_from_jsonl(tmp_path):
  (doc,) = _read([_jsonl(tmp_path, [GOOD])])
  assert doc == {"chunks": ["One.", "Two."], "annotations": ["a:x", "b:two_words"]}


def test_reads_documents_from_tfrecord(tmp_path):
  path = str(tmp_path / "docs.tfrecord")
  with tf.io.TFRecordWriter(path) as writer:
    feature = lambda values: tf.train.Feature(bytes_list=tf.train.BytesList(
        value=[v.encode() for v in values]))
    writer.write(tf.train.Example(features=tf.train.Features(feature={
        "body": feature(["Only chunk."]), "anns": feature(["<ann> k:v </ann>"])})).SerializeToString())
  fields = sources.DocumentFields(text="body", annotations="anns")
  docs = list(sources.read_examples(
      [path], Documents(FMT, fields)))
  assert docs == [{"chunks": ["Only chunk."], "annotations": ["k:v"]}]


@pytest.mark.parametrize("line,message", [
    ("{not json", r"record 2: malformed JSON"),
    ({"annotations": ["<ann> a:b </ann>"]}, r"record 2: missing field 'text'"),
    ({"text": " \n\n ", "annotations": []}, r"record 2: empty document"),
    ({"text": "A.\n\nB.", "annotations": ["<ann> a:b </ann>"]}, r"record 2: 2 chunks but 1 annotations"),
    ({"text": "A.", "annotations": ["<ann> no-colon </ann>"]}, r"record 2: annotation 0 does not parse"),
    ({"text": "A.", "annotations": ["a:b"]}, r"record 2: annotation 0 does not parse.*enclosed"),
])
def test_bad_records_name_file_and_record(tmp_path, line, message):
  path = _jsonl(tmp_path, [GOOD, line])
  with pytest.raises(sources.SourceError, match=rf"docs\.jsonl, {message}"):
    _read([path])


def test_skip_policy_counts_and_keeps_the_rest(tmp_path):
  path = _jsonl(tmp_path, [GOOD, "{broken", {"text": "A."}, GOOD])
  report = sources.SkipReport()
  assert len(_read([path], on_error="skip", report=report)) == 2
  assert report.read == {path: 2} and report.skipped == {path: 2}


def test_missing_files_and_bad_policy_are_errors(tmp_path):
  with pytest.raises(sources.SourceError, match="No input files"):
    _read([str(tmp_path / "none-*.jsonl")])
  with pytest.raises(ValueError, match="on_error"):
    _read([_jsonl(tmp_path, [GOOD])], on_error="ignore")


def test_sft_records(tmp_path):
  good = {"prompt": "P", "response": "R", "annotation": "<ann> k:v </ann>"}
  path = _jsonl(tmp_path, [good, {"prompt": "P", "response": ""}], name="sft.jsonl")
  read = lambda: list(sources.read_examples([path], SftExamples(FMT)))
  with pytest.raises(sources.SourceError, match=r"sft\.jsonl, record 2: field 'response' is empty"):
    read()
  assert list(sources.read_examples([path], SftExamples(FMT), on_error="skip")) == [
      {"prompt": "P", "response": "R", "annotation": "k:v"}]


def test_reads_tfds_splits(tmp_path, monkeypatch):
  rows = [{"text": b"A.\n\nB.", "annotations": np.array([b"<ann> a:b </ann>", b"<ann> c:d </ann>"])},
          {"text": b"", "annotations": np.array([], dtype=object)}]
  monkeypatch.setattr(tfds, "load", lambda name, split: (name, split))
  monkeypatch.setattr(tfds, "as_numpy", lambda loaded: rows if loaded == ("docs", "train") else [])
  with pytest.raises(sources.SourceError, match="tfds:docs:train, record 2: empty document"):
    _read(["tfds:docs:train"])
  assert _read(["tfds:docs:train"], on_error="skip") == [
      {"chunks": ["A.", "B."], "annotations": ["a:b", "c:d"]}]
