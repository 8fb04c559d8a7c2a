"""The demo's steps: the method's runs and arms, what an experiment adds, and the plan.

The method (docs/design.md): pretraining on the annotated corpus and on its plain twin (same
steps, so the same tokens), standard SFT from the plain base, anchored SFT from the
annotated base; the base, standard-SFT and anchored arms sample the held-out prompts. An
experiment adds TrainRuns and Arms beside them (gin/experiments/*.gin, as
`@NAME/steps.TrainRun()` references), and optionally a temperature grid (the frontier).

Steps in order: the corpus build (when the corpus has one), the training runs, with
preference runs the SFT prompts and each one's infer, pair and DPO train steps
(annotanchor/experiment/preference.py), one `infer` per arm, one `capability` per sampled
run (when the corpus has probes), `evaluate`.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Mapping, Sequence

from annotanchor.errors import SettingError, is_count, require
from annotanchor.experiment.corpus import Corpus
from annotanchor.experiment.plan import Plan, Step, check_bindings, merged
from annotanchor.experiment.preference import PreferenceRun, preference_steps, prompts_step

BASE, SFT, ANCHORED = "base", "sft", "anchored"  # The arms the report compares.
PRETRAIN_GIN, FINETUNE_GIN = "gin/runs/pretrain.gin", "gin/runs/sft.gin"


class PlanError(SettingError):
  """A run or arm that does not fit the others (an unknown run, a name taken twice)."""


@dataclasses.dataclass(frozen=True)
class TrainRun:
  """One training run.

  Attributes:
    name: its directory under OUTPUT_DIR (MODEL_DIR of the run).
    task: MIXTURE_OR_TASK_NAME.
    steps: TRAIN_STEPS.
    init: the name of an earlier run to fine-tune (INITIAL_CHECKPOINT_PATH); None
      pretrains from scratch.
    bindings: gin name -> value for this run, e.g. an ablation's
      {'AnchoredMixtureRates.annotation_only_rate': 0.0}.
  """
  name: str
  task: str
  steps: int
  init: str | None = None
  bindings: Mapping[str, Any] = dataclasses.field(default_factory=dict)

  def check(self, setting: str) -> None:
    _check_name(f"{setting}.name", self.name)
    _check_name(f"{setting}.task", self.task)
    require(is_count(self.steps), f"{setting}.steps", self.steps, "a positive int")
    if self.init is not None:
      _check_name(f"{setting}.init", self.init)
    check_bindings(f"{setting}.bindings", self.bindings)


@dataclasses.dataclass(frozen=True)
class Arm:
  """One sampled arm.

  Attributes:
    name: the arm name recorded with its samples (the report's row).
    run: the TrainRun whose final checkpoint it samples.
    mode: infer MODE ('direct', 'anchored', 'given_annotation'; infer checks it, in the
      check of every step before any runs).
    bindings: gin name -> value for its infer run, e.g. {'TEMPERATURE': 0.8}.
  """
  name: str
  run: str
  mode: str = "direct"
  bindings: Mapping[str, Any] = dataclasses.field(default_factory=dict)

  def check(self, setting: str) -> None:
    _check_name(f"{setting}.name", self.name)
    _check_name(f"{setting}.run", self.run)
    require(isinstance(self.mode, str), f"{setting}.mode", self.mode, "a string")
    check_bindings(f"{setting}.bindings", self.bindings)


def _check_name(setting: str, value) -> None:
  require(isinstance(value, str) and bool(value), setting, value, "a non-empty string")


def checked(kind, values: Any, setting: str, taken: Sequence[str] = ()) -> list:
  """`values` as a list of `kind` (TrainRun, PreferenceRun or Arm), each checked, names
  unique.

  Raises:
    SettingError: naming `SETTING[i]` or `SETTING[i].FIELD` and its value.
  """
  require(isinstance(values, (list, tuple)), setting, values,
          f"a list of {kind.__name__}s (@NAME/steps.{kind.__name__}() in gin)")
  names = list(taken)
  for i, value in enumerate(values):
    require(isinstance(value, kind), f"{setting}[{i}]", value,
            f"a {kind.__name__} (@NAME/steps.{kind.__name__}() in gin; "
            "gin/experiments/README.md)")
    value.check(f"{setting}[{i}]")
    if value.name in names:
      raise PlanError(f"{setting}[{i}].name={value.name!r}: expected a name not taken by an "
                      f"earlier one of {names}")
    names.append(value.name)
  return list(values)


def method_runs(corpus: Corpus, *, pretrain_steps: int, sft_steps: int,
                anchored_sft_steps: int, pretrain_bindings: Mapping[str, Any],
                anchored_sft_bindings: Mapping[str, Any]) -> list[TrainRun]:
  """The method's four training runs on `corpus`."""
  return [
      TrainRun("pretrain_annotated", corpus.pretrain_task, pretrain_steps,
               bindings=pretrain_bindings),
      TrainRun("pretrain_plain", corpus.plain_pretrain_task, pretrain_steps,
               bindings=pretrain_bindings),
      TrainRun("sft_standard", corpus.sft_task, sft_steps, init="pretrain_plain"),
      TrainRun("sft_anchored", corpus.anchored_sft_task, anchored_sft_steps,
               init="pretrain_annotated", bindings=anchored_sft_bindings),
  ]


def method_arms() -> list[Arm]:
  """The method's three arms."""
  return [
      # The base model never saw the chat template (or any instruction): it is asked for
      # its pretraining distribution, the semantic prior SFT should not collapse.
      Arm(BASE, "pretrain_plain", bindings={"PROMPT_FORMAT": "none"}),
      Arm(SFT, "sft_standard"),
      Arm(ANCHORED, "sft_anchored", "anchored"),
  ]


def frontier_arms(arms: Sequence[Arm], curve_arms: Sequence[str],
                  temperatures: Sequence[float]) -> tuple[list[Arm], dict[str, list[str]]]:
  """The arms that sample `curve_arms` again at each temperature, and the curves.

  An arm samples at temperature 1 (infer's default) unless its bindings say otherwise;
  grid points at 1.0 are the arm itself. An anchored arm draws the annotation at the grid
  temperature too, so both arms of a grid point are sampled alike.

  Raises:
    SettingError: a temperature that is not a positive number.
  """
  for t in temperatures:
    require(not isinstance(t, bool) and isinstance(t, (int, float)) and t > 0,
            "demo.frontier_temperatures", list(temperatures), "positive numbers")
  by_name = {a.name: a for a in arms}
  new, curves = [], {}
  for name in curve_arms:
    arm = by_name[name]
    curves[name] = [name]
    for t in temperatures:
      if t == 1.0:
        continue
      extra = {"TEMPERATURE": t, **({"ANNOTATION_TEMPERATURE": t}
                                    if arm.mode == "anchored" else {})}
      new.append(Arm(f"{name}_t{t:g}", arm.run, arm.mode, merged(arm.bindings, extra)))
      curves[name].append(new[-1].name)
  return new, curves


def demo_plan(output_dir: str, corpus: Corpus, model_gin: str, runs: Sequence[TrainRun],
              arms: Sequence[Arm], *, num_samples: int, max_new_tokens: int,
              bindings: Mapping[str, Any] = {}, finetune_bindings: Mapping[str, Any] = {},
              capability: bool = True, report_name: str = "report",
              frontiers: Mapping[str, Sequence[str]] | None = None,
              preference_runs: Sequence[PreferenceRun] = (),
              preference_prompts: int = 256) -> Plan:
  """The steps of the demo (see the module docstring).

  Args:
    output_dir: every step's directory is under it.
    corpus: the tasks, data gin files, build step, evaluation hooks and probes.
    model_gin: the model size file of every step that builds the model.
    runs: the training runs in order (a run may fine-tune an earlier one).
    arms: the sampled arms; BASE, SFT and ANCHORED among them.
    num_samples, max_new_tokens: every arm's NUM_SAMPLES and MAX_NEW_TOKENS.
    bindings: gin name -> value for every step that reads data, after the corpus's.
    finetune_bindings: for every run with `init`, before the run's own.
    capability: score the corpus's capability probes (when it has them) for every run an
      arm samples.
    report_name: the report's directory under output_dir.
    frontiers: evaluate.frontiers (curve -> its arms), or None.
    preference_runs: DPO runs, each of a fine-tuned run of `runs`, after them; arms may
      sample them like any run.
    preference_prompts: how many SFT prompts the preference runs sample.

  Raises:
    PlanError: a run that fine-tunes no earlier run, a preference run of a run that is not
      fine-tuned, an arm of an unknown run, or the compared arms missing.
  """
  run_dirs = {}
  for run in runs:
    if run.init is not None and run.init not in run_dirs:
      raise PlanError(f"run {run.name!r} fine-tunes {run.init!r}, which is not an earlier run")
    run_dirs[run.name] = os.path.join(output_dir, run.name)
  finetuned = {run.name for run in runs if run.init}
  for run in preference_runs:
    if run.init not in finetuned:
      raise PlanError(f"preference run {run.name!r} tunes {run.init!r}, which is not a "
                      f"fine-tuned run (one of {sorted(finetuned)})")
    run_dirs[run.name] = os.path.join(output_dir, run.name)
  for arm in arms:
    if arm.run not in run_dirs:
      raise PlanError(f"arm {arm.name!r} samples run {arm.run!r}, which is not a run")
  missing = {BASE, SFT, ANCHORED} - {a.name for a in arms}
  if missing:
    raise PlanError(f"the arms lack {sorted(missing)} (the report compares base, sft and "
                    "anchored arms)")
  shared = merged(corpus.bindings, bindings)
  data_gins = tuple(corpus.data_gins)
  steps = []
  corpus_dir = ()
  if corpus.build:
    corpus_dir = (os.path.join(output_dir, "corpus"),)
    steps.append(Step("build the corpus and vocabulary", corpus.build, corpus_dir[0],
                      data_gins, shared))
  for run in runs:
    run_bindings = {"MODEL_DIR": run_dirs[run.name], "MIXTURE_OR_TASK_NAME": run.task,
                    "TRAIN_STEPS": run.steps}
    if run.init:
      run_bindings["INITIAL_CHECKPOINT_PATH"] = run_dirs[run.init]
    what = f"fine-tune {run.name} from {run.init}" if run.init else f"pretrain {run.name}"
    steps.append(Step(
        f"{what} ({run.task}, {run.steps} steps)", "train", run_dirs[run.name],
        (model_gin, FINETUNE_GIN if run.init else PRETRAIN_GIN, *data_gins),
        merged(shared, run_bindings, finetune_bindings if run.init else {}, run.bindings),
        corpus_dir + ((run_dirs[run.init],) if run.init else ())))
  if preference_runs:
    prompts = prompts_step(output_dir, corpus, shared, preference_prompts, corpus_dir)
    steps.append(prompts)
    for run in preference_runs:
      steps += preference_steps(run, output_dir, corpus, model_gin, shared,
                                init_dir=run_dirs[run.init], prompts_dir=prompts.directory,
                                max_new_tokens=max_new_tokens, needs=corpus_dir)
  sample_files = {}
  for arm in arms:
    directory = os.path.join(output_dir, "samples", arm.name)
    arm_bindings = {"CHECKPOINT_PATH": run_dirs[arm.run], "OUTPUT_DIR": directory,
                    "MIXTURE_OR_TASK_NAME": corpus.eval_prompts_task, "ARM": arm.name,
                    "MODE": arm.mode, "NUM_SAMPLES": num_samples,
                    "MAX_NEW_TOKENS": max_new_tokens}
    steps.append(Step(f"sample {arm.name} ({arm.mode}, from {arm.run})", "infer", directory,
                      (model_gin, "gin/runs/infer.gin", *data_gins),
                      merged(shared, arm_bindings, arm.bindings),
                      corpus_dir + (run_dirs[arm.run],)))
    sample_files[arm.name] = os.path.join(directory, "samples.jsonl")
  # Capability belongs to a checkpoint: arms that sample the same run share its result.
  capability_dirs = {}
  if capability and corpus.capability_tasks:
    for run_name in dict.fromkeys(a.run for a in arms):
      capability_dirs[run_name] = os.path.join(output_dir, "capability", run_name)
      steps.append(Step(
          f"score the capability of {run_name}", "capability", capability_dirs[run_name],
          (model_gin, "gin/runs/capability.gin", *data_gins),
          merged(shared, {"CHECKPOINT_PATH": run_dirs[run_name],
                          "OUTPUT_DIR": capability_dirs[run_name],
                          "TASK_FILES": dict(corpus.capability_tasks), "ARM": run_name}),
          corpus_dir + (run_dirs[run_name],)))
  report_bindings = {**corpus.evaluate_bindings(), "SAMPLE_FILES": sample_files,
                     "OUTPUT_DIR": os.path.join(output_dir, report_name),
                     "evaluate.base_arm": BASE, "evaluate.sft_arm": SFT,
                     "evaluate.anchored_arm": ANCHORED}
  if capability_dirs:
    report_bindings["CAPABILITY_FILES"] = {
        a.name: os.path.join(capability_dirs[a.run], "capability.json") for a in arms}
  if frontiers:
    report_bindings["evaluate.frontiers"] = {k: list(v) for k, v in frontiers.items()}
  steps.append(Step("evaluate every arm", "evaluate", os.path.join(output_dir, report_name),
                    ("gin/runs/evaluate.gin",), report_bindings,
                    tuple(os.path.dirname(f) for f in sample_files.values())
                    + tuple(capability_dirs.values())))
  return Plan(tuple(steps))
