"""`annotanchor demo` / `python -m annotanchor.demo`: the method end to end, as a plan of steps.

  annotanchor demo --gin_file=gin/experiments/storyworld_demo.gin --gin.OUTPUT_DIR="'runs/demo'"

or on a corpus of your own files (gin/experiments/user_corpus_demo.gin, docs/data.md):

  annotanchor demo --gin_file=gin/experiments/user_corpus_demo.gin \
    --gin.OUTPUT_DIR="'runs/mine'" --gin.VOCABULARY="'tok/'" \
    --gin.DOCUMENTS="{'train': 'docs.jsonl'}" --gin.SFT_FILES="{'train': 'chat.jsonl'}" \
    --gin.SFT_FORMAT="'messages'"

The corpus (`demo.plan.corpus`, an annotanchor.experiment.corpus.Corpus) names its tasks, data
gin files and optionally its build step, labeller, quality function and capability probes.
Steps (annotanchor/experiment/steps.py), each an ordinary command configured by its own
OUTPUT_DIR/<step>/step.gin and printed before it runs, so any one can be rerun by hand
(`annotanchor train --gin_file=runs/demo/sft_anchored/step.gin`):

  1. with a corpus that has a build step (storyworld), build the corpus and vocabulary;
  2. the training runs: the method's four (pretraining on the annotated and the plain
     corpus, standard and anchored SFT), then `demo.plan.extra_runs`;
  3. `annotanchor infer` for the base, sft and anchored arms and `demo.plan.extra_arms`;
  2b. with `demo.plan.preference_runs`, the SFT prompts, then each run's on-policy samples,
     pairs and DPO run (annotanchor/experiment/preference.py);
  3b. with `demo.plan.frontier_temperatures`, the sft and anchored arms (`frontier_curves`)
     again at each of those temperatures (arms `sft_t0.6`, `anchored_t0.6`, ...), the curves
     of the report's frontier;
  4. with the corpus's capability probes (and `demo.plan.capability`), `annotanchor capability`
     for every run an arm samples (OUTPUT_DIR/capability/<run>);
  5. `annotanchor evaluate` over all arms: report.json, report.md and plots in
     OUTPUT_DIR/report (`demo.plan.report_name`), the table printed.

Before step 1 (and in dry_run), every step's gin configuration is parsed and finalized as
its command will parse it, all in one process (annotanchor.gin_check): a bad binding in an
experiment fails at once, naming the step and the binding, not after minutes of training.
Finished steps whose configuration and inputs are unchanged are reused
(annotanchor/experiment/runner.py), so experiments that share OUTPUT_DIR share their runs.
"""
from __future__ import annotations

if __name__ == "__main__":
  from annotanchor.gin_utils import run_module_main
  run_module_main("annotanchor.demo")

import os
import time
from typing import Any, Mapping, Sequence

import gin

from annotanchor import gin_utils
from annotanchor.errors import require
from annotanchor.experiment import runner, steps
from annotanchor.experiment.corpus import Corpus
from annotanchor.experiment.plan import Plan, check_bindings


