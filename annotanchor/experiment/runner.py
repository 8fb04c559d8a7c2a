"""Runs a plan: checks every step's configuration first, then runs each step, reusing
finished ones.

A step writes DIRECTORY/step.gin and DIRECTORY/demo_step.json when it starts (its
configuration, its command and the stamps of the steps it reads) and the record again with
its own stamp when it finishes. A rerun skips a finished step whose configuration and
inputs are unchanged, resumes an unfinished one whose configuration and inputs are
unchanged (train and infer pick up where they stopped), and otherwise starts the step
clean. So a changed setting reruns exactly the steps it touches and those that read their
output (even across an interrupted invocation), and experiments that share OUTPUT_DIR share
their common steps.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from typing import Callable, Mapping

from annotanchor.atomic_files import write_atomic
from annotanchor.errors import UserError
from annotanchor.experiment.plan import Plan, Step, titled

STEP_RECORD = "demo_step.json"


class StepError(UserError, ValueError):
  """A step whose configuration fails its command's check, or a step that failed."""


def check(plan: Plan, env: Mapping[str, str]) -> None:
  """Checks every step's gin configuration as its command will parse it, all in one process
  (annotanchor.gin_check), before anything is written: a bad binding fails before the
  first step runs, naming the step and the binding.

  Raises:
    StepError: naming the first step that fails, its binding and gin's message.
  """
  request = json.dumps([{"title": title, "argv": [*step.program, *step.flags]}
                        for title, step in titled(plan.steps)])
  done = subprocess.run([sys.executable, "-m", "annotanchor.gin_check"], input=request,
                        stdout=subprocess.PIPE, text=True, env=dict(env))
  if done.returncode != 0:  # A bug; its traceback is on stderr.
    raise RuntimeError(f"annotanchor.gin_check failed with exit status {done.returncode}")
  failure = json.loads(done.stdout.splitlines()[-1])
  if failure:
    binding = failure["binding"]
    where = f"binding {binding.removeprefix('--gin.')!r}: " if binding else ""
    raise StepError(f"step {failure['title']}: {where}{failure['error']}")


def record(step: Step) -> dict | None:
  """What the last run of the plan wrote for this step (None: never started by one)."""
  path = os.path.join(step.directory, STEP_RECORD)
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def write_record(step: Step, inputs: Mapping[str, str], stamp: str | None = None,
                 seconds: float | None = None) -> None:
  """Records a started (stamp None) or finished step."""
  content = {"argv": list(step.argv), "command": step.shell, "config": step.gin_text(),
             "inputs": dict(inputs), "stamp": stamp,
             "seconds": None if seconds is None else round(seconds, 1)}
  write_atomic(os.path.join(step.directory, STEP_RECORD), json.dumps(content, indent=1))


def step_state(step: Step, inputs: Mapping[str, str]) -> str:
  """The step's state: "done" (skip it), "resume" (rerun in place) or "clean" (remove its
  directory first).

  Args:
    step: the step.
    inputs: the finish stamps of the steps it needs, by directory.
  """
  last = record(step)
  if last is None:  # Never started by a plan: train and infer check their own settings.
    return "resume"
  if last.get("config") != step.gin_text() or last.get("inputs") != dict(inputs):
    return "clean"
  return "done" if last.get("stamp") else "resume"


def run_command(step: Step, env: Mapping[str, str]) -> None:
  """Runs the step's command with this interpreter (so the demo works from an unactivated
  venv; `annotanchor X` is `python -m annotanchor.cli X`, the console script's own entry)."""
  program = ["-m", "annotanchor.cli", step.command] if step.program[0] == "annotanchor" else [
      "-m", step.command]
  rc = subprocess.call([sys.executable, *program, f"--gin_file={step.config_path}"],
                       env=dict(env))
  if rc != 0:
    raise StepError(f"step failed with exit status {rc}: {step.shell}")


def run(plan: Plan, env: Mapping[str, str], *, dry_run: bool = False,
        run_step: Callable[[Step, Mapping[str, str]], None] = run_command) -> None:
  """Checks the plan, then runs its steps in order (dry_run: prints each step's command and
  step.gin only).

  Args:
    plan: the steps.
    env: the environment of every command.
    dry_run: print, run nothing, write nothing.
    run_step: runs one step whose step.gin is written (tests replace it).
  """
  start = time.perf_counter()
  check(plan, env)
  print(f"checked the gin configuration of {len(plan)} steps in "
        f"{time.perf_counter() - start:.0f} s", flush=True)
  stamps: dict[str, str] = {}  # Finish stamps of the steps done so far, by directory.
  for title, step in titled(plan.steps):
    print(f"\n{title}\n  {step.shell}", flush=True)
    if dry_run:
      print("    " + step.gin_text().rstrip("\n").replace("\n", "\n    "), flush=True)
      continue
    inputs = {n: stamps[n] for n in step.needs}
    state = step_state(step, inputs)
    if state == "done":
      stamps[step.directory] = record(step)["stamp"]
      print("  done earlier: skipped", flush=True)
      continue
    if state == "clean" and os.path.exists(step.directory):
      print(f"  its configuration or inputs changed: removing {step.directory}", flush=True)
      shutil.rmtree(step.directory)
    write_atomic(step.config_path, step.gin_text())
    write_record(step, inputs)
    step_start = time.perf_counter()
    run_step(step, env)
    stamps[step.directory] = f"{time.time_ns():x}"
    write_record(step, inputs, stamps[step.directory], time.perf_counter() - step_start)
    print(f"  finished in {time.perf_counter() - step_start:.0f} s "
          f"({time.perf_counter() - start:.0f} s so far)", flush=True)
