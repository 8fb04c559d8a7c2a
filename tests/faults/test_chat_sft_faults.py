"""`annotanchor train` on a chat SFT corpus (`messages` records), run as a process: a good
corpus trains anchored chat SFT; a bad conversation is one line naming record and message."""
import json
import os

import pytest

from annotanchor.data import vocabulary
from tests.faults.conftest import assert_one_line_error, run, write_corpus_gin

GOOD = {"messages": [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Tell a story of the sea."},
    {"role": "assistant", "content": "The waves rolled over the harbour.",
     "annotation": "<ann> topic:sea </ann>"},
    {"role": "user", "content": "And the forest?"},
    {"role": "assistant", "content": "Tall trees hid the old path.",
     "annotation": {"topic": "forest"}}]}


@pytest.fixture(scope="module")
def vocab(tmp_path_factory):
  texts = [m["content"] for m in GOOD["messages"]] + ["topic:sea topic:forest"]
  path = tmp_path_factory.mktemp("vocab") / "spm.model"
  return vocabulary.train_sentencepiece(texts * 20, str(path), vocab_size=400)


def _train(tmp_path, vocab, records, task="user_sft_anchored"):
  corpus = tmp_path / "chat.jsonl"
  corpus.write_text("".join(json.dumps(r) + "\n" for r in records))
  corpus_gin = write_corpus_gin(
      tmp_path / "corpus.gin", vocabulary_path=vocab, sft={"train": str(corpus)},
      sft_format="messages", cache_dir=str(tmp_path / "cache"))
  return str(corpus), run(
      ["train", "--gin_file=gin/models/tiny.gin", "--gin_file=gin/runs/sft.gin",
       f"--gin_file={corpus_gin}", f"--gin.MODEL_DIR='{tmp_path / 'run'}'",
       "--gin.TRAIN_STEPS=2", "--gin.BATCH_SIZE=2", "--gin.TASK_FEATURE_LENGTHS={'targets': 64}",
       f"--gin.MIXTURE_OR_TASK_NAME='{task}'", "--gin.VOCAB_SIZE=512",
       "--gin.INITIAL_CHECKPOINT_PATH=None"])


def test_a_chat_corpus_trains_anchored_sft(tmp_path, vocab):
  _, done = _train(tmp_path, vocab, [GOOD] * 8)
  assert done.returncode == 0, done.stderr[-3000:]
  assert os.path.isdir(tmp_path / "run" / "checkpoints" / "2")


def test_an_assistant_turn_without_annotation_is_one_line(tmp_path, vocab):
  bad = json.loads(json.dumps(GOOD))
  del bad["messages"][4]["annotation"]
  corpus, done = _train(tmp_path, vocab, [GOOD, GOOD, bad, GOOD])
  assert_one_line_error(done, "train", "SourceError", f"{corpus}, record 3",
                        "messages[4] (assistant) has no 'annotation'")
