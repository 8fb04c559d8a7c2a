"""A step of an experiment: one command, configured by a gin file of its own.

A Step is typed: the command, the gin files it reads, its bindings as name -> value (Python
literals) and the directories of the steps whose output it reads. It is written to
DIRECTORY/step.gin (the files as `include`s, then the bindings) and run as
`annotanchor COMMAND --gin_file=DIRECTORY/step.gin`, a command one can rerun by hand. Its
`flags` are the same configuration as gin flags, which annotanchor.gin_check parses binding
by binding to name the one at fault before anything is written.
"""
from __future__ import annotations

import dataclasses
import math
import os
import re
import shlex
from typing import Any, Mapping, Sequence

from annotanchor.errors import SettingError, require

STEP_GIN = "step.gin"

# A gin name as a binding takes it: a macro, or a (scoped) configurable's parameter,
# e.g. 'BATCH_SIZE', 'optim.OptimizerConfig.learning_rate', 'user/registration.JsonlCorpus.x'.
_NAME = re.compile(r"[A-Za-z_]\w*(?:[./][A-Za-z_]\w*)*")


def is_literal(value: Any) -> bool:
  """Whether gin reads `repr(value)` back as `value`: str, int, float (finite), bool, None,
  and lists, tuples and dicts of them."""
  if value is None or isinstance(value, (str, bool, int)):
    return True
  if isinstance(value, float):
    return math.isfinite(value)
  if isinstance(value, (list, tuple)):
    return all(is_literal(v) for v in value)
  if isinstance(value, dict):
    return all(isinstance(k, (str, int, float)) and is_literal(k) and is_literal(v)
               for k, v in value.items())
  return False


def check_bindings(setting: str, bindings: Any) -> None:
  """Raises SettingError naming `setting` unless `bindings` maps gin names to literals."""
  require(isinstance(bindings, Mapping), setting, bindings,
          "a dict of gin names to values, e.g. {'BATCH_SIZE': 8}")
  for name, value in bindings.items():
    require(isinstance(name, str) and _NAME.fullmatch(name) is not None, setting, name,
            "gin names as keys ('NAME' or 'Configurable.parameter')")
    require(is_literal(value), f"{setting}[{name!r}]", value,
            "a Python literal (a string, number, bool or None, or a list, tuple or dict of them)")


def merged(*bindings: Mapping[str, Any]) -> dict[str, Any]:
  """The bindings in order, a later one of a name replacing an earlier one and moving to its
  place, so that the order is that of gin flags given one after another."""
  out: dict[str, Any] = {}
  for group in bindings:
    for name, value in group.items():
      out.pop(name, None)
      out[name] = value
  return out


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
  """One command of an experiment.

  Attributes:
    title: what it does, as printed ("pretrain pretrain_plain (...)").
    command: an `annotanchor` subcommand ("train"), or a module run as `python -m` (one with
      a dot: "tasks.storyworld.build").
    directory: its output directory; it holds step.gin and marks the step done.
    gin_files: the gin files it reads, in order.
    bindings: gin name -> value (a Python literal), bound after the files, in order.
    needs: the directories of the earlier steps whose output it reads.
  """
  title: str
  command: str
  directory: str
  gin_files: tuple[str, ...] = ()
  bindings: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  needs: tuple[str, ...] = ()

  def __post_init__(self):
    check_bindings(f"step {self.title!r} bindings", self.bindings)

  @property
  def program(self) -> tuple[str, ...]:
    if "." in self.command:
      return ("python", "-m", self.command)
    return ("annotanchor", self.command)

  @property
  def config_path(self) -> str:
    return os.path.join(self.directory, STEP_GIN)

  @property
  def argv(self) -> tuple[str, ...]:
    """The command that runs the step: its program and its step.gin."""
    return (*self.program, f"--gin_file={self.config_path}")

  @property
  def shell(self) -> str:
    return " ".join(_quote(a) for a in self.argv)

  @property
  def flags(self) -> tuple[str, ...]:
    """The configuration of step.gin as gin flags (`--gin_file=F`, `--gin.NAME=VALUE`)."""
    return (*(f"--gin_file={f}" for f in self.gin_files),
            *(f"--gin.{name}={value!r}" for name, value in self.bindings.items()))

  def gin_text(self) -> str:
    """step.gin: the gin files as includes, then the bindings."""
    lines = [f"# {self.title}", f"# Run: {' '.join(self.program)} --gin_file={self.config_path}",
             *(f"include {f!r}" for f in self.gin_files), ""]
    lines += [f"{name} = {value!r}" for name, value in self.bindings.items()]
    return "\n".join(lines) + "\n"


@dataclasses.dataclass(frozen=True)
class Plan:
  """An experiment's steps in the order they run; the last one writes the report."""
  steps: tuple[Step, ...]

  def __post_init__(self):
    seen: set[str] = set()
    for step in self.steps:
      if step.directory in seen:
        raise SettingError(f"two steps write {step.directory}: names of runs and arms "
                           "must give each step a directory of its own")
      missing = [n for n in step.needs if n not in seen]
      if missing:
        raise SettingError(f"step {step.title!r} reads {missing}, which no earlier step writes")
      seen.add(step.directory)

  @property
  def report_dir(self) -> str:
    return self.steps[-1].directory

  def __len__(self) -> int:
    return len(self.steps)

  def __iter__(self):
    return iter(self.steps)


def titled(steps: Sequence[Step]) -> list[tuple[str, Step]]:
  """Each step with its numbered title, "[i/n] title", as printed and in messages."""
  return [(f"[{i}/{len(steps)}] {step.title}", step) for i, step in enumerate(steps, 1)]
