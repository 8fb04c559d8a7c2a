"""The annotation knobs (dropout_rate, key_only_rate, mask_annotation) are a corpus's fields,
passed to the preprocessors when it registers its tasks: no preprocessor reads gin, and the
old bindings of the preprocessors are refused in one line."""
import numpy as np
import pytest
import seqio

import tasks.storyworld  # noqa: F401  (Storyworld's gin name)
from annotanchor import gin_utils
from annotanchor.data import registration, validated
from annotanchor.data.annotations import AnnotationFormat
from annotanchor.data.prompts import PromptTemplate
from annotanchor.errors import SettingError
from tests.data.test_corpus_template import DOC, SFT, _source

FMT = AnnotationFormat()
ANGLE_SFT = {**SFT, "annotation": "<ann> topic:sea </ann>"}
ANGLE_DOC = {**DOC, "annotations": ["<ann> topic:sea </ann>", "<ann> topic:birds </ann>"]}


def _first(task_name):
  ds = seqio.get_mixture_or_task(task_name).get_dataset(
      {"targets": 128}, split="train", shuffle=False, seed=0)
  return next(ds.as_numpy_iterator())


def _register(prefix, **knobs):
  vocab = seqio.ByteVocabulary()
  sft_knobs = {k: v for k, v in knobs.items() if k != "dropout_rate"}
  registration.register_document_tasks(
      prefix, _source([ANGLE_DOC], validated.Documents(FMT)), vocab, PromptTemplate(),
      dropout_rate=knobs.get("dropout_rate", 0.0))
  registration.register_sft_tasks(prefix, _source([ANGLE_SFT], validated.SftExamples(FMT)),
                                  vocab, PromptTemplate(), **sft_knobs)


def test_the_knobs_given_at_registration_reach_the_examples():
  _register("knobs_default")
  _register("knobs_set", dropout_rate=1.0, key_only_rate=1.0, mask_annotation=False)
  default, unmasked = _first("knobs_default_sft_anchored"), _first("knobs_set_sft_anchored")
  in_annotation = default["targets_annotation_mask"] == 1
  assert np.array_equal(default["targets"], unmasked["targets"])
  assert (default["targets_loss_weights"][in_annotation] == 0).all()
  assert (unmasked["targets_loss_weights"][in_annotation] == 1).all()
  assert _first("knobs_default_pretrain")["targets_annotation_mask"].any()
  assert not _first("knobs_set_pretrain")["targets_annotation_mask"].any()  # all dropped


@pytest.mark.parametrize("knob,value", [("dropout_rate", 1.5), ("key_only_rate", -0.1),
                                        ("mask_annotation", "no")])
def test_a_corpus_refuses_a_knob_naming_it(knob, value):
  with pytest.raises(SettingError, match=f"JsonlCorpus.{knob}={value!r}: expected"):
    registration.JsonlCorpus(name="k", vocabulary_path="v", **{knob: value})


def test_storyworld_carries_its_knobs_from_gin():
  import gin
  gin.clear_config()
  try:
    gin_utils.parse_and_bind(["--gin_file=gin/experiments/storyworld_data.gin",
                              "--gin.Storyworld.mask_annotation=False",
                              "--gin.Storyworld.key_only_rate=0.5"])
    (world,) = registration.configured_corpora()
  finally:
    gin.clear_config()
  assert (world.mask_annotation, world.key_only_rate, world.dropout_rate) == (False, 0.5, 0.0)


@pytest.mark.parametrize("old", ["anchored_sft.mask_annotation=False",
                                 "annotated_pretraining.dropout_rate=0.1",
                                 "chat_sft.key_only_rate=0.1"])
def test_the_preprocessors_old_bindings_are_refused_in_one_line(old):
  import gin
  gin.clear_config()
  try:
    with pytest.raises(gin_utils.GinFlagError) as refused:
      gin_utils.parse_and_bind(["--gin_file=gin/experiments/storyworld_data.gin",
                                f"--gin.{old}"])
  finally:
    gin.clear_config()
  message = gin_utils.user_message(refused.value)
  assert "\n" not in message and old.split("=")[0].split(".")[0] in message
