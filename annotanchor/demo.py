"""`annotanchor demo` / `python -m annotanchor.demo`: the method end to end, as a chain of runs.

  annotanchor demo --gin_file=gin/experiments/storyworld_demo.gin --gin.OUTPUT_DIR="'runs/demo'"

or on a corpus of your own files (gin/experiments/user_corpus_demo.gin, docs/data.md):

  annotanchor demo --gin_file=gin/experiments/user_corpus_demo.gin \
    --gin.OUTPUT_DIR="'runs/mine'" --gin.VOCABULARY="'tok/'" \
    --gin.DOCUMENTS="{'train': 'docs.jsonl'}" --gin.SFT_FILES="{'train': 'chat.jsonl'}" \
    --gin.SFT_FORMAT="'messages'"

Steps (each an ordinary `annotanchor` command, printed before it runs, so any one can be
rerun by hand):

  1. with `demo.build_command` (a generated corpus: storyworld), build the corpus and
     vocabulary (cached); a corpus of files has no build step;
  2. the training runs of `demo.runs` in order: pretraining, then fine-tuning from them;
  3. `annotanchor infer` for every arm of `demo.arms` (N samples per held-out prompt);
  3b. with `demo.frontier_temperatures`, the sft and anchored arms again at each of those
     temperatures (arms `sft_t0.6`, `anchored_t0.6`, ...: the anchored ones draw the
     annotation at that temperature too), the curves of the report's frontier;
  4. with `demo.capability_tasks`, `annotanchor capability` for every run an arm samples
     (multiple-choice accuracy; OUTPUT_DIR/capability/<run>);
  5. `annotanchor evaluate` over all arms: report.json, report.md and plots in
     OUTPUT_DIR/report (`demo.report_name`), with each arm's capability, and the table
     printed.

Before step 1 (and in dry_run), every step's gin configuration is parsed and finalized as
its command will parse it, all in one process (annotanchor.gin_check): a bad binding in an
experiment fails at once, naming the step and the binding, not after minutes of training.

A step writes OUTPUT_DIR/<step>/demo_step.json when it starts (its command and the stamps
of the steps it reads) and again with its own stamp when it finishes. A rerun skips a
finished step whose command and inputs are unchanged, resumes an unfinished one whose
command and inputs are unchanged (train and infer pick up where they stopped), and
otherwise starts the step clean. So rerunning the demo reuses finished work, a changed
setting reruns exactly the steps it touches and those that read their output (even across
an interrupted invocation), and experiments that share OUTPUT_DIR share their common runs.
"""
from __future__ import annotations

if __name__ == "__main__":
  from annotanchor.gin_utils import run_module_main
  run_module_main("annotanchor.demo")

import dataclasses
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from typing import Any, Mapping, Sequence

import gin

from annotanchor import gin_utils
from annotanchor.errors import SettingError, UserError, is_count, require
from annotanchor.atomic_files import write_atomic

STEP_RECORD = "demo_step.json"


class DemoError(UserError, ValueError):
  """A bad demo configuration, or a step that failed."""


# A gin binding as `--gin.` takes it: NAME=VALUE, NAME a (scoped, dotted) gin name.
_BINDING = re.compile(r"\s*[A-Za-z_][\w./]*\s*=\s*\S")


def _check_name(field: str, value) -> None:
  require(isinstance(value, str) and bool(value), field, value, "a non-empty string")


def check_bindings(field: str, bindings) -> None:
  """Raises SettingError naming `field[i]` unless `bindings` are "NAME=VALUE" strings."""
  require(isinstance(bindings, (list, tuple)), field, bindings,
          "a list of 'NAME=VALUE' strings")
  for i, binding in enumerate(bindings):
    require(isinstance(binding, str) and bool(_BINDING.match(binding)), f"{field}[{i}]",
            binding, "a gin binding 'NAME=VALUE'")


