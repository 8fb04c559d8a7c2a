"""The demo pipeline at tiny sizes: every step for real, the report, reuse on rerun; and the
plans of the demo and its experiments, built in-process from their gin files."""
import json
import os
import shlex
import subprocess
import sys

import gin
import pytest

from annotanchor import demo
from annotanchor.errors import SettingError
from annotanchor.experiment import runner, steps
from annotanchor.experiment.corpus import Corpus

from tests.experiment.plans import plan_of
from tests.xla_flags import xla_flags

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_flags(output_dir, cache_dir, bindings=None) -> list[str]:
  """The demo's gin flags at tiny sizes (seconds a step), after its experiment's gin file.

  Args:
    output_dir: OUTPUT_DIR.
    cache_dir: where the corpus is built.
    bindings: more of demo.plan.bindings (these flags set it), name -> value.
  """
  bindings = {"Storyworld.cache_dir": str(cache_dir), "Storyworld.vocab_size": 512,
              "VOCAB_SIZE": 512, "StoryworldConfig.num_pretrain_docs": 120,
              "StoryworldConfig.num_sft_examples": 60, "StoryworldConfig.num_eval_prompts": 4,
              "TASK_FEATURE_LENGTHS": {"targets": 128}, "BATCH_SIZE": 8, **(bindings or {})}
  return [f"--gin.OUTPUT_DIR={str(output_dir)!r}", "--gin.MODEL_GIN='gin/models/tiny.gin'",
          "--gin.PRETRAIN_STEPS=4", "--gin.SFT_STEPS=2", "--gin.ANCHORED_SFT_STEPS=2",
          "--gin.NUM_SAMPLES=3", "--gin.demo.plan.frontier_temperatures=[0.5]",
          "--gin.MAX_NEW_TOKENS=16", f"--gin.demo.plan.bindings={bindings!r}"]


def _demo(output_dir, cache_dir, *extra):
  argv = [sys.executable, "-m", "annotanchor.demo",
          "--gin_file=gin/experiments/storyworld_demo.gin", *tiny_flags(output_dir, cache_dir),
          *extra]
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": xla_flags()}
  return subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
  out, cache = tmp_path_factory.mktemp("demo"), tmp_path_factory.mktemp("cache")
  result = _demo(out, cache)
  assert result.returncode == 0, result.stderr[-3000:]
  return out, cache, result


def test_demo_runs_every_step_and_reports_from_its_samples(first_run):
  out, _, result = first_run
  report = json.loads((out / "report" / "report.json").read_text())
  assert list(report["arms"]) == ["base", "sft", "anchored", "sft_t0.5", "anchored_t0.5"]
  assert report["num_prompts"] == 4 and report["num_samples"] == 3
  for metric in ("semantic_entropy", "embedding_distance", "distinct_k"):
    assert set(report["comparisons"][metric]) == {"sft", "anchored", "sft_t0.5",
                                                  "anchored_t0.5"}
    assert "gap_closed" in report["comparisons"][metric]["anchored"]
  # The report's figures come from the sample files this run wrote.
  # The frontier: both fine-tuned arms at 0.5 and 1.
  curves = report["frontier"]["semantic_entropy"]["curves"]
  assert {c: [p["temperature"] for p in v["points"]] for c, v in curves.items()} == {
      "sft": [0.5, 1.0], "anchored": [0.5, 1.0]}
  for arm in ("base", "sft", "anchored"):
    lines = (out / "samples" / arm / "samples.jsonl").read_text().splitlines()
    assert len(lines) == 4 * 3 and all(json.loads(l)["arm"] == arm for l in lines)
  assert all((out / "report" / name).exists() for name in ("report.md", "report.json"))
  assert "| anchored |" in result.stdout  # The table is printed.
  # Each arm's capability: its run's accuracy on the storyworld probes.
  for arm, run in (("base", "pretrain_plain"), ("sft", "sft_standard"),
                   ("anchored", "sft_anchored")):
    scored = json.loads((out / "capability" / run / "capability.json").read_text())
    assert report["capability"][arm] == scored["tasks"]
    assert scored["tasks"]["storyworld_facts"]["num_examples"] > 100
  assert "storyworld_facts acc" in result.stdout


