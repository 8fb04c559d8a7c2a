"""What a command is told about a checkpoint's network (annotanchor/training/given_model.py):
a model gin file's whole network and MODEL_OVERRIDES, as values the command receives, each
field checked against the checkpoint by `metadata.resolve_model`."""
import dataclasses
import re

import gin
import pytest

from annotanchor import gin_utils
from annotanchor.data.annotations import AnnotationFormat
from annotanchor.data.prompts import PromptTemplate
from annotanchor.errors import SettingError
from annotanchor.model.config import TransformerConfig
from annotanchor.training import metadata
from annotanchor.training.given_model import GivenModel

SAVED = TransformerConfig(vocab_size=64, d_model=32, num_layers=2, num_heads=2, num_kv_heads=1,
                          head_dim=16, mlp_dim=48, max_len=512)
META = metadata.RunMetadata(model=SAVED, vocabulary={"kind": "byte"},
                            template=PromptTemplate(annotation_format=AnnotationFormat()))


def test_nothing_given_is_the_checkpoints_network():
  assert metadata.resolve_model(META, GivenModel(), "ckpt") == SAVED


def test_an_override_of_a_run_setting_applies():
  got = metadata.resolve_model(META, GivenModel(overrides={"max_len": 128}), "ckpt")
  assert got == dataclasses.replace(SAVED, max_len=128)


def test_a_model_files_network_is_checked_whole_and_overrides_go_over_it():
  model_file = dataclasses.replace(SAVED, max_len=256)
  assert metadata.resolve_model(META, GivenModel(config=model_file), "ckpt") == model_file
  both = GivenModel(config=model_file, overrides={"max_len": 128, "dtype": "bfloat16"})
  assert metadata.resolve_model(META, both, "ckpt") == dataclasses.replace(
      SAVED, max_len=128, dtype="bfloat16")


@pytest.mark.parametrize("given, message", [
    (GivenModel(overrides={"num_layers": 3}),
     "MODEL_OVERRIDES['num_layers']=3 contradicts the checkpoint, trained with num_layers=2"),
    (GivenModel(config=dataclasses.replace(SAVED, num_layers=3)),
     "TransformerConfig.num_layers=3 contradicts the checkpoint, trained with num_layers=2"),
    # An override cannot make a model file's contradiction agree: each is named.
    (GivenModel(config=dataclasses.replace(SAVED, d_model=64), overrides={"max_len": 64}),
     "TransformerConfig.d_model=64 contradicts"),
])
def test_a_contradiction_is_named_by_its_setting(given, message):
  with pytest.raises(metadata.CheckpointSettingsError, match="^" + re.escape(message)):
    metadata.resolve_model(META, given, "ckpt")


def test_a_checkpoint_without_metadata_needs_the_model_file():
  with pytest.raises(metadata.CheckpointSettingsError, match="give its model gin file"):
    metadata.resolve_model(None, GivenModel(overrides={"max_len": 128}), "ckpt")
  given = GivenModel(config=SAVED, overrides={"max_len": 128})
  assert metadata.resolve_model(None, given, "ckpt") == dataclasses.replace(SAVED, max_len=128)


def test_an_unknown_field_or_a_bad_value_is_refused_naming_model_overrides():
  message = ("MODEL_OVERRIDES={'max_lenn': 1}: 'max_lenn' is no TransformerConfig field "
             "(did you mean 'max_len'?)")
  with pytest.raises(SettingError, match="^" + re.escape(message) + "$"):
    GivenModel(overrides={"max_lenn": 1})
  with pytest.raises(SettingError, match="^MODEL_OVERRIDES="):
    GivenModel(overrides=[("max_len", 1)])
  with pytest.raises(SettingError, match=r"^MODEL_OVERRIDES=\{'remat_policy': 'most'\}: "
                                         r"remat_policy='most'"):
    metadata.resolve_model(META, GivenModel(overrides={"remat_policy": "most"}), "ckpt")


def test_the_model_file_hands_its_network_to_the_sampling_commands():
  """tiny.gin's network, flags included, reaches infer.model; MODEL_OVERRIDES beside it."""
  gin.clear_config()
  try:
    gin_utils.parse_and_bind(
        ["--gin_file=gin/models/tiny.gin", "--gin_file=gin/runs/infer.gin",
         "--gin.CHECKPOINT_PATH='c'", "--gin.OUTPUT_DIR='o'", "--gin.ARM='a'",
         "--gin.config.TransformerConfig.max_len=128",
         "--gin.MODEL_OVERRIDES={'dtype': 'bfloat16'}"])
    given = gin.get_configurable(GivenModel)()
  finally:
    gin.clear_config()
  assert (given.config.num_layers, given.config.max_len) == (2, 128)
  assert given.overrides == {"dtype": "bfloat16"}
