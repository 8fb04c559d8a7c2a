"""`annotanchor train` on bad corpora and bad numbers, run as a process.

Each bad record used to surface as an 80-100 line py_func traceback from inside tf.data,
after which the process never exited. Now: one line naming the file and the record,
exit 2, in seconds.
"""
import json
import os

import pytest
import tensorflow as tf

from annotanchor.data import vocabulary
from tests.faults.conftest import assert_one_line_error, run, write_corpus_gin

GOOD = {"text": "The waves rolled over the harbour.\n\nTall trees hid the old path.",
        "annotations": ["<ann> topic:sea </ann>", "<ann> topic:forest </ann>"]}
# Record 3 of the corpus is replaced by each of these; the message must say why.
BAD_RECORDS = {
    "malformed_json": (b'{"text": "cut off', "malformed JSON"),
    "no_annotations": (json.dumps({"text": GOOD["text"]}).encode(), "missing field 'annotations'"),
    "unparseable_annotation": (json.dumps({**GOOD, "annotations": ["topic sea", "topic:x"]}).encode(),
                               "annotation 0 does not parse"),
    "empty_text": (json.dumps({**GOOD, "text": "  "}).encode(), "empty document"),
    "fewer_annotations": (json.dumps({**GOOD, "annotations": GOOD["annotations"][:1]}).encode(),
                          "2 chunks but 1 annotations"),
    "invalid_utf8": (b'{"text": "caf\xe9", "annotations": []}', "not UTF-8"),
}


@pytest.fixture(scope="module")
def vocab(tmp_path_factory):
  texts = [c for c in GOOD["text"].split("\n\n")] + GOOD["annotations"] + ["caf\u00e9"]
  path = tmp_path_factory.mktemp("vocab") / "spm.model"
  return vocabulary.train_sentencepiece(texts * 20, str(path), vocab_size=300)


def _corpus(path, count=12, bad=None, bad_at=(3,)):
  with open(path, "wb") as f:
    for number in range(1, count + 1):
      f.write((bad if number in bad_at and bad is not None else json.dumps(GOOD).encode()) + b"\n")
  return str(path)


def _train(tmp_path, vocab, pattern, *extra, timeout=120):
  corpus_gin = write_corpus_gin(tmp_path / "corpus.gin", vocabulary_path=vocab,
                                documents={"train": pattern}, cache_dir=str(tmp_path / "cache"))
  return run(["train", "--gin_file=gin/models/tiny.gin", "--gin_file=gin/runs/pretrain.gin",
              f"--gin_file={corpus_gin}", f"--gin.MODEL_DIR='{tmp_path / 'run'}'",
              "--gin.TRAIN_STEPS=2", "--gin.BATCH_SIZE=2", "--gin.TASK_FEATURE_LENGTHS={'targets': 32}",
              "--gin.MIXTURE_OR_TASK_NAME='user_pretrain'", "--gin.VOCAB_SIZE=512", *extra],
             timeout=timeout)


# The record validator tests every cause in-process (tests/data); three of them as processes
# by default, all with `make test-all`.
@pytest.mark.parametrize("case", [pytest.param(c, marks=pytest.mark.slow) if c in
                                  ("empty_text", "fewer_annotations", "no_annotations") else c
                                  for c in sorted(BAD_RECORDS)])
def test_a_bad_record_stops_train_with_one_line_naming_file_and_record(tmp_path, vocab, case):
  record, reason = BAD_RECORDS[case]
  corpus = _corpus(tmp_path / "docs.jsonl", bad=record)
  assert_one_line_error(_train(tmp_path, vocab, corpus), "train", "SourceError",
                        f"{corpus}, record 3", reason)
  assert not os.path.exists(tmp_path / "run" / "checkpoints" / "2")