def test_printed_commands_are_the_ones_run(first_run):
  out, _, result = first_run
  record = json.loads((out / "sft_anchored" / runner.STEP_RECORD).read_text())
  assert record["command"] in result.stdout
  assert shlex.split(record["command"]) == record["argv"] == [
      "annotanchor", "train", f"--gin_file={out / 'sft_anchored' / 'step.gin'}"]
  # The step's configuration, as it ran.
  assert (out / "sft_anchored" / "step.gin").read_text() == record["config"]
  assert "MIXTURE_OR_TASK_NAME = 'storyworld_anchored_sft_mixture'\n" in record["config"]


def test_rerun_skips_finished_steps(first_run):
  out, cache, _ = first_run
  again = _demo(out, cache)
  assert again.returncode == 0, again.stderr[-3000:]
  assert again.stdout.count("done earlier: skipped") == 14


@pytest.mark.slow
def test_a_change_reruns_what_follows(first_run):
  """Changes the first run's samples, so it comes after test_rerun_skips_finished_steps
  (file order)."""
  out, cache, _ = first_run
  changed = _demo(out, cache, "--gin.NUM_SAMPLES=2")
  assert changed.returncode == 0, changed.stderr[-3000:]
  # Corpus build, training and capability (which reads no samples).
  assert changed.stdout.count("done earlier: skipped") == 8
  report = json.loads((out / "report" / "report.json").read_text())
  assert report["num_samples"] == 2


def test_a_bad_pipeline_is_refused_before_anything_runs(tmp_path):
  corpus = Corpus("p", "pp", "s", "a", "e")
  runs = [steps.TrainRun("sft", "t", 1, init="missing")]
  with pytest.raises(steps.PlanError, match="'missing', which is not an earlier run"):
    steps.demo_plan(str(tmp_path), corpus, "m.gin", runs, [], num_samples=1, max_new_tokens=1)
  runs = [steps.TrainRun("pretrain_plain", "t", 1)]
  with pytest.raises(steps.PlanError, match=r"the arms lack \['anchored', 'base', 'sft'\]"):
    steps.demo_plan(str(tmp_path), corpus, "m.gin", runs, [steps.Arm("x", "pretrain_plain")],
                    num_samples=1, max_new_tokens=1)


@pytest.mark.parametrize("value, message", [
    (steps.TrainRun("", "t", 1), "demo.plan.extra_runs[0].name=''"),
    (steps.TrainRun("a", "t", 0), "demo.plan.extra_runs[0].steps=0: expected a positive int"),
    (steps.TrainRun("a", "t", True), "demo.plan.extra_runs[0].steps=True"),
    (steps.TrainRun("a", "t", "4"), "demo.plan.extra_runs[0].steps='4'"),
    (steps.TrainRun("a", "t", 1, init=""), "demo.plan.extra_runs[0].init=''"),
    (steps.TrainRun("a", "t", 1, bindings={"X": 1, "Y Z": 2}),
     "demo.plan.extra_runs[0].bindings='Y Z': expected gin names as keys"),
    (steps.TrainRun("a", "t", 1, bindings=["X=1"]),
     "demo.plan.extra_runs[0].bindings=['X=1']: expected a dict of gin names to values"),
    (steps.TrainRun("a", "t", 1, bindings={"X": object}),
     "demo.plan.extra_runs[0].bindings['X']=<class 'object'>: expected a Python literal"),
    (steps.Arm("a", ""), "demo.plan.extra_runs[0].run=''"),
    (steps.Arm("a", "r", bindings={"TEMPERATURE": float("nan")}),
     "demo.plan.extra_runs[0].bindings['TEMPERATURE']=nan"),
    # What an experiment gave before runs were typed: a dict.
    ({"name": "a", "task": "t", "steps": 1},
     "demo.plan.extra_runs[0]={'name': 'a', 'task': 't', 'steps': 1}: expected a TrainRun "
     "(@NAME/steps.TrainRun() in gin"),
])
def test_runs_and_arms_check_their_fields(value, message):
  kind = steps.Arm if isinstance(value, steps.Arm) else steps.TrainRun
  with pytest.raises(SettingError) as error:
    steps.checked(kind, [value], "demo.plan.extra_runs")
  assert message in str(error.value)


