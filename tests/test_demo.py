"""The demo pipeline at tiny sizes: every step for real, the report, reuse on rerun."""
import dataclasses
import json
import os
import shlex
import subprocess
import sys

import gin
import pytest

from annotanchor import demo

from tests.xla_flags import xla_flags

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_flags(output_dir, cache_dir, bindings=()) -> list[str]:
  """The demo's gin flags at tiny sizes (seconds a step), after its experiment's gin file.

  Args:
    output_dir: OUTPUT_DIR.
    cache_dir: where the corpus is built.
    bindings: more of demo.bindings (these flags set it).
  """
  bindings = [f"Storyworld.cache_dir={str(cache_dir)!r}", "Storyworld.vocab_size=512",
              "VOCAB_SIZE=512",
              "StoryworldConfig.num_pretrain_docs=120", "StoryworldConfig.num_sft_examples=60",
              "StoryworldConfig.num_eval_prompts=4", "TASK_FEATURE_LENGTHS={'targets': 128}",
              "BATCH_SIZE=8", *bindings]
  return [f"--gin.OUTPUT_DIR={str(output_dir)!r}", "--gin.MODEL_GIN='gin/models/tiny.gin'",
          "--gin.PRETRAIN_STEPS=4", "--gin.SFT_STEPS=2", "--gin.ANCHORED_SFT_STEPS=2",
          "--gin.NUM_SAMPLES=3", "--gin.demo.demo.frontier_temperatures=[0.5]",
          "--gin.MAX_NEW_TOKENS=16", f"--gin.demo.bindings={bindings!r}"]


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
  record = json.loads((out / "sft_anchored" / demo.STEP_RECORD).read_text())
  assert record["command"] in result.stdout
  assert shlex.split(record["command"]) == record["argv"]
  assert record["argv"][:2] == ["annotanchor", "train"]


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


def test_step_state_follows_command_and_input_stamps(tmp_path):
  step = demo.Step("infer", str(tmp_path / "samples"), ("annotanchor", "infer", "--gin.A=1"),
                   needs=(str(tmp_path / "train"),))
  inputs = {str(tmp_path / "train"): "a1"}
  assert demo.step_state(step, inputs) == "resume"  # Never started by a demo.
  step.write_record(inputs)
  assert demo.step_state(step, inputs) == "resume"  # Started, interrupted.
  step.write_record(inputs, stamp="b2", seconds=1.0)
  assert demo.step_state(step, inputs) == "done"
  # Its input was retrained by an invocation that died before reaching this step.
  assert demo.step_state(step, {str(tmp_path / "train"): "a3"}) == "clean"
  changed = dataclasses.replace(step, argv=("annotanchor", "infer", "--gin.A=2"))
  assert demo.step_state(changed, inputs) == "clean"


def test_a_bad_pipeline_is_refused_before_anything_runs(tmp_path):
  runs = [{"name": "sft", "task": "t", "steps": 1, "init": "missing"}]
  with pytest.raises(demo.DemoError, match="'missing', which is not an earlier run"):
    demo.plan(str(tmp_path), "m.gin", [], demo._records(demo.TrainRun, runs, "runs"), [],
              eval_prompts_task="p", num_samples=1, max_new_tokens=1, eval_gins=[],
              bindings=[], build_command=None, base_arm="base", sft_arm="sft",
              anchored_arm="anchored")
  with pytest.raises(demo.DemoError, match=r"unknown keys \['stpes'\]"):
    demo._records(demo.TrainRun, [{"name": "a", "task": "t", "stpes": 1}], "runs")