@gin.configurable
def plan(*, output_dir: str = gin.REQUIRED, corpus: Corpus = gin.REQUIRED,
         model_gin: str = gin.REQUIRED, pretrain_steps: int = gin.REQUIRED,
         sft_steps: int = gin.REQUIRED, anchored_sft_steps: int | None = None,
         pretrain_bindings: Mapping[str, Any] = {},
         anchored_sft_bindings: Mapping[str, Any] = {},
         finetune_bindings: Mapping[str, Any] = {}, bindings: Mapping[str, Any] = {},
         extra_runs: Sequence[steps.TrainRun] = (), extra_arms: Sequence[steps.Arm] = (),
         num_samples: int = 8, max_new_tokens: int = 160, report_name: str = "report",
         capability: bool = True, frontier_temperatures: Sequence[float] = (),
         frontier_curves: Sequence[str] = (steps.SFT, steps.ANCHORED),
         preference_runs: Sequence[steps.PreferenceRun] = (),
         preference_prompts: int = 256) -> Plan:
  """The demo's steps (gin/runs/demo.gin binds these from its macros).

  Args:
    output_dir: every run, sample file and the report go under it.
    corpus: the corpus (annotanchor.experiment.corpus).
    model_gin: the model size file given to every train, infer and capability step.
    pretrain_steps: both pretraining runs' TRAIN_STEPS.
    sft_steps: standard SFT's TRAIN_STEPS.
    anchored_sft_steps: anchored SFT's TRAIN_STEPS (None: sft_steps).
    pretrain_bindings: gin name -> value for both pretraining runs.
    anchored_sft_bindings: for the anchored SFT run (e.g. AnchoredMixtureRates).
    finetune_bindings: for every fine-tuning run (one with `init`), e.g. its learning
      rate, so that all SFT arms train alike.
    bindings: for every step but evaluate, after the corpus's own.
    extra_runs, extra_arms: TrainRuns and Arms after the method's: what an experiment adds
      (and then shares with the demo in the same output_dir, samples included).
    num_samples: samples per prompt.
    max_new_tokens: the response budget of each sample.
    report_name: the report's directory under output_dir (experiments that share an
      output_dir, and so its finished runs, each name their own).
    capability: score the corpus's capability probes, when it has them.
    frontier_temperatures: the temperature grid of the report's frontier (see
      steps.frontier_arms); () : no frontier.
    frontier_curves: the arms sampled again at those temperatures, each a curve.
    preference_runs: DPO runs of fine-tuned runs on pairs of their own samples
      (annotanchor/experiment/preference.py), after the training runs; arms sample them by
      name like any run.
    preference_prompts: the SFT prompts the preference runs sample (the corpus's
      sft_prompts step writes them).

  Raises:
    SettingError: a bad corpus, run, arm or binding, naming the setting.
  """
  require(isinstance(corpus, Corpus), "demo.plan.corpus", corpus,
          "a Corpus (@corpus.Corpus() or @corpus.jsonl_corpus() in gin)")
  corpus.check("demo.plan.corpus")
  for name, value in (("pretrain_bindings", pretrain_bindings),
                      ("anchored_sft_bindings", anchored_sft_bindings),
                      ("finetune_bindings", finetune_bindings), ("bindings", bindings)):
    check_bindings(f"demo.plan.{name}", value)
  runs = steps.method_runs(
      corpus, pretrain_steps=pretrain_steps, sft_steps=sft_steps,
      anchored_sft_steps=sft_steps if anchored_sft_steps is None else anchored_sft_steps,
      pretrain_bindings=pretrain_bindings, anchored_sft_bindings=anchored_sft_bindings)
  runs = steps.checked(steps.TrainRun, runs, "demo.plan.runs")
  runs += steps.checked(steps.TrainRun, extra_runs, "demo.plan.extra_runs",
                        [r.name for r in runs])
  preference_runs = steps.checked(steps.PreferenceRun, preference_runs,
                                  "demo.plan.preference_runs", [r.name for r in runs])
  arms = steps.method_arms()
  arms += steps.checked(steps.Arm, extra_arms, "demo.plan.extra_arms", [a.name for a in arms])
  frontiers = None
  if frontier_temperatures:
    known = [a.name for a in arms]
    for i, name in enumerate(frontier_curves):
      require(name in known, f"demo.plan.frontier_curves[{i}]", name, f"an arm of {known}")
    grid, frontiers = steps.frontier_arms(arms, frontier_curves, frontier_temperatures)
    taken = {a.name for a in arms} & {a.name for a in grid}
    if taken:
      raise steps.PlanError(f"the frontier's arms {sorted(taken)} are already defined (in "
                            "demo.plan.extra_arms?); drop them there or from "
                            "demo.plan.frontier_temperatures")
    arms += grid
  return steps.demo_plan(output_dir, corpus, model_gin, runs, arms, num_samples=num_samples,
                         max_new_tokens=max_new_tokens, bindings=bindings,
                         finetune_bindings=finetune_bindings, capability=capability,
                         report_name=report_name, frontiers=frontiers,
                         preference_runs=preference_runs,
                         preference_prompts=preference_prompts)


@gin.configurable
def demo(*, dry_run: bool = False) -> str:
  """Runs (or with dry_run only checks and prints) the steps of `plan`; returns the report
  directory.

  Args:
    dry_run: check every step and print its command and step.gin, run nothing.

  Raises:
    SettingError: a bad corpus, run, arm or binding (naming the setting).
    runner.StepError: a step whose configuration fails its check (before any step runs),
      or a failed step.
  """
  the_plan = plan()
  env = dict(os.environ)
  env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  start = time.perf_counter()
  runner.run(the_plan, env, dry_run=dry_run)
  if not dry_run:
    with open(os.path.join(the_plan.report_dir, "report.md")) as f:
      print("\n" + f.read())
    print(f"demo finished in {time.perf_counter() - start:.0f} s; report, plots and "
          f"report.json in {the_plan.report_dir}", flush=True)
  return the_plan.report_dir


def main(argv: Sequence[str] | None = None) -> int:
  return gin_utils.run_main("demo", demo, argv, doc=__doc__)