def test_names_are_unique_across_runs_and_extra_runs():
  runs = [steps.TrainRun("b", "t", 1), steps.TrainRun("a", "t", 1)]
  with pytest.raises(steps.PlanError, match=r"demo.plan.extra_runs\[1\].name='a': expected a "
                                            r"name not taken by an earlier one of \['a', 'b'\]"):
    steps.checked(steps.TrainRun, runs, "demo.plan.extra_runs", ["a"])


@pytest.mark.parametrize("binding, message", [
    ("--gin.demo.plan.bindings={'BATCH SIZE': 8}",
     "SettingError: demo.plan.bindings='BATCH SIZE': expected gin names as keys"),
    # The form of the bindings before they were typed.
    ("--gin.demo.plan.bindings=['BATCH_SIZE=8']",
     "SettingError: demo.plan.bindings=['BATCH_SIZE=8']: expected a dict of gin names"),
])
def test_demo_bindings_are_checked_for_their_form(capsys, binding, message):
  gin.clear_config()
  try:
    assert demo.main(["--gin_file=gin/experiments/storyworld_demo.gin",
                      "--gin.OUTPUT_DIR='runs/x'", "--gin.demo.demo.dry_run=True",
                      binding]) == 2
  finally:
    gin.clear_config()
  captured = capsys.readouterr()
  assert f"annotanchor demo: {message}" in captured.err
  assert "[1/14]" not in captured.out


def test_a_bad_binding_fails_before_the_first_step(tmp_path, capsys):
  experiment = tmp_path / "typo.gin"
  experiment.write_text(
      "include 'gin/experiments/storyworld_demo.gin'\n"
      "ANCHORED_SFT_BINDINGS = {'AnchoredMixtureRates.annotation_only_rat': 0.3}\n")
  gin.clear_config()
  try:
    assert demo.main([f"--gin_file={experiment}",
                      *tiny_flags(tmp_path / "out", tmp_path / "cache")]) == 2
  finally:
    gin.clear_config()
  captured = capsys.readouterr()
  assert ("annotanchor demo: StepError: step [5/14] fine-tune sft_anchored from "
          "pretrain_annotated") in captured.err
  assert ("binding 'AnchoredMixtureRates.annotation_only_rat=0.3': "
          "Configurable 'AnchoredMixtureRates' doesn't have a parameter named "
          "'annotation_only_rat'.") in captured.err
  assert "[1/14]" not in captured.out  # Not even the first step's command.
  assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()


def test_an_unknown_field_of_a_run_is_one_line_naming_the_file(tmp_path, capsys):
  experiment = tmp_path / "typo.gin"
  experiment.write_text(
      "from __gin__ import dynamic_registration\n"
      "from annotanchor import demo\n"
      "from annotanchor.experiment import steps\n"
      "include 'gin/experiments/storyworld_demo.gin'\n"
      "demo.plan.extra_runs = [@x/steps.TrainRun()]\n"
      "x/steps.TrainRun.stpes = 3\n")
  gin.clear_config()
  try:
    assert demo.main([f"--gin_file={experiment}", "--gin.OUTPUT_DIR='runs/x'"]) == 2
  finally:
    gin.clear_config()
  error = capsys.readouterr().err.strip()
  assert error.startswith(f"annotanchor demo: {experiment}:6: ") and "stpes" in error, error
  assert "\n" not in error


# The plans of the demo and its experiments, built in-process from their gin files.
DEMO = "gin/experiments/storyworld_demo.gin"


def _by_dir(gin_file: str, *flags: str) -> dict:
  return {step.directory: step for step in plan_of([f"--gin_file={gin_file}",
                                                     "--gin.OUTPUT_DIR='runs/x'", *flags])}