@dataclasses.dataclass(frozen=True)
class TrainRun:
  """One training run of the demo.

  Attributes:
    name: its directory under OUTPUT_DIR (MODEL_DIR of the run).
    task: MIXTURE_OR_TASK_NAME.
    steps: TRAIN_STEPS.
    init: the name of an earlier run to fine-tune (INITIAL_CHECKPOINT_PATH); None
      pretrains from scratch.
    bindings: extra gin bindings for this run ("NAME=VALUE"), e.g. an ablation's
      "AnchoredMixtureRates.annotation_only_rate=0.0".
  """
  name: str
  task: str
  steps: int
  init: str | None = None
  bindings: tuple[str, ...] = ()

  def __post_init__(self):
    _check_name("name", self.name)
    _check_name("task", self.task)
    require(is_count(self.steps), "steps", self.steps, "a positive int")
    if self.init is not None:
      _check_name("init", self.init)
    check_bindings("bindings", self.bindings)


@dataclasses.dataclass(frozen=True)
class Arm:
  """One sampled arm.

  Attributes:
    name: the arm name recorded with its samples (the report's row).
    run: the TrainRun whose final checkpoint it samples.
    mode: infer MODE ('direct', 'anchored', 'given_annotation'; infer checks it, in the
      demo's gin check before any step runs).
    bindings: extra gin bindings for its infer run, e.g. "TEMPERATURE=0.8".
  """
  name: str
  run: str
  mode: str = "direct"
  bindings: tuple[str, ...] = ()

  def __post_init__(self):
    _check_name("name", self.name)
    _check_name("run", self.run)
    require(isinstance(self.mode, str), "mode", self.mode, "a string")
    check_bindings("bindings", self.bindings)


def _records(kind, specs: Sequence[Mapping[str, Any]], what: str,
             taken: Sequence[str] = ()) -> list:
  """TrainRuns or Arms from their gin dicts, checked.

  Args:
    kind: TrainRun or Arm.
    specs: their fields as dicts.
    what: the gin parameter they come from ("runs"), for messages.
    taken: the names of those built before them (`runs` for `extra_runs`).

  Raises:
    DemoError: naming `demo.WHAT[i].FIELD` and its value.
  """
  fields = {f.name for f in dataclasses.fields(kind)}
  out, names = [], list(taken)
  for i, spec in enumerate(specs):
    unknown = set(spec) - fields
    if unknown:
      raise DemoError(f"demo.{what}[{i}] has unknown keys {sorted(unknown)}; "
                      f"known: {sorted(fields)}")
    bindings = spec.get("bindings", ())  # A gin list; anything else is refused as it is.
    try:
      out.append(kind(**{**spec, "bindings": tuple(bindings) if isinstance(bindings, list)
                         else bindings}))
    except TypeError as e:
      raise DemoError(f"demo.{what}[{i}]: {e}") from None
    except SettingError as e:
      raise DemoError(f"demo.{what}[{i}].{e}") from None
    if out[-1].name in names:
      raise DemoError(f"demo.{what}[{i}].name={out[-1].name!r}: expected a name not taken "
                      f"by an earlier one of {names}")
    names.append(out[-1].name)
  return out


def frontier_arms(arms: Sequence[Arm], curve_arms: Sequence[str],
                  temperatures: Sequence[float]) -> tuple[list[Arm], dict[str, list[str]]]:
  """The arms that sample `curve_arms` again at each temperature, and the curves.

  An arm samples at temperature 1 (infer's default) unless its bindings say otherwise;
  grid points at 1.0 are the arm itself. An anchored arm draws the annotation at the grid
  temperature too, so both arms of a grid point are sampled alike.

  Raises:
    DemoError: a temperature that is not a positive number.
  """
  for t in temperatures:
    if isinstance(t, bool) or not isinstance(t, (int, float)) or t <= 0:
      raise DemoError(f"demo.frontier_temperatures holds {t!r}: expected positive numbers")
  by_name = {a.name: a for a in arms}
  new, curves = [], {}
  for name in curve_arms:
    arm = by_name[name]
    curves[name] = [name]
    for t in temperatures:
      if t == 1.0:
        continue
      extra = (f"TEMPERATURE={t}",) + ((f"ANNOTATION_TEMPERATURE={t}",)
                                        if arm.mode == "anchored" else ())
      new.append(Arm(f"{name}_t{t:g}", arm.run, arm.mode, arm.bindings + extra))
      curves[name].append(new[-1].name)
  return new, curves