@pytest.mark.parametrize("kind, spec, message", [
    (demo.TrainRun, {"name": "", "task": "t", "steps": 1}, "demo.runs[0].name=''"),
    (demo.TrainRun, {"name": "a", "task": "t", "steps": 0},
     "demo.runs[0].steps=0: expected a positive int"),
    (demo.TrainRun, {"name": "a", "task": "t", "steps": True}, "demo.runs[0].steps=True"),
    (demo.TrainRun, {"name": "a", "task": "t", "steps": "4"}, "demo.runs[0].steps='4'"),
    (demo.TrainRun, {"name": "a", "task": "t", "steps": 1, "init": ""}, "demo.runs[0].init=''"),
    (demo.TrainRun, {"name": "a", "task": "t", "steps": 1, "bindings": ["X=1", "Y"]},
     "demo.runs[0].bindings[1]='Y': expected a gin binding 'NAME=VALUE'"),
    (demo.TrainRun, {"name": "a", "task": "t", "steps": 1, "bindings": "X=1"},
     "demo.runs[0].bindings='X=1': expected a list of 'NAME=VALUE' strings"),
    (demo.TrainRun, {"name": "a", "task": "t", "steps": 1, "bindings": 5},
     "demo.runs[0].bindings=5: expected a list"),
    (demo.Arm, {"name": "a", "run": ""}, "demo.runs[0].run=''"),
    (demo.Arm, {"name": "a", "run": "r", "bindings": ["=0.8"]}, "demo.runs[0].bindings[0]='=0.8'"),
])
def test_runs_and_arms_check_their_fields(kind, spec, message):
  with pytest.raises(demo.DemoError) as error:
    demo._records(kind, [spec], "runs")
  assert message in str(error.value)


def test_names_are_unique_across_runs_and_extra_runs():
  runs = demo._records(demo.TrainRun, [{"name": "a", "task": "t", "steps": 1}], "runs")
  assert runs == [demo.TrainRun("a", "t", 1)]
  with pytest.raises(demo.DemoError, match=r"demo.extra_runs\[1\].name='a': expected a name "
                                           r"not taken by an earlier one of \['a', 'b'\]"):
    demo._records(demo.TrainRun, [{"name": "b", "task": "t", "steps": 1},
                                  {"name": "a", "task": "t", "steps": 1}], "extra_runs", ["a"])


def test_demo_bindings_are_checked_for_their_form(capsys):
  gin.clear_config()
  try:
    assert demo.main(["--gin_file=gin/experiments/storyworld_demo.gin",
                      "--gin.OUTPUT_DIR='runs/x'", "--gin.demo.demo.dry_run=True",
                      "--gin.demo.demo.bindings=['BATCH_SIZE 8']"]) == 2
  finally:
    gin.clear_config()
  captured = capsys.readouterr()
  assert ("annotanchor demo: SettingError: demo.bindings[0]='BATCH_SIZE 8': expected a gin "
          "binding 'NAME=VALUE'") in captured.err
  assert "[1/14]" not in captured.out


def test_a_bad_binding_fails_before_the_first_step(tmp_path, capsys):
  experiment = tmp_path / "typo.gin"
  experiment.write_text("include 'gin/experiments/storyworld_demo.gin'\n"
                        "ANCHORED_SFT_BINDINGS = ['AnchoredMixtureRates.annotation_only_rat=0.3']\n")
  gin.clear_config()
  try:
    assert demo.main([f"--gin_file={experiment}",
                      *tiny_flags(tmp_path / "out", tmp_path / "cache")]) == 2
  finally:
    gin.clear_config()
  captured = capsys.readouterr()
  assert ("annotanchor demo: DemoError: step [5/14] fine-tune sft_anchored from "
          "pretrain_annotated") in captured.err
  assert ("binding 'AnchoredMixtureRates.annotation_only_rat=0.3': "
          "Configurable 'AnchoredMixtureRates' doesn't have a parameter named "
          "'annotation_only_rat'.") in captured.err
  assert "[1/14]" not in captured.out  # Not even the first step's command.
  assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()


# Dry runs by gin file: each one checks every step's gin in a subprocess (seconds), and
# the demo's own is compared with every experiment's.
_DRY_RUNS: dict[str, set[str]] = {}


def _dry_run_commands(capsys, gin_file: str) -> set[str]:
  if gin_file not in _DRY_RUNS:
    _DRY_RUNS[gin_file] = _run_dry(capsys, gin_file)
  return set(_DRY_RUNS[gin_file])


def _run_dry(capsys, gin_file: str) -> set[str]:
  gin.clear_config()
  try:
    assert demo.main([f"--gin_file={gin_file}", "--gin.OUTPUT_DIR='runs/x'",
                      "--gin.demo.demo.dry_run=True"]) == 0
  finally:
    gin.clear_config()
  lines = capsys.readouterr().out.splitlines()
  return {line.strip() for line in lines if line.startswith("  annotanchor ")}