@pytest.mark.parametrize("experiment", ["sft_only_annotations", "no_annotation_sampling",
                                        "annotation_only_rate", "no_annotation_masking",
                                        "temperature_sweep", "sft_steps", "sft_equal_steps"])
def test_experiments_add_to_the_demo_and_share_its_steps(experiment):
  shared = {d: s for d, s in _by_dir(DEMO).items() if s.command != "evaluate"}
  assert shared["runs/x/samples/base"].bindings["PROMPT_FORMAT"] == "none"
  steps_ = _by_dir(f"gin/experiments/{experiment}.gin")
  # Every train and infer step of the demo, configured alike (so an experiment in the demo's
  # OUTPUT_DIR reuses its runs and samples); only the report is the experiment's own.
  assert {d: s.gin_text() for d, s in shared.items()} == {
      d: steps_[d].gin_text() for d in shared}
  added = set(steps_) - set(shared)
  assert len(added) >= 2 and any(steps_[d].command == "evaluate" for d in added)


def test_an_experiment_adds_an_arm_as_a_typed_value(tmp_path):
  experiment = tmp_path / "cool.gin"
  experiment.write_text(
      "from __gin__ import dynamic_registration\n"
      "from annotanchor import demo\n"
      "from annotanchor.experiment import steps\n"
      f"include '{DEMO}'\n"
      "demo.plan.extra_arms = [@cool/steps.Arm()]\n"
      "cool/steps.Arm:\n"
      "  name = 'anchored_cool'\n"
      "  run = 'sft_anchored'\n"
      "  mode = 'anchored'\n"
      "  bindings = {'TEMPERATURE': 0.7, 'TOP_K': 20}\n")
  steps_ = _by_dir(str(experiment))
  arm = steps_["runs/x/samples/anchored_cool"]
  assert arm.command == "infer" and arm.needs == ("runs/x/corpus", "runs/x/sft_anchored")
  assert {k: arm.bindings[k] for k in ("ARM", "MODE", "CHECKPOINT_PATH", "TEMPERATURE",
                                       "TOP_K")} == {
      "ARM": "anchored_cool", "MODE": "anchored", "CHECKPOINT_PATH": "runs/x/sft_anchored",
      "TEMPERATURE": 0.7, "TOP_K": 20}
  assert "TEMPERATURE = 0.7\n" in arm.gin_text()
  report = steps_["runs/x/report"]
  assert report.bindings["SAMPLE_FILES"]["anchored_cool"] == (
      "runs/x/samples/anchored_cool/samples.jsonl")
  assert "runs/x/samples/anchored_cool" in report.needs


def test_model_size_sweep_runs_the_demos_pipeline_without_frontier_or_capability():
  demo_steps = _by_dir(DEMO)
  sweep = _by_dir("gin/experiments/model_size_sweep.gin")
  # At the demo's model size, the sweep point's train and infer steps are the demo's own.
  for directory, step in sweep.items():
    if step.command != "evaluate":
      assert step.gin_text() == demo_steps[directory].gin_text(), directory
  assert not any(s.command == "capability" for s in sweep.values())
  assert sum(s.command == "infer" for s in sweep.values()) == 3  # base, sft, anchored at T 1.


def test_sft_two_values_changes_the_corpus_of_every_step():
  steps_ = [s for s in _by_dir("gin/experiments/sft_two_values.gin").values()
            if s.command in ("train", "infer")]
  assert len(steps_) == 13  # four trainings, nine samplings (three arms, six frontier points)
  for step in steps_:
    assert step.bindings["StoryworldConfig.sft_support"] == 2, step.title
    assert step.bindings["StoryworldConfig.sft_skew"] == 0.0, step.title


def test_sft_entropy_sweep_takes_its_support_as_a_number():
  steps_ = _by_dir("gin/experiments/sft_entropy_sweep.gin", "--gin.SFT_SUPPORT=4")
  assert steps_["runs/x/corpus"].bindings == {"StoryworldConfig.sft_support": 4,
                                              "StoryworldConfig.sft_skew": 0.0}