def _quote(arg: str) -> str:
  """Shell quoting in the house style: `--gin.X="'value'"` (gin strings in double quotes)."""
  flag, eq, value = arg.partition("=")
  if shlex.quote(arg) == arg:
    return arg
  if eq and shlex.quote(flag) == flag and not any(c in value for c in '"$`\\!'):
    return f'{flag}="{value}"'
  return shlex.quote(arg)


@dataclasses.dataclass(frozen=True)
class Step:
  """A command, the directory that marks it done, and the steps whose output it reads."""
  title: str
  directory: str
  argv: tuple[str, ...]   # ("annotanchor", subcommand, ...) or ("python", "-m", ...).
  needs: tuple[str, ...] = ()  # Directories of earlier steps.

  @property
  def shell(self) -> str:
    """The command as one pastes it: gin strings in double quotes (`--gin.X="'v'"`)."""
    return " ".join(_quote(a) for a in self.argv)

  def record(self) -> dict | None:
    """What the last demo invocation wrote for this step (None: never started by a demo)."""
    path = os.path.join(self.directory, STEP_RECORD)
    if not os.path.exists(path):
      return None
    with open(path) as f:
      return json.load(f)

  def write_record(self, inputs: Mapping[str, str], stamp: str | None = None,
                   seconds: float | None = None) -> None:
    """Records a started (stamp None) or finished step."""
    record = {"argv": list(self.argv), "command": self.shell, "inputs": dict(inputs),
              "stamp": stamp, "seconds": None if seconds is None else round(seconds, 1)}
    write_atomic(os.path.join(self.directory, STEP_RECORD), json.dumps(record, indent=1))


def step_state(step: Step, inputs: Mapping[str, str]) -> str:
  """The step's state: "done" (skip it), "resume" (rerun in place) or "clean" (remove its
  directory first).

  Args:
    step: the step.
    inputs: the finish stamps of the steps it needs, by directory.
  """
  record = step.record()
  if record is None:  # Never started by a demo: train and infer check their own settings.
    return "resume"
  if record["argv"] != list(step.argv) or record.get("inputs") != dict(inputs):
    return "clean"
  return "done" if record.get("stamp") else "resume"


def check_macros(macros) -> None:
  """Raises SettingError naming `demo.macros` unless it maps gin macro names to values."""
  require(isinstance(macros, Mapping), "demo.macros", macros,
          "a dict of gin macro names to values")
  for name in macros:
    require(isinstance(name, str) and re.fullmatch(r"[A-Za-z_]\w*", name) is not None,
            "demo.macros", name, "macro names (identifiers) as keys")


