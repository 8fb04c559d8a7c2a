"""The imported checkpoint is what the other commands take: fine-tuned by `train` from
INITIAL_CHECKPOINT_PATH with MODEL_DIR/model.gin, then exported with the imported source's
token ids and config fields."""
import dataclasses
import json
import os

import numpy as np

from annotanchor.interchange import safetensors_io
from tests.faults.conftest import run
from tests.faults.test_convert_faults import TINY, import_hf, write_hf

# The synthetic_tokens task's 128 ids fit the embedding.
MODEL = dataclasses.replace(TINY, vocab_size=128)


def test_train_from_an_import_then_export_it(tmp_path):
  hf_dir = write_hf(tmp_path / "hf", MODEL, hf_changes={"eos_token_id": 1, "bos_token_id": 7})
  imported = tmp_path / "imported"
  assert import_hf(hf_dir, imported).returncode == 0
  tuned = tmp_path / "tuned"
  done = run(["train", f"--gin_file={imported / 'model.gin'}", "--gin_file=gin/runs/sft.gin",
              f"--gin.MODEL_DIR='{tuned}'", f"--gin.INITIAL_CHECKPOINT_PATH='{imported}'",
              "--gin.MIXTURE_OR_TASK_NAME='synthetic_tokens'", "--gin.TRAIN_STEPS=2",
              "--gin.BATCH_SIZE=4", "--gin.TASK_FEATURE_LENGTHS={'targets': 32}"], timeout=300)
  assert done.returncode == 0, done.stderr[-3000:]
  assert f"Initialising parameters from {imported}" in done.stderr
  out = tmp_path / "out"
  done = run(["convert", "export-hf", f"--gin.CHECKPOINT_PATH='{tuned}'",
              f"--gin.HF_DIR='{out}'", f"--gin.HF_SOURCE='{imported}'"])
  assert done.returncode == 0, done.stderr[-3000:]
  config = json.loads((out / "config.json").read_text())
  assert config["model_type"] == "llama" and config["bos_token_id"] == 7
  original, exported = safetensors_io.read_index(hf_dir), safetensors_io.read_index(str(out))
  assert set(original) == set(exported)
  moved = [n for n in original if not np.array_equal(
      safetensors_io.read_tensor(original[n]), safetensors_io.read_tensor(exported[n]))]
  assert "model.layers.0.mlp.down_proj.weight" in moved  # Two steps of training moved it.
  assert os.path.exists(out / "generation_config.json")


def test_the_imported_tokenizer_is_the_checkpoints_vocabulary(tmp_path):
  """Recorded as train records a HuggingFaceVocabulary, so infer and serve rebuild it from
  the checkpoint alone; and exported again with the model."""
  from annotanchor.data.hf_vocabulary import HuggingFaceVocabulary
  from annotanchor.training import metadata
  from tests import hf_tokenizer

  hf_dir = write_hf(tmp_path / "hf", dataclasses.replace(TINY, vocab_size=512))
  hf_tokenizer.build(hf_dir)
  imported = tmp_path / "imported"
  done = import_hf(hf_dir, imported)
  assert done.returncode == 0, done.stderr[-3000:]
  saved, model_dir = metadata.read_metadata(str(imported))
  assert saved.vocabulary["kind"] == "huggingface"
  rebuilt = metadata.vocabulary_from(saved.vocabulary, model_dir)
  original = HuggingFaceVocabulary(hf_dir)
  assert rebuilt.sha256 == original.sha256
  assert os.path.dirname(rebuilt.files()[0]).startswith(str(imported / "vocabulary"))
  text = "the cat sat on the mat, héllo"
  assert rebuilt.encode(text) == original.encode(text) and rebuilt.decode(rebuilt.encode(text)) == text
  out = tmp_path / "out"
  done = run(["convert", "export-hf", f"--gin.CHECKPOINT_PATH='{imported}'", f"--gin.HF_DIR='{out}'"])
  assert done.returncode == 0, done.stderr[-3000:]
  assert (out / "tokenizer.json").read_bytes() == (tmp_path / "hf" / "tokenizer.json").read_bytes()
