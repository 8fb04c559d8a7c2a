"""A step as a typed value: its step.gin configures its command exactly as its flags do,
and bindings are gin names and Python literals."""
import pytest

from annotanchor.errors import SettingError
from annotanchor.experiment.plan import Plan, Step, check_bindings, merged

from tests.experiment.plans import assert_step_gin_parses_as_its_flags, plan_of
from tests.test_demo import tiny_flags


def test_every_step_gin_parses_to_the_configuration_of_its_flags(tmp_path):
  plan = plan_of(["--gin_file=gin/experiments/storyworld_demo.gin",
                  *tiny_flags(tmp_path / "out", tmp_path / "cache")])
  assert [s.command for s in plan][:2] == ["tasks.storyworld.build", "train"]
  for step in plan:
    from_file = assert_step_gin_parses_as_its_flags(step, tmp_path)
    assert f"OUTPUT_DIR = {str(tmp_path / 'out')!r}" not in from_file  # Only the demo's macro.


def test_step_gin_holds_the_files_then_the_bindings():
  step = Step("fine-tune", "train", "runs/x/sft", ("gin/models/tiny.gin", "gin/runs/sft.gin"),
              {"MODEL_DIR": "runs/x/sft", "TASK_FEATURE_LENGTHS": {"targets": 128},
               "optim.OptimizerConfig.learning_rate": 1e-3, "INIT": None})
  assert step.argv == ("annotanchor", "train", "--gin_file=runs/x/sft/step.gin")
  assert step.gin_text().splitlines()[2:] == [
      "include 'gin/models/tiny.gin'", "include 'gin/runs/sft.gin'", "",
      "MODEL_DIR = 'runs/x/sft'", "TASK_FEATURE_LENGTHS = {'targets': 128}",
      "optim.OptimizerConfig.learning_rate = 0.001", "INIT = None"]
  assert step.flags[-1] == "--gin.INIT=None"
  build = Step("build", "tasks.storyworld.build", "runs/x/corpus")
  assert build.argv == ("python", "-m", "tasks.storyworld.build",
                        "--gin_file=runs/x/corpus/step.gin")


@pytest.mark.parametrize("bindings, message", [
    (["BATCH_SIZE=8"], "b=['BATCH_SIZE=8']: expected a dict of gin names to values"),
    ({"BATCH SIZE": 8}, "b='BATCH SIZE': expected gin names as keys"),
    ({"X.": 8}, "b='X.': expected gin names as keys"),
    ({"X": float("inf")}, "b['X']=inf: expected a Python literal"),
    ({"X": {1, 2}}, "b['X']={1, 2}: expected a Python literal"),
    ({"X": [1, object()]}, "b['X']=[1, <object"),
])
def test_bindings_are_gin_names_and_literals(bindings, message):
  with pytest.raises(SettingError) as error:
    check_bindings("b", bindings)
  assert str(error.value).startswith(message)


def test_good_bindings_pass():
  check_bindings("b", {"user/registration.JsonlCorpus.cache_dir": "/c", "A": (1, 2.5, None),
                       "B": {"train": ["x.jsonl"]}, "C": True})


def test_a_later_binding_wins_as_a_later_flag_would():
  assert list(merged({"A": 1, "B": 2}, {"A": 3}).items()) == [("B", 2), ("A", 3)]


def test_a_plan_refuses_a_step_that_reads_what_no_earlier_step_writes():
  train = Step("train", "train", "runs/x/a")
  with pytest.raises(SettingError, match=r"reads \['runs/x/b'\], which no earlier step writes"):
    Plan((train, Step("sample", "infer", "runs/x/s", needs=("runs/x/b",))))
  with pytest.raises(SettingError, match="two steps write runs/x/a"):
    Plan((train, Step("again", "infer", "runs/x/a")))
  assert Plan((train, Step("sample", "infer", "runs/x/s", needs=("runs/x/a",)))).report_dir == (
      "runs/x/s")
