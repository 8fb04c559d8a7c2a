"""The runner: every step checked before the first runs, step.gin written before its command,
finished steps reused, a changed step and those that read it rerun clean."""
import json
import os

import pytest

from annotanchor.experiment import runner
from annotanchor.experiment.plan import Plan, Step

from tests.experiment.plans import plan_of
from tests.test_demo import tiny_flags


def _plan(root, train_steps=2, sample_temperature=1.0) -> Plan:
  train = Step("train a", "train", str(root / "a"), ("gin/models/tiny.gin",),
               {"TRAIN_STEPS": train_steps})
  sample = Step("sample a", "infer", str(root / "s"), ("gin/models/tiny.gin",),
                {"TEMPERATURE": sample_temperature}, needs=(str(root / "a"),))
  return Plan((train, sample))


class Commands:
  """Stands for the steps' commands: records each step run and the step.gin it found."""

  def __init__(self):
    self.ran = []

  def __call__(self, step, env):
    with open(step.config_path) as f:
      assert f.read() == step.gin_text()
    self.ran.append(os.path.basename(step.directory))


@pytest.fixture
def unchecked(monkeypatch):
  """The runner without gin_check (these steps are not whole configurations)."""
  checked = []
  monkeypatch.setattr(runner, "check", lambda plan, env: checked.append(plan))
  return checked


def test_finished_steps_are_reused_and_changes_rerun_what_reads_them(tmp_path, unchecked):
  commands = Commands()
  runner.run(_plan(tmp_path), {}, run_step=commands)
  assert commands.ran == ["a", "s"] and len(unchecked) == 1
  runner.run(_plan(tmp_path), {}, run_step=commands)
  assert commands.ran == ["a", "s"]  # Both reused.
  # A changed sampling setting reruns that step alone, from a clean directory.
  (tmp_path / "s" / "partial.jsonl").write_text("x")
  runner.run(_plan(tmp_path, sample_temperature=0.5), {}, run_step=commands)
  assert commands.ran == ["a", "s", "s"]
  assert not (tmp_path / "s" / "partial.jsonl").exists()
  # A changed training run reruns the sampling that reads it too.
  runner.run(_plan(tmp_path, train_steps=3, sample_temperature=0.5), {}, run_step=commands)
  assert commands.ran == ["a", "s", "s", "a", "s"]
  record = json.loads((tmp_path / "a" / runner.STEP_RECORD).read_text())
  assert record["stamp"] and record["config"] == (tmp_path / "a" / "step.gin").read_text()
  assert "TRAIN_STEPS = 3\n" in record["config"]
  assert record["argv"] == ["annotanchor", "train", f"--gin_file={tmp_path / 'a' / 'step.gin'}"]


def test_step_state_follows_configuration_and_input_stamps(tmp_path):
  step = _plan(tmp_path).steps[1]
  inputs = {str(tmp_path / "a"): "a1"}
  assert runner.step_state(step, inputs) == "resume"  # Never started by a plan.
  runner.write_record(step, inputs)
  assert runner.step_state(step, inputs) == "resume"  # Started, interrupted.
  runner.write_record(step, inputs, stamp="b2", seconds=1.0)
  assert runner.step_state(step, inputs) == "done"
  # Its input was retrained by an invocation that died before reaching this step.
  assert runner.step_state(step, {str(tmp_path / "a"): "a3"}) == "clean"
  assert runner.step_state(_plan(tmp_path, sample_temperature=0.5).steps[1], inputs) == "clean"


def test_an_interrupted_step_resumes_in_place(tmp_path, unchecked):
  plan = _plan(tmp_path)

  def dies_in_sampling(step, env):
    if step.command == "infer":
      (tmp_path / "s" / "samples.jsonl").write_text("half")
      raise runner.StepError("killed")
  with pytest.raises(runner.StepError):
    runner.run(plan, {}, run_step=dies_in_sampling)
  commands = Commands()
  runner.run(plan, {}, run_step=commands)
  assert commands.ran == ["s"]
  assert (tmp_path / "s" / "samples.jsonl").read_text() == "half"  # Resumed, not cleaned.


def test_dry_run_prints_each_step_and_writes_nothing(tmp_path, unchecked, capsys):
  runner.run(_plan(tmp_path), {}, dry_run=True, run_step=Commands())
  out = capsys.readouterr().out
  assert f"[2/2] sample a\n  annotanchor infer --gin_file={tmp_path / 's' / 'step.gin'}" in out
  assert "    TEMPERATURE = 1.0" in out
  assert not os.listdir(tmp_path)


def test_every_step_is_checked_before_the_first_runs(tmp_path):
  plan = plan_of(["--gin_file=gin/experiments/storyworld_demo.gin",
                  *tiny_flags(tmp_path / "out", tmp_path / "cache"),
                  "--gin.ANCHORED_SFT_BINDINGS={'AnchoredMixtureRates.annotation_only_rat': 0.3}"])
  commands = Commands()
  with pytest.raises(runner.StepError) as error:
    runner.run(plan, dict(os.environ), run_step=commands)
  assert str(error.value).startswith(
      "step [5/14] fine-tune sft_anchored from pretrain_annotated (storyworld_anchored_sft_mixture"
      ", 2 steps): binding 'AnchoredMixtureRates.annotation_only_rat=0.3': Configurable "
      "'AnchoredMixtureRates' doesn't have a parameter named 'annotation_only_rat'")
  assert commands.ran == [] and not (tmp_path / "out").exists()
