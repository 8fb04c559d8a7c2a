"""An unknown task or mixture name: one UnknownTaskError naming it and the closest names."""
import pytest
import seqio
import tensorflow as tf

import tasks  # noqa: F401  (registers synthetic_tokens)
from annotanchor.data import pipeline, reporting
from annotanchor.data.registration import UnknownTaskError, mixture_or_task
from annotanchor.errors import UserError
from tests.faults.conftest import assert_one_line_error, run

_NAMES = ("zz_story_pretrain", "zz_story_pretrain_plain", "zz_story_annotation_only",
          "zz_story_annotation_only_sft_context", "zz_story_sft", "zz_story_sft_anchored")


@pytest.fixture
def story_tasks():
  """Tasks with names like a corpus's, removed afterwards."""
  vocabulary = seqio.PassThroughVocabulary(size=8)
  source = seqio.FunctionDataSource(
      lambda split, shuffle_files: tf.data.Dataset.from_tensors({"targets": [1, 2]}),
      splits=["train"])
  for name in _NAMES:
    seqio.TaskRegistry.add(name, source=source,
                           output_features={"targets": seqio.Feature(vocabulary)})
  yield
  for name in _NAMES:
    seqio.TaskRegistry.remove(name)


def test_a_registered_name_gives_its_task():
  assert mixture_or_task("synthetic_tokens").name == "synthetic_tokens"


def test_a_misspelt_name_is_a_user_error_offering_the_closest_names_first(story_tasks):
  with pytest.raises(UnknownTaskError) as error:
    mixture_or_task("zz_story_pretrian")
  assert isinstance(error.value, UserError) and isinstance(error.value, ValueError)
  message = str(error.value)
  assert message.startswith("MIXTURE_OR_TASK_NAME='zz_story_pretrian' is not a registered")
  closest = message.split("closest: ")[1].split(", ")
  assert closest[0] == "zz_story_pretrain"
  # A few of the 7 registered names, the least like it left out.
  assert len(closest) == 5 and "synthetic_tokens" not in closest


def test_the_setting_named_is_the_callers(story_tasks):
  with pytest.raises(UnknownTaskError, match=r"^task_name='zz_story' .*closest: zz_story_sft"):
    reporting.token_report("zz_story")


def test_the_data_pipeline_looks_names_up_through_the_helper():
  with pytest.raises(UnknownTaskError, match="'no_such_task'"):
    pipeline.get_dataset("no_such_task", {"targets": 8}, 2)


def test_train_with_an_unknown_task_is_one_line_exit_2_naming_it(tmp_path):
  result = run(["train", "--gin_file=gin/models/tiny.gin", "--gin_file=gin/runs/pretrain.gin",
                f"--gin.MODEL_DIR='{tmp_path}'", "--gin.MIXTURE_OR_TASK_NAME='no_such_task'"])
  assert_one_line_error(result, "train", "UnknownTaskError", "'no_such_task'",
                        "closest: synthetic_tokens")
  assert not (tmp_path / "checkpoints").exists()
