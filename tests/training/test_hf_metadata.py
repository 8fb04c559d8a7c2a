"""Checkpoint metadata of a Hugging Face vocabulary: files copied under their digest, the
vocabulary rebuilt from the copy with the recorded settings, an altered copy refused."""
import json
import os
import shutil

import pytest

from annotanchor.data.hf_vocabulary import HuggingFaceVocabulary
from annotanchor.training import metadata
from tests import hf_tokenizer


def test_describe_copies_and_rebuilds_the_same_ids(tmp_path):
  source = hf_tokenizer.build(tmp_path / "tok", pad_token="<|pad|>")
  vocab = HuggingFaceVocabulary(source, markers="special", eos_token="<|endoftext|>")
  model_dir = str(tmp_path / "run")
  description = json.loads(json.dumps(metadata.describe_vocabulary(vocab, model_dir)))
  assert description["kind"] == "huggingface" and description["size"] == vocab.vocab_size
  copied = os.path.join(model_dir, description["dir"])
  assert description["dir"] == os.path.join("vocabulary", vocab.sha256)
  assert sorted(os.listdir(copied)) == ["tokenizer.json", "tokenizer_config.json"]
  shutil.rmtree(source)  # The copy alone is enough.
  rebuilt = metadata.vocabulary_from(description, model_dir)
  assert rebuilt == vocab and metadata.vocabulary_digest(rebuilt) == vocab.sha256
  assert (rebuilt.pad_id, rebuilt.eos_id, rebuilt.markers) == (vocab.pad_id, vocab.eos_id,
                                                               "special")
  text = "<ann> topic:cat </ann> the cat"
  assert rebuilt.encode(text) == vocab.encode(text)


def test_a_copy_altered_and_a_source_gone_are_refused(tmp_path):
  source = hf_tokenizer.build(tmp_path / "tok")
  vocab = HuggingFaceVocabulary(os.path.join(source, "tokenizer.json"))
  model_dir = str(tmp_path / "run")
  description = metadata.describe_vocabulary(vocab, model_dir)
  shutil.rmtree(source)
  config = os.path.join(model_dir, description["dir"], "tokenizer_config.json")
  with open(config, "w") as f:
    json.dump({"eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
               "model_max_length": 7}, f)
  with pytest.raises(metadata.CheckpointSettingsError, match="is neither at"):
    metadata.vocabulary_from(description, model_dir)