@pytest.mark.parametrize("experiment", ["sft_only_annotations", "no_annotation_sampling",
                                        "annotation_only_rate", "no_annotation_masking",
                                        "temperature_sweep", "sft_steps", "sft_equal_steps"])
def test_experiments_add_to_the_demo_and_share_its_steps(capsys, experiment):
  shared = _dry_run_commands(capsys, "gin/experiments/storyworld_demo.gin")
  # Every train and infer command of the demo, verbatim (so an experiment in the demo's
  # OUTPUT_DIR reuses its runs and samples); only the report is the experiment's own.
  shared = {c for c in shared if " evaluate " not in c}
  assert any("--gin.PROMPT_FORMAT=\"'none'\"" in c for c in shared)  # The base arm.
  commands = _dry_run_commands(capsys, f"gin/experiments/{experiment}.gin")
  assert shared <= commands
  added = commands - shared
  assert len(added) >= 2 and any(" evaluate " in c for c in added)


def test_model_size_sweep_runs_the_demos_pipeline_without_frontier_or_capability(capsys):
  demo_commands = _dry_run_commands(capsys, "gin/experiments/storyworld_demo.gin")
  sweep = _dry_run_commands(capsys, "gin/experiments/model_size_sweep.gin")
  # At the demo's model size, the sweep point's train and infer steps are the demo's own.
  assert {c for c in sweep if " evaluate " not in c} <= demo_commands
  assert not any(" capability " in c for c in sweep)
  assert sum(" infer " in c for c in sweep) == 3  # base, sft, anchored at temperature 1.


def test_sft_two_values_changes_the_corpus_of_every_step(capsys):
  commands = _dry_run_commands(capsys, "gin/experiments/sft_two_values.gin")
  steps = [c for c in commands if " train " in c or " infer " in c]
  assert len(steps) == 13  # four trainings, nine samplings (three arms, six frontier points)
  for binding in ("StoryworldConfig.sft_support=2", "StoryworldConfig.sft_skew=0.0"):
    assert all(binding in c for c in steps), binding


def test_pretrain_lr_binds_the_pretraining_runs_only(capsys):
  commands = _dry_run_commands(capsys, "gin/experiments/pretrain_lr.gin")
  train = [c for c in commands if " train " in c]
  pretrain = [c for c in train if "gin/runs/pretrain.gin" in c]
  assert len(pretrain) == 2 and len(train) == 4
  for command in train:
    rate = "learning_rate=3e-3" if command in pretrain else "learning_rate=1e-3"
    assert f"--gin.optim.OptimizerConfig.{rate}" in command, command


def test_anchored_sft_steps_reach_only_the_anchored_run(capsys):
  commands = _dry_run_commands(capsys, "gin/experiments/storyworld_demo.gin")
  train = {name: c for c in commands if " train " in c
           for name in ("sft_standard", "sft_anchored") if f"runs/x/{name}'" in c}
  assert "--gin.TRAIN_STEPS=300" in train["sft_standard"]
  assert "--gin.TRAIN_STEPS=430" in train["sft_anchored"]


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
                                    demo["ANCHORED_SFT_BINDINGS"] + [sys.argv[1]])
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
  arms = [demo.Arm("sft", "sft_standard"), demo.Arm("anchored", "sft_anchored", "anchored",
                                                      ("X=1",))]
  grid, curves = demo.frontier_arms(arms, ("sft", "anchored"), [0.6, 1.0])
  assert curves == {"sft": ["sft", "sft_t0.6"], "anchored": ["anchored", "anchored_t0.6"]}
  assert grid == [demo.Arm("sft_t0.6", "sft_standard", "direct", ("TEMPERATURE=0.6",)),
                  demo.Arm("anchored_t0.6", "sft_anchored", "anchored",
                           ("X=1", "TEMPERATURE=0.6", "ANNOTATION_TEMPERATURE=0.6"))]
  with pytest.raises(demo.DemoError, match="expected positive numbers"):
    demo.frontier_arms(arms, ("sft",), [0])
