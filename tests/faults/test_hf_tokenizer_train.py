"""`annotanchor train` / `infer` with a Hugging Face tokenizer, run as processes: a JSONL
corpus trains with the tokenizer's markers as special tokens, the checkpoint carries the
tokenizer files so `infer` needs only CHECKPOINT_PATH, and a tokenizer larger than the
model's embedding is one line naming both sizes."""
import json
import os

import pytest

from annotanchor.data.hf_vocabulary import HuggingFaceVocabulary
from annotanchor.evaluation.samples import read_samples
from tests import hf_tokenizer, random_checkpoint
from tests.faults.conftest import assert_one_line_error, infer_anchored, run

DOC = {"text": "the cat sat on the mat.\n\nthe dog ran to the harbour, héllo 🙂",
       "annotations": ["<ann> topic:cat </ann>", "<ann> topic:dog </ann>"]}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
  root = tmp_path_factory.mktemp("hf")
  tokenizer = hf_tokenizer.build(root / "tok")
  corpus = root / "docs.jsonl"
  corpus.write_text((json.dumps(DOC) + "\n") * 8)
  corpus_flags = ["--gin_file=gin/runs/user_corpus.gin", f"--gin.VOCABULARY='{tokenizer}'",
                  f"--gin.DOCUMENTS={{'train': '{corpus}'}}",
                  f"--gin.user/registration.JsonlCorpus.cache_dir='{root / 'cache'}'",
                  "--gin.hf_vocabulary.HuggingFaceVocabulary.markers='special'"]
  size = HuggingFaceVocabulary(tokenizer, markers="special").vocab_size
  return root, corpus_flags, size


def _train(model_dir, corpus_flags, vocab_size):
  return run(["train", "--gin_file=gin/models/tiny.gin", "--gin_file=gin/runs/pretrain.gin",
              *corpus_flags, f"--gin.MODEL_DIR='{model_dir}'",
              "--gin.TRAIN_STEPS=2", "--gin.BATCH_SIZE=2",
              "--gin.TASK_FEATURE_LENGTHS={'targets': 64}",
              "--gin.MIXTURE_OR_TASK_NAME='user_pretrain'", f"--gin.VOCAB_SIZE={vocab_size}"],
             timeout=300)


@pytest.fixture(scope="module")
def model_dir(setup):
  root, corpus_flags, size = setup
  path = root / "run"
  done = _train(path, corpus_flags, size)
  assert done.returncode == 0, done.stderr[-3000:]
  # The grown size is reported where the vocabulary is built.
  assert f"vocabulary size {size}" in done.stderr, done.stderr[-3000:]
  return path


def test_training_copies_the_tokenizer_and_infer_needs_only_the_checkpoint(model_dir, setup):
  root, _, size = setup
  assert os.path.isdir(model_dir / "checkpoints" / "2")
  (copy,) = os.listdir(model_dir / "vocabulary")
  assert sorted(os.listdir(model_dir / "vocabulary" / copy)) == ["tokenizer.json",
                                                                 "tokenizer_config.json"]
  prompts = root / "prompts.jsonl"
  prompts.write_text(json.dumps({"id": "p0", "prompt": "Tell a story of the cat."}) + "\n")
  out = root / "infer"
  done = infer_anchored(str(model_dir), out, str(prompts))
  assert done.returncode == 0, done.stderr[-3000:]
  samples = read_samples(str(out / "samples.jsonl"))
  assert len(samples) == 2 and all(s.annotation.startswith("<ann>") for s in samples)
  # The copied tokenizer, with the run's settings, is the vocabulary the samples used.
  copied = HuggingFaceVocabulary(str(model_dir / "vocabulary" / copy), markers="special")
  assert copied.vocab_size == size and copied.sha256 == copy


def test_a_tokenizer_larger_than_the_embedding_is_one_line(setup, tmp_path):
  _, corpus_flags, size = setup
  done = _train(tmp_path / "run", corpus_flags, size - 3)
  assert_one_line_error(done, "train", f"vocab_size={size - 3}", f"{size} ids")
  assert not os.path.exists(tmp_path / "run" / "checkpoints")


def test_serving_a_checkpoint_with_a_larger_tokenizer_is_one_line(setup, tmp_path):
  root, _, _ = setup
  checkpoint = random_checkpoint.save(str(tmp_path / "model"), random_checkpoint.TINY_BYTES)
  size = HuggingFaceVocabulary(str(root / "tok")).vocab_size
  assert size > random_checkpoint.TINY_BYTES.vocab_size
  done = run(["serve", "--gin_file=gin/models/tiny.gin", "--gin_file=gin/runs/serve.gin",
              f"--gin.CHECKPOINT_PATH='{checkpoint}'", f"--gin.VOCABULARY_PATH='{root / 'tok'}'",
              "--gin.VOCAB_SIZE=264", "--gin.config.TransformerConfig.max_len=128",
              "--gin.PORT=0", "--gin.MODE='direct'"])
  assert_one_line_error(done, "serve", f"has {size} ids", "vocab_size=264")