def test_a_truncated_tfrecord_corpus_is_one_line(tmp_path, vocab):
  example = tf.train.Example(features=tf.train.Features(feature={
      key: tf.train.Feature(bytes_list=tf.train.BytesList(
          value=[v.encode() for v in ([value] if isinstance(value, str) else value)]))
      for key, value in GOOD.items()}))
  path = str(tmp_path / "docs.tfrecord")
  with tf.io.TFRecordWriter(path) as writer:
    for _ in range(6):
      writer.write(example.SerializeToString())
  with open(path, "r+b") as f:
    f.truncate(os.path.getsize(path) - 7)
  assert_one_line_error(_train(tmp_path, vocab, path), "train", f"{path}, record 6",
                        "truncated or corrupt TFRecord")


def test_a_pattern_that_matches_nothing_is_one_line(tmp_path, vocab):
  missing = str(tmp_path / "nowhere-*.jsonl")
  assert_one_line_error(_train(tmp_path, vocab, missing), "train", "No input files match",
                        missing)


def test_skipped_records_are_reported_once_each_and_summed_up(tmp_path, vocab):
  corpus = _corpus(tmp_path / "docs.jsonl", count=40, bad=b"{oops", bad_at=(7, 31))
  done = _train(tmp_path, vocab, corpus, "--gin.user/registration.JsonlCorpus.on_error='skip'",
                "--gin.TRAIN_STEPS=30")
  assert done.returncode == 0, done.stderr[-3000:]
  skips = [l for l in done.stderr.splitlines() if "Skipping bad record" in l]
  assert len(skips) == 2, skips
  assert f"{corpus}, record 7" in skips[0] and f"{corpus}, record 31" in skips[1]
  assert sum("skipped 2 bad records, kept 38" in l for l in done.stderr.splitlines()) == 1
  # 30 steps of 2 rows is more than one pass over 38 documents: no report per pass.
  assert os.path.isdir(tmp_path / "run" / "checkpoints" / "30")


# Every value is refused in-process by the config that holds it
# (tests/training/test_run_config.py); as processes, one per path to the error line: a
# TrainConfig field, a DataConfig field, and the corpus built at start-up. The others are
# the same path with another field: slow.
_SAME_PATH = pytest.mark.slow


@pytest.mark.parametrize("binding,setting", [
    ("--gin.TRAIN_STEPS=0", "TRAIN_STEPS=0"),
    pytest.param("--gin.TRAIN_STEPS=-3", "TRAIN_STEPS=-3", marks=_SAME_PATH),
    ("--gin.BATCH_SIZE=0", "BATCH_SIZE=0"),
    pytest.param("--gin.TASK_FEATURE_LENGTHS={'targets': 0}", "TASK_FEATURE_LENGTHS=",
                 marks=_SAME_PATH),
    pytest.param("--gin.StepConfig.microbatches=3", "StepConfig.microbatches=3",
                 marks=_SAME_PATH),
    pytest.param("--gin.TrainConfig.log_every=0", "TrainConfig.log_every=0", marks=_SAME_PATH),
    pytest.param("--gin.CheckpointConfig.keep=0", "CheckpointConfig.keep=0", marks=_SAME_PATH),
    pytest.param("--gin.StepConfig.nan_policy='ignore'", "StepConfig.nan_policy='ignore'",
                 marks=_SAME_PATH),
    ("--gin.AnchoredMixtureRates.annotation_only_rate=1.5", "annotation_only_rate"),
])
def test_a_number_a_run_cannot_use_is_refused_at_start_up(tmp_path, vocab, binding, setting):
  corpus = _corpus(tmp_path / "docs.jsonl")
  extra = [binding]
  if "AnchoredMixtureRates" in binding:  # The storyworld corpus's, built at start-up.
    extra = ["--gin_file=gin/experiments/storyworld_data.gin", binding,
             "--gin.MIXTURE_OR_TASK_NAME='storyworld_anchored_sft_mixture'", "--gin.VOCAB_SIZE=1024"]
  assert_one_line_error(_train(tmp_path, vocab, corpus, *extra), "train", setting)
  assert not os.path.exists(tmp_path / "run" / "checkpoints" / "2")