def plan(output_dir: str, model_gin: str, data_gins: Sequence[str], runs: Sequence[TrainRun],
         arms: Sequence[Arm], *, eval_prompts_task: str, num_samples: int,
         max_new_tokens: int, eval_gins: Sequence[str], bindings: Sequence[str],
         finetune_bindings: Sequence[str] = (), build_command: Sequence[str] | None,
         macros: Mapping[str, Any] | None = None,
         base_arm: str, sft_arm: str, anchored_arm: str,
         report_name: str = "report",
         capability_tasks: Mapping[str, str] | None = None,
         frontiers: Mapping[str, Sequence[str]] | None = None) -> list[Step]:
  """The demo's steps in order (see the module docstring)."""
  by_name = {r.name: r for r in runs}
  for run in runs:
    if run.init is not None and run.init not in [r.name for r in runs[:runs.index(run)]]:
      raise DemoError(f"run {run.name!r} fine-tunes {run.init!r}, which is not an earlier run")
  for arm in arms:
    if arm.run not in by_name:
      raise DemoError(f"arm {arm.name!r} samples run {arm.run!r}, which is not in demo.runs")
  missing = {base_arm, sft_arm, anchored_arm} - {a.name for a in arms}
  if missing:
    raise DemoError(f"demo.arms lacks {sorted(missing)} (the report compares base, sft "
                    "and anchored arms)")
  shared = ([f"--gin_file={f}" for f in data_gins]
            + [f"--gin.{name}={value!r}" for name, value in (macros or {}).items()]
            + [f"--gin.{b}" for b in bindings])
  steps = []
  corpus = ()
  if build_command:
    corpus = (os.path.join(output_dir, "corpus"),)
    steps.append(Step("build the corpus and vocabulary", corpus[0],
                      ("python", *build_command, *shared)))
  run_dirs = {r.name: os.path.join(output_dir, r.name) for r in runs}
  for run in runs:
    run_file = "gin/runs/sft.gin" if run.init else "gin/runs/pretrain.gin"
    argv = ["annotanchor", "train", f"--gin_file={model_gin}", f"--gin_file={run_file}",
            *shared, f"--gin.MODEL_DIR={run_dirs[run.name]!r}",
            f"--gin.MIXTURE_OR_TASK_NAME={run.task!r}",
            f"--gin.TRAIN_STEPS={run.steps}"]
    if run.init:
      argv.append(f"--gin.INITIAL_CHECKPOINT_PATH={run_dirs[run.init]!r}")
      argv += [f"--gin.{b}" for b in finetune_bindings]
    argv += [f"--gin.{b}" for b in run.bindings]
    what = f"fine-tune {run.name} from {run.init}" if run.init else f"pretrain {run.name}"
    needs = corpus + ((run_dirs[run.init],) if run.init else ())
    steps.append(Step(f"{what} ({run.task}, {run.steps} steps)", run_dirs[run.name],
                      tuple(argv), needs))
  sample_files = {}
  for arm in arms:
    directory = os.path.join(output_dir, "samples", arm.name)
    argv = ["annotanchor", "infer", f"--gin_file={model_gin}", "--gin_file=gin/runs/infer.gin",
            *shared,
            f"--gin.CHECKPOINT_PATH={run_dirs[arm.run]!r}",
            f"--gin.OUTPUT_DIR={directory!r}",
            f"--gin.MIXTURE_OR_TASK_NAME={eval_prompts_task!r}",
            f"--gin.ARM={arm.name!r}", f"--gin.MODE={arm.mode!r}",
            f"--gin.NUM_SAMPLES={num_samples}", f"--gin.MAX_NEW_TOKENS={max_new_tokens}",
            *[f"--gin.{b}" for b in arm.bindings]]
    steps.append(Step(f"sample {arm.name} ({arm.mode}, from {arm.run})", directory,
                      tuple(argv), corpus + (run_dirs[arm.run],)))
    sample_files[arm.name] = os.path.join(directory, "samples.jsonl")
  # Capability belongs to a checkpoint: arms that sample the same run share its result.
  capability_dirs = {}
  scored_runs = list(dict.fromkeys(a.run for a in arms)) if capability_tasks else []
  for run_name in scored_runs:
    capability_dirs[run_name] = os.path.join(output_dir, "capability", run_name)
    argv = ["annotanchor", "capability", f"--gin_file={model_gin}",
            "--gin_file=gin/runs/capability.gin", *shared,
            f"--gin.CHECKPOINT_PATH={run_dirs[run_name]!r}",
            f"--gin.OUTPUT_DIR={capability_dirs[run_name]!r}",
            f"--gin.TASK_FILES={dict(capability_tasks)!r}", f"--gin.ARM={run_name!r}"]
    steps.append(Step(f"score the capability of {run_name}", capability_dirs[run_name],
                      tuple(argv), corpus + (run_dirs[run_name],)))
  capability_files = {a.name: os.path.join(capability_dirs[a.run], "capability.json")
                      for a in arms if a.run in capability_dirs}
  report_dir = os.path.join(output_dir, report_name)
  argv = ["annotanchor", "evaluate", "--gin_file=gin/runs/evaluate.gin",
          *[f"--gin_file={f}" for f in eval_gins],
          f"--gin.SAMPLE_FILES={sample_files!r}",
          f"--gin.OUTPUT_DIR={report_dir!r}",
          f"--gin.evaluate.base_arm={base_arm!r}",
          f"--gin.evaluate.sft_arm={sft_arm!r}",
          f"--gin.evaluate.anchored_arm={anchored_arm!r}"]
  if capability_files:
    argv.append(f"--gin.CAPABILITY_FILES={capability_files!r}")
  if frontiers:
    argv.append(f"--gin.evaluate.frontiers={dict(frontiers)!r}")
  steps.append(Step("evaluate every arm", report_dir, tuple(argv),
                    tuple(os.path.dirname(f) for f in sample_files.values())
                    + tuple(capability_dirs.values())))
  return steps