def test_pretrain_lr_binds_the_pretraining_runs_only():
  train = [s for s in _by_dir("gin/experiments/pretrain_lr.gin").values()
           if s.command == "train"]
  pretrain = [s for s in train if "gin/runs/pretrain.gin" in s.gin_files]
  assert len(pretrain) == 2 and len(train) == 4
  for step in train:
    rate = 3e-3 if step in pretrain else 1e-3
    assert step.bindings["optim.OptimizerConfig.learning_rate"] == rate, step.title


def test_anchored_sft_steps_reach_only_the_anchored_run():
  steps_ = _by_dir(DEMO)
  assert steps_["runs/x/sft_standard"].bindings["TRAIN_STEPS"] == 300
  assert steps_["runs/x/sft_anchored"].bindings["TRAIN_STEPS"] == 430


_COUNT_EXAMPLES = """
import json, sys
import gin
import annotanchor.train, tasks.storyworld
from annotanchor.data.registration import register_configured_corpora
from annotanchor.data.reporting import examples_trained_on

gin.parse_config_files_and_bindings(["gin/experiments/storyworld_demo.gin"], ["OUTPUT_DIR='x'"])
demo = {m: gin.query_parameter(f"%{m}") for m in ("SFT_STEPS", "ANCHORED_SFT_STEPS",
                                                  "ANCHORED_SFT_BINDINGS", "SFT_TASK",
                                                  "ANCHORED_SFT_TASK")}
gin.clear_config()
gin.parse_config_files_and_bindings(["gin/experiments/storyworld_data.gin"],
                                    [f"{name}={value!r}" for name, value in
                                     demo["ANCHORED_SFT_BINDINGS"].items()] + [sys.argv[1]])
register_configured_corpora()
lengths, batch = gin.query_parameter("%TASK_FEATURE_LENGTHS"), gin.query_parameter("%BATCH_SIZE")
count = lambda task, steps: examples_trained_on(task, lengths, batch, steps)
print(json.dumps({"standard": count(demo["SFT_TASK"], demo["SFT_STEPS"]),
                  "anchored": count(demo["ANCHORED_SFT_TASK"], demo["ANCHORED_SFT_STEPS"]),
                  "anchored_equal_steps": count(demo["ANCHORED_SFT_TASK"], demo["SFT_STEPS"])}))
"""


@pytest.mark.slow
def test_demo_sft_arms_train_on_as_many_sft_examples(tmp_path):
  """The demo's ANCHORED_SFT_STEPS, counted on the real corpus and pipeline: the anchored
  run's batches hold as many SFT examples as standard SFT's (within 3%); at equal steps they
  would hold a third fewer (annotation-only sequences, longer examples)."""
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "3"}
  argv = [sys.executable, "-c", _COUNT_EXAMPLES, f"Storyworld.cache_dir={str(tmp_path)!r}"]
  proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  counts = json.loads(proc.stdout.splitlines()[-1])
  assert abs(counts["anchored"] / counts["standard"] - 1) < 0.03, counts
  assert counts["anchored_equal_steps"] < 0.8 * counts["standard"], counts


def test_frontier_arms_sample_both_arms_alike_at_each_temperature():
  arms = [steps.Arm("sft", "sft_standard"),
          steps.Arm("anchored", "sft_anchored", "anchored", {"X": 1})]
  grid, curves = steps.frontier_arms(arms, ("sft", "anchored"), [0.6, 1.0])
  assert curves == {"sft": ["sft", "sft_t0.6"], "anchored": ["anchored", "anchored_t0.6"]}
  assert grid == [steps.Arm("sft_t0.6", "sft_standard", "direct", {"TEMPERATURE": 0.6}),
                  steps.Arm("anchored_t0.6", "sft_anchored", "anchored",
                            {"X": 1, "TEMPERATURE": 0.6, "ANNOTATION_TEMPERATURE": 0.6})]
  with pytest.raises(SettingError, match="expected positive numbers"):
    steps.frontier_arms(arms, ("sft",), [0])
