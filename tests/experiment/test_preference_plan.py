"""The preference experiment (gin/experiments/preference.gin, issue 32) as steps of the typed
plan: each DPO run reads the pairs of its own samples, every step.gin parses, and the demo's
steps are shared unchanged."""
import dataclasses

import pytest

from annotanchor.errors import SettingError
from annotanchor.experiment import steps
from annotanchor.experiment.corpus import jsonl_corpus
from annotanchor.experiment.preference import PreferenceRun

from tests.experiment.plans import assert_step_gin_parses_as_its_flags, plan_of
from tests.test_demo import tiny_flags

PREFERENCE, DEMO = "gin/experiments/preference.gin", "gin/experiments/storyworld_demo.gin"


def _by_dir(gin_file, *flags):
  return {s.directory: s for s in plan_of([f"--gin_file={gin_file}",
                                           "--gin.OUTPUT_DIR='runs/x'", *flags])}


def test_the_plan_has_the_four_arms_at_t1_and_each_dpo_run_reads_its_own_pairs():
  plan = _by_dir(PREFERENCE)
  report = plan["runs/x/report_preference"]
  samples = report.bindings["SAMPLE_FILES"]
  for arm, run in [("sft", "sft_standard"), ("sft_dpo", "sft_standard_dpo"),
                   ("anchored", "sft_anchored"), ("anchored_dpo", "sft_anchored_dpo")]:
    assert samples[arm] == f"runs/x/samples/{arm}/samples.jsonl"
    arm_step = plan[f"runs/x/samples/{arm}"]
    assert arm_step.bindings["CHECKPOINT_PATH"] == f"runs/x/{run}"
    assert "TEMPERATURE" not in arm_step.bindings  # infer's default, 1.
    assert report.bindings["CAPABILITY_FILES"][arm] == f"runs/x/capability/{run}/capability.json"
  assert set(report.bindings["evaluate.frontiers"]) == {"sft", "anchored", "sft_dpo",
                                                        "anchored_dpo"}
  prompts = plan["runs/x/sft_prompts"]
  assert prompts.command == "tasks.storyworld.sft_prompts"
  assert prompts.bindings["sft_prompts.count"] == 256
  for name, init, mode, task in [
      ("sft_standard_dpo", "sft_standard", "direct", "prefs_preference"),
      ("sft_anchored_dpo", "sft_anchored", "anchored", "prefs_preference_anchored")]:
    sample = plan[f"runs/x/on_policy/{name}/samples"]
    pair = plan[f"runs/x/on_policy/{name}/pairs"]
    dpo = plan[f"runs/x/{name}"]
    assert (sample.command, pair.command, dpo.command) == ("infer", "pair", "train")
    assert sample.bindings["CHECKPOINT_PATH"] == f"runs/x/{init}"
    assert sample.bindings["PROMPTS_FILE"] == "runs/x/sft_prompts/prompts.jsonl"
    assert (sample.bindings["MODE"], sample.bindings["NUM_SAMPLES"]) == (mode, 16)
    assert set(sample.needs) >= {f"runs/x/{init}", "runs/x/sft_prompts"}
    assert pair.needs == (sample.directory,)
    assert pair.bindings["SAMPLES"] == f"{sample.directory}/samples.jsonl"
    assert pair.bindings["QUALITY_FN"] == "tasks.storyworld.parse:check_prompted_quality"
    assert pair.bindings["pair.require_annotations"] == (mode == "anchored")
    assert pair.gin_files == ("gin/experiments/storyworld_data.gin", "gin/runs/pair.gin")
    assert dpo.gin_files[-1] == "gin/runs/dpo.gin"
    assert dpo.bindings["INITIAL_CHECKPOINT_PATH"] == f"runs/x/{init}"
    assert dpo.bindings["PAIRS"] == pair.bindings["OUTPUT"]
    assert dpo.bindings["MIXTURE_OR_TASK_NAME"] == task
    assert dpo.bindings["VOCABULARY"] == "runs/x/sft_prompts/spm.model"
    assert set(dpo.needs) >= {pair.directory, f"runs/x/{init}", "runs/x/sft_prompts"}
    # DPO's own learning rate (dpo.gin's), not the SFT runs' 1e-3.
    assert "optim.OptimizerConfig.learning_rate" not in dpo.bindings


def test_the_experiment_shares_the_demos_steps():
  shared = {d: s for d, s in _by_dir(DEMO).items() if s.command != "evaluate"}
  plan = _by_dir(PREFERENCE)
  assert {d: s.gin_text() for d, s in shared.items()} == {
      d: plan[d].gin_text() for d in shared}


def test_every_added_step_gin_parses_to_the_configuration_of_its_flags(tmp_path):
  demo = {s.directory for s in plan_of([f"--gin_file={DEMO}",
                                        *tiny_flags(tmp_path / "out", tmp_path / "cache")])}
  plan = plan_of([f"--gin_file={PREFERENCE}", *tiny_flags(tmp_path / "out", tmp_path / "cache")])
  added = [s for s in plan if s.directory not in demo]
  assert {s.command for s in added} == {"tasks.storyworld.sft_prompts", "infer", "pair",
                                        "train", "capability", "evaluate"}
  for step in added:
    assert_step_gin_parses_as_its_flags(step, tmp_path)


@pytest.mark.parametrize("value, message", [
    (PreferenceRun("d", "sft_standard", mode="given_annotation"),
     "demo.plan.preference_runs[0].mode='given_annotation': expected one of"),
    (PreferenceRun("d", "sft_standard", num_samples=1),
     "demo.plan.preference_runs[0].num_samples=1: expected an int >= 2"),
    (PreferenceRun("d", "sft_standard", steps=0),
     "demo.plan.preference_runs[0].steps=0: expected a positive int"),
    (PreferenceRun("sft_standard", "sft_standard"),
     "demo.plan.preference_runs[0].name='sft_standard': expected a name not taken"),
    (steps.TrainRun("d", "t", 1), "demo.plan.preference_runs[0]=TrainRun("),
])
def test_preference_runs_check_their_fields(value, message):
  with pytest.raises(SettingError) as error:
    steps.checked(steps.PreferenceRun, [value], "demo.plan.preference_runs",
                  ["sft_standard"])
  assert str(error.value).startswith(message), str(error.value)


def _plan(corpus, runs):
  method = steps.method_runs(corpus, pretrain_steps=2, sft_steps=2, anchored_sft_steps=2,
                             pretrain_bindings={}, anchored_sft_bindings={})
  return steps.demo_plan("runs/x", corpus, "gin/models/tiny.gin", method, steps.method_arms(),
                         num_samples=2, max_new_tokens=8, preference_runs=runs)


def test_a_preference_run_tunes_a_fine_tuned_run_of_a_corpus_that_can_pair():
  corpus = jsonl_corpus(quality_fn="m:f")
  with pytest.raises(steps.PlanError, match="tunes 'pretrain_plain', which is not a "
                     "fine-tuned run"):
    _plan(corpus, [PreferenceRun("d", "pretrain_plain")])
  with pytest.raises(SettingError, match="demo.plan.corpus.sft_prompts is None"):
    _plan(corpus, [PreferenceRun("d", "sft_standard")])
  with pytest.raises(SettingError, match="demo.plan.corpus.quality_fn is None"):
    _plan(dataclasses.replace(jsonl_corpus(), sft_prompts="m"),
          [PreferenceRun("d", "sft_standard")])
  assert len(_plan(corpus, [])) == len(_plan(jsonl_corpus(), []))