def check_steps(steps: Sequence[Step], env: Mapping[str, str]) -> None:
  """Checks every step's gin configuration as its command will parse it, all in one
  process (annotanchor.gin_check), so that a bad binding fails before the first step.

  Raises:
    DemoError: naming the first step that fails, its binding and gin's message.
  """
  request = json.dumps([{"title": f"[{i}/{len(steps)}] {step.title}", "argv": step.argv}
                        for i, step in enumerate(steps, 1)])
  done = subprocess.run([sys.executable, "-m", "annotanchor.gin_check"], input=request,
                        stdout=subprocess.PIPE, text=True, env=dict(env))
  if done.returncode != 0:  # A bug; its traceback is on stderr.
    raise RuntimeError(f"annotanchor.gin_check failed with exit status {done.returncode}")
  failure = json.loads(done.stdout.splitlines()[-1])
  if failure:
    binding = failure["binding"]
    where = f"binding {binding.removeprefix('--gin.')!r}: " if binding else ""
    raise DemoError(f"step {failure['title']}: {where}{failure['error']}")


def _run_step(step: Step, env: Mapping[str, str]) -> None:
  # This interpreter runs each command, so the demo works from an unactivated venv;
  # `annotanchor X` is `python -m annotanchor.cli X`, the console script's own entry.
  program = ["-m", "annotanchor.cli"] if step.argv[0] == "annotanchor" else []
  rc = subprocess.call([sys.executable, *program, *step.argv[1:]], env=dict(env))
  if rc != 0:
    raise DemoError(f"step failed with exit status {rc}: {step.shell}")


