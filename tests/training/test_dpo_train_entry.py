"""`annotanchor train` with gin/runs/dpo.gin, as a user runs it on a pairs file: anchored DPO
from a tiny checkpoint learns the preference and writes checkpoints that describe
themselves; a bad pair is one line naming file and record."""
import json
import os

import numpy as np
import pytest

from annotanchor.data import vocabulary
from annotanchor.model.config import TransformerConfig
from annotanchor.training import metadata
from tests import random_checkpoint
from tests.faults.conftest import assert_one_line_error, run

# gin/models/tiny.gin's network with VOCAB_SIZE=512.
TINY_512 = TransformerConfig(vocab_size=512, d_model=64, num_layers=2, num_heads=4,
                             num_kv_heads=2, head_dim=16, mlp_dim=192, max_len=512, qk_norm=True)
PAIRS = [{"prompt": f"Tell story {i}.", "chosen": "The calm sea sang all night.",
          "rejected": "No.", "chosen_annotation": {"topic": "sea"},
          "rejected_annotation": "<ann> topic:none </ann>"} for i in range(8)]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
  root = tmp_path_factory.mktemp("dpo")
  texts = [p["prompt"] for p in PAIRS] + ["The calm sea sang all night.", "No.",
                                          "<ann> topic:sea topic:none </ann>"]
  spm = vocabulary.train_sentencepiece(texts * 20, str(root / "spm.model"), vocab_size=400)
  reference = random_checkpoint.save(str(root / "sft"), TINY_512)
  return root, spm, reference


def _train(root, spm, reference, pairs, model_dir, *flags):
  path = root / "pairs.jsonl"
  path.write_text("".join(json.dumps(p) + "\n" for p in pairs))
  return str(path), run([
      "train", "--gin_file=gin/models/tiny.gin", "--gin_file=gin/runs/dpo.gin",
      f"--gin.MODEL_DIR='{model_dir}'", f"--gin.INITIAL_CHECKPOINT_PATH='{reference}'",
      f"--gin.VOCABULARY='{spm}'", f"--gin.PAIRS='{path}'", "--gin.VOCAB_SIZE=512",
      "--gin.BATCH_SIZE=4", "--gin.TASK_FEATURE_LENGTHS={'targets': 48}",
      f"--gin.prefs/PreferenceCorpus.cache_dir='{root / 'cache'}'", *flags], timeout=300)


def test_anchored_dpo_learns_the_preference_and_describes_itself(setup):
  root, spm, reference = setup
  model_dir = root / "dpo"
  _, done = _train(root, spm, reference, PAIRS, model_dir, "--gin.TRAIN_STEPS=8",
                   "--gin.TrainConfig.log_every=1", "--gin.OptimizerConfig.learning_rate=1e-2",
                   "--gin.OptimizerConfig.warmup_steps=1")
  assert done.returncode == 0, done.stderr[-3000:]
  with open(model_dir / "train_metrics.jsonl") as f:
    records = [json.loads(line) for line in f]
  assert [r["step"] for r in records] == list(range(1, 9))
  # Step 1: the policy is the reference (loss log 2); then the chosen answers win.
  np.testing.assert_allclose(records[0]["loss"], np.log(2), rtol=1e-5)
  assert records[-1]["loss"] < records[0]["loss"]
  assert records[-1]["reward_margin"] > records[0]["reward_margin"] + 0.1
  assert records[-1]["reward_accuracy"] == 1.0
  meta, _ = metadata.read_metadata(str(model_dir))
  assert meta is not None and meta.model == TINY_512
  assert meta.template.annotation_format.open == "<ann>"
  config = (model_dir / "config.gin").read_text()
  assert "PreferenceConfig" in config and "prefs_preference_anchored" in config


@pytest.mark.slow
def test_a_pair_without_its_annotation_is_one_line(setup):
  root, spm, reference = setup
  bad = {k: v for k, v in PAIRS[0].items() if k != "rejected_annotation"}
  path, done = _train(root, spm, reference, [PAIRS[0], bad], root / "bad", "--gin.TRAIN_STEPS=2")
  assert_one_line_error(done, "train", "SourceError", f"{path}, record 2",
                        "no 'rejected_annotation'")


@pytest.mark.slow
def test_dpo_rehearses_annotation_only_sequences_of_a_document_corpus(setup, tmp_path):
  """The pairs beside one annotation-only row per pair from a JsonlCorpus's documents."""
  root, spm, reference = setup
  docs = tmp_path / "docs.jsonl"
  docs.write_text("".join(json.dumps({"text": "The calm sea sang all night.",
                                      "annotations": [{"topic": "sea"}]}) + "\n"
                          for _ in range(8)))
  corpora = tmp_path / "corpora.gin"
  corpora.write_text("\n".join([
      "from __gin__ import dynamic_registration",
      "from annotanchor.data import preference_corpus",
      "from annotanchor.data import registration",
      "registration.configured_corpora.corpora = "
      "[@prefs/preference_corpus.PreferenceCorpus(), @user/registration.JsonlCorpus()]",
      "user/registration.JsonlCorpus.name = 'user'",
      f"user/registration.JsonlCorpus.vocabulary_path = {spm!r}",
      f"user/registration.JsonlCorpus.documents = {{'train': {str(docs)!r}}}",
      f"user/registration.JsonlCorpus.cache_dir = {str(tmp_path / 'cache')!r}"]) + "\n")
  model_dir = tmp_path / "dpo"
  _, done = _train(root, spm, reference, PAIRS, model_dir, "--gin.TRAIN_STEPS=2",
                   "--gin.TrainConfig.log_every=1", f"--gin_file={corpora}",
                   "--gin.PreferenceConfig.rehearsal_task='user_annotation_only'",
                   "--gin.PreferenceConfig.rehearsal_weight=0.5")
  assert done.returncode == 0, done.stderr[-3000:]
  with open(model_dir / "train_metrics.jsonl") as f:
    records = [json.loads(line) for line in f]
  # Step 1: DPO's log 2 plus half the rehearsed rows' mean cross-entropy.
  first = records[0]
  assert first["rehearsal_cross_entropy"] > 0
  np.testing.assert_allclose(first["loss"], np.log(2) + 0.5 * first["rehearsal_cross_entropy"],
                             rtol=1e-5)
