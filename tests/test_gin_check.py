"""annotanchor.gin_check: a command's gin flags checked as its main parses them, the culprit
named."""
import pytest

from annotanchor import gin_check

TRAIN = ["annotanchor", "train", "--gin_file=gin/models/tiny.gin",
         "--gin_file=gin/runs/sft.gin", "--gin_file=gin/experiments/storyworld_data.gin",
         "--gin.MODEL_DIR='runs/a'", "--gin.MIXTURE_OR_TASK_NAME='storyworld_sft'",
         "--gin.INITIAL_CHECKPOINT_PATH='runs/b'"]
INFER = ["annotanchor", "infer", "--gin_file=gin/models/tiny.gin",
         "--gin_file=gin/runs/infer.gin", "--gin_file=gin/experiments/storyworld_data.gin",
         "--gin.CHECKPOINT_PATH='runs/a'", "--gin.OUTPUT_DIR='runs/a/samples'",
         "--gin.MIXTURE_OR_TASK_NAME='storyworld_eval_prompts'", "--gin.ARM='a'"]


def test_split_command():
  assert gin_check.split_command(["annotanchor", "infer", "--gin.A=1"]) == (
      "annotanchor.infer", ["--gin.A=1"])
  assert gin_check.split_command(["python", "-m", "tasks.storyworld.build", "--gin.A=1"]) == (
      "tasks.storyworld.build", ["--gin.A=1"])


@pytest.mark.parametrize("argv", [TRAIN, INFER + ["--gin.MODE='anchored'"]])
def test_a_valid_command_passes(argv):
  assert gin_check.check(argv) == (None, None)


@pytest.mark.parametrize("extra, culprit, message", [
    (["--gin.AnchoredMixtureRates.annotation_only_rat=0.3"], 0,
     "Configurable 'AnchoredMixtureRates' doesn't have a parameter named 'annotation_only_rat'"),
    (["--gin.TRAIN_STEPS=3)"], 0, "Expected newline"),
    (["--gin.Nope.x=1"], 0, "No configurable matching 'Nope'"),
    (["--gin.BATCH_SIZE=4", "--gin.TRAIN_STEPS=%NOPE"], 1, "no macro named 'NOPE'"),
    (["--gin.TRAIN_STEPZ=5"], 0,
     "no configurable or macro named 'TRAIN_STEPZ' (did you mean TRAIN_STEPS?)"),
    (["--gin.MODEL_DIR=%gin.REQUIRED"], 0, "MODEL_DIR: required but not set"),
    (["--gin.X=[1, 2"], 0, "EOF in multi-line statement"),
    (["--gin_file=gin/runs/nope.gin"], None, "gin/runs/nope.gin"),
    (["stray"], None, "unexpected arguments ['stray']"),
])
def test_the_first_failure_names_its_binding(extra, culprit, message):
  binding, error = gin_check.check(TRAIN + extra)
  assert binding == (None if culprit is None else extra[culprit])
  assert message in error and "\n" not in error
  if culprit is not None:  # The binding is named beside the error, not again inside it.
    assert extra[culprit] not in error


def test_a_required_macro_left_unset_is_named():
  argv = [a for a in TRAIN if not a.startswith("--gin.MODEL_DIR=")]
  assert gin_check.check(argv) == (
      None, "MODEL_DIR: required but not set (give --gin.MODEL_DIR=VALUE)")


def test_infer_decoding_settings_are_checked():
  assert gin_check.check(INFER + ["--gin.MODE='anchord'"]) == (
      None, "mode='anchord'; expected one of ('direct', 'anchored', 'given_annotation')")


@pytest.mark.parametrize("binding, message", [
    ("--gin.StepConfig.microbatches=3", "StepConfig.microbatches=3: expected a positive "
     "integer that divides BATCH_SIZE=16"),
    ("--gin.BATCH_SIZE=0", "BATCH_SIZE=0: expected a positive integer"),
    ("--gin.CheckpointConfig.every=0", "CheckpointConfig.every=0: expected a positive integer"),
])
def test_train_numbers_are_checked_before_the_run(binding, message):
  """The whole TrainConfig is built by the check: the demo refuses a number before step 1."""
  assert gin_check.check(TRAIN + [binding]) == (None, message)


def test_first_failure_reports_the_first_failing_command():
  commands = [{"title": "ok", "argv": TRAIN},
              {"title": "bad", "argv": TRAIN + ["--gin.TrainConfig.train_step=1"]},
              {"title": "worse", "argv": TRAIN + ["--gin.X=("]}]
  failure = gin_check.first_failure(commands)
  assert failure["title"] == "bad" and failure["binding"] == "--gin.TrainConfig.train_step=1"
  assert gin_check.first_failure(commands[:1]) == {}


def test_infer_model_overrides_are_checked():
  assert gin_check.check(INFER + ["--gin.MODEL_OVERRIDES={'max_lenn': 1}"]) == (
      None, "MODEL_OVERRIDES={'max_lenn': 1}: 'max_lenn' is no TransformerConfig field "
            "(did you mean 'max_len'?)")
