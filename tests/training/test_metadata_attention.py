"""The attention kernel is a run setting: a checkpoint takes another one (and checkpoints
written before the setting existed read as "auto")."""
import dataclasses

import pytest

from annotanchor.data.annotations import AnnotationFormat
from annotanchor.data.prompts import PromptTemplate
from annotanchor.model.config import TransformerConfig
from annotanchor.training import metadata
from annotanchor.training.given_model import GivenModel

MODEL = TransformerConfig(vocab_size=64, d_model=32, num_layers=1, num_heads=2, num_kv_heads=1,
                          head_dim=16, mlp_dim=48, attention="splash")


def _meta(model=MODEL):
  template = PromptTemplate(annotation_format=AnnotationFormat())
  return metadata.RunMetadata(model=model, vocabulary={"kind": "byte"}, template=template)


def test_attention_binding_overrides_the_checkpoint():
  given = GivenModel(config=dataclasses.replace(MODEL, attention="xla"))
  assert metadata.resolve_model(_meta(), given, "ckpt") == given.config
  wider = GivenModel(config=dataclasses.replace(given.config, d_model=64))
  with pytest.raises(metadata.CheckpointSettingsError, match="d_model=64 contradicts"):
    metadata.resolve_model(_meta(), wider, "ckpt")
  got = metadata.resolve_model(_meta(), GivenModel(overrides={"attention": "xla"}), "ckpt")
  assert got == given.config


def test_checkpoints_from_before_the_setting_read_as_auto():
  meta = _meta().to_json()
  del meta["model"]["attention"]
  assert metadata.RunMetadata.from_json(meta).model.attention == "auto"