@gin.configurable
def demo(*, output_dir: str = gin.REQUIRED, model_gin: str = gin.REQUIRED,
         data_gins: Sequence[str] = (), runs: Sequence[Mapping[str, Any]] = gin.REQUIRED,
         arms: Sequence[Mapping[str, Any]] = gin.REQUIRED,
         extra_runs: Sequence[Mapping[str, Any]] = (),
         extra_arms: Sequence[Mapping[str, Any]] = (),
         eval_prompts_task: str = gin.REQUIRED, num_samples: int = 10,
         max_new_tokens: int = 256, eval_gins: Sequence[str] = (),
         bindings: Sequence[str] = (), finetune_bindings: Sequence[str] = (),
         build_command: Sequence[str] | None = None,
         macros: Mapping[str, Any] | None = None,
         base_arm: str = "base", sft_arm: str = "sft", anchored_arm: str = "anchored",
         report_name: str = "report",
         capability_tasks: Mapping[str, str] | None = None,
         frontier_temperatures: Sequence[float] = (), dry_run: bool = False) -> str:
  """Runs (or with dry_run only prints) the demo's steps; returns the report directory.

  Args:
    output_dir: every run, sample file and the report go under it.
    model_gin: the model size file given to every train and infer step.
    data_gins: gin files given to every step but evaluate (corpus, vocabulary, lengths).
    runs: TrainRun fields as dicts, in order (a run may fine-tune an earlier one).
    arms: Arm fields as dicts.
    extra_runs, extra_arms: more of each, after `runs` and `arms`: what an experiment
      adds to the demo's runs and arms (which it then shares, samples included).
    eval_prompts_task: the task whose prompts every arm samples.
    num_samples: samples per prompt.
    max_new_tokens: the response budget of each sample.
    eval_gins: gin files for evaluate (the labeller and quality checker of the corpus).
    bindings: extra gin bindings ("NAME=VALUE") for every step but evaluate.
    finetune_bindings: extra gin bindings for every fine-tuning run (one with `init`),
      e.g. its learning rate, so that all SFT arms train alike.
    build_command: the corpus-building command (after `python`), or None: a corpus of
      files (JsonlCorpus), which has nothing to build.
    macros: gin macros given to every step but evaluate, as `--gin.NAME=repr(VALUE)`
      (before `bindings`): how the demo's own macros reach its steps, e.g. a user
      corpus's {'VOCABULARY': %VOCABULARY, 'DOCUMENTS': %DOCUMENTS, ...}
      (gin/experiments/user_corpus_demo.gin). Values are Python literals (strings,
      numbers, None, lists, dicts).
    base_arm, sft_arm, anchored_arm: the arms the comparisons are built on.
    report_name: the report's directory under output_dir (experiments that share an
      output_dir, and so its finished runs, each name their own).
    capability_tasks: `annotanchor capability`'s TASK_FILES (task name -> JSONL or
      "module:function"), scored for every run an arm samples; None: no capability.
    frontier_temperatures: the temperature grid of the report's frontier: the sft and
      anchored arms are sampled again at each (see `frontier_arms`); () : no frontier.
    dry_run: print the commands only (after checking them).

  Raises:
    DemoError: a bad run or arm, or a bad binding in a step (before any step runs), or
      a failed step.
    SettingError: a demo-wide binding not of the form NAME=VALUE.
  """
  check_bindings("demo.bindings", bindings)
  check_bindings("demo.finetune_bindings", finetune_bindings)
  check_macros(macros or {})
  train_runs = _records(TrainRun, runs, "runs")
  train_runs += _records(TrainRun, extra_runs, "extra_runs", [r.name for r in train_runs])
  sampled = _records(Arm, arms, "arms")
  sampled += _records(Arm, extra_arms, "extra_arms", [a.name for a in sampled])
  frontiers = None
  if frontier_temperatures:
    missing = {sft_arm, anchored_arm} - {a.name for a in sampled}
    if missing:
      raise DemoError(f"demo.arms lacks {sorted(missing)}, the arms of the frontier")
    grid, frontiers = frontier_arms(sampled, (sft_arm, anchored_arm), frontier_temperatures)
    taken = {a.name for a in sampled} & {a.name for a in grid}
    if taken:
      raise DemoError(f"the frontier's arms {sorted(taken)} are already defined (in "
                      "extra_arms?); drop them there or from demo.frontier_temperatures")
    sampled += grid
  steps = plan(output_dir, model_gin, data_gins, train_runs, sampled,
               eval_prompts_task=eval_prompts_task,
               num_samples=num_samples, max_new_tokens=max_new_tokens, eval_gins=eval_gins,
               bindings=bindings, finetune_bindings=finetune_bindings,
               build_command=build_command, macros=macros, base_arm=base_arm,
               sft_arm=sft_arm, anchored_arm=anchored_arm, report_name=report_name,
               capability_tasks=capability_tasks, frontiers=frontiers)
  env = dict(os.environ)
  env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  start = time.perf_counter()
  check_steps(steps, env)
  print(f"checked the gin configuration of {len(steps)} steps in "
        f"{time.perf_counter() - start:.0f} s", flush=True)
  stamps: dict[str, str] = {}  # Finish stamps of the steps done so far, by directory.
  for i, step in enumerate(steps, 1):
    print(f"\n[{i}/{len(steps)}] {step.title}\n  {step.shell}", flush=True)
    if dry_run:
      continue
    inputs = {n: stamps[n] for n in step.needs}
    state = step_state(step, inputs)
    if state == "done":
      stamps[step.directory] = step.record()["stamp"]
      print("  done earlier: skipped", flush=True)
      continue
    if state == "clean" and os.path.exists(step.directory):
      print(f"  its command or inputs changed: removing {step.directory}", flush=True)
      shutil.rmtree(step.directory)
    step.write_record(inputs)
    step_start = time.perf_counter()
    _run_step(step, env)
    stamps[step.directory] = f"{time.time_ns():x}"
    step.write_record(inputs, stamps[step.directory], time.perf_counter() - step_start)
    print(f"  finished in {time.perf_counter() - step_start:.0f} s "
          f"({time.perf_counter() - start:.0f} s so far)", flush=True)
  report_dir = steps[-1].directory
  if not dry_run:
    with open(os.path.join(report_dir, "report.md")) as f:
      print("\n" + f.read())
    print(f"demo finished in {time.perf_counter() - start:.0f} s; report, plots and "
          f"report.json in {report_dir}", flush=True)
  return report_dir


def main(argv: Sequence[str] | None = None) -> int:
  return gin_utils.run_main("demo", demo, argv, doc=__doc__)
