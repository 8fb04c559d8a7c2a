"""`python -m annotanchor.gin_check`: check commands' gin configuration without running them.

  echo '[{"title": "pretrain", "argv": ["annotanchor", "train", "--gin_file=..."]}]' \
      | python -m annotanchor.gin_check

Reads a JSON list of commands, each a title and an argv (`annotanchor CMD ...` or
`python -m MODULE ...`), on stdin. For each in turn it imports the command's module, parses
the command's gin flags as its `main` does (`gin_utils.parse_and_bind`, finalized: an
unknown configurable or parameter, a syntax error, an unknown macro or a required macro
left unset fails) and calls the module's `check_settings()` where it has one. Prints one
JSON line: {} when every command passes, else the first failure's {"title", "binding",
"error"} (binding: the `--gin.` flag at fault, or null when gin files or the finalized
whole are). Exit 0 either way; any other exit is a bug and comes with its traceback.

One process checks all the commands, because the imports (JAX, TensorFlow, the tasks)
cost seconds each time; `annotanchor demo` runs it before its first step. Commands that
parse without finalizing (`compile`) are outside its reach.
"""
from __future__ import annotations

if __name__ == "__main__":
  from annotanchor.gin_utils import run_module_main
  run_module_main("annotanchor.gin_check")

import importlib
import json
import sys
from typing import Mapping, Sequence

import gin

from annotanchor import gin_utils
from annotanchor.cli import SUBCOMMANDS
from annotanchor.errors import UserError


def split_command(argv: Sequence[str]) -> tuple[str, list[str]]:
  """The module whose `main` runs argv, and main's arguments.

  `["annotanchor", "train", *flags]` -> ("annotanchor.train", flags);
  `["python", "-m", "tasks.storyworld.build", *flags]` -> ("tasks.storyworld.build", flags).
  """
  if argv[0] == "annotanchor":
    return SUBCOMMANDS[argv[1]], list(argv[2:])
  if list(argv[1:2]) == ["-m"]:
    return argv[2], list(argv[3:])
  raise ValueError(f"not an `annotanchor CMD` or `python -m MODULE` command: {list(argv)}")


def _parse(flags: Sequence[str], finalize: bool) -> str | None:
  """gin's message for the first problem of `flags` (None: none), on a cleared config."""
  gin.clear_config()
  try:
    rest = gin_utils.parse_and_bind(flags, finalize=finalize)
  except gin_utils.GinFlagError as e:
    # The caller names the binding at fault; a flag's error would name it a second time.
    if (e.where or "").startswith("--gin."):
      return e.reason
    return gin_utils.user_message(e).splitlines()[0]
  except UserError as e:
    return gin_utils.user_message(e).splitlines()[0]
  if rest:
    return f"unexpected arguments {rest}; the command takes only gin flags"
  return None


def check(argv: Sequence[str]) -> tuple[str | None, str | None]:
  """Checks one command's gin configuration.

  Returns:
    (None, None) when it passes, else (the `--gin.` flag at fault or None, the message).
  """
  module_name, flags = split_command(argv)
  module = importlib.import_module(module_name)
  error = _parse(flags, finalize=True)
  if error is None:
    try:
      getattr(module, "check_settings", lambda: None)()
    except UserError as e:
      error = gin_utils.user_message(e)
    finally:
      gin.clear_config()
    return None, error
  # The culprit is the first binding whose addition breaks parsing (gin parses the files
  # first; k = 0: they do). When all of it parses and only the finalized whole fails (an
  # unknown macro), it is the binding without which the whole passes, if there is one.
  bindings = [f for f in flags if f.startswith("--gin.")]
  others = [f for f in flags if not f.startswith("--gin.")]
  failing = next((k for k in range(len(bindings) + 1)
                  if _parse(others + bindings[:k], finalize=False) is not None), None)
  if failing is None:
    culprit = next((b for i, b in enumerate(bindings)
                    if _parse(others + bindings[:i] + bindings[i + 1:],
                                  finalize=True) is None), None)
  else:
    culprit = bindings[failing - 1] if failing else None
  gin.clear_config()
  return culprit, error


def first_failure(commands: Sequence[Mapping]) -> dict:
  """{} when every command passes, else {"title", "binding", "error"} of the first that fails."""
  for command in commands:
    binding, error = check(command["argv"])
    if error is not None:
      return {"title": command["title"], "binding": binding, "error": error}
  return {}


def main() -> int:
  print(json.dumps(first_failure(json.load(sys.stdin))), flush=True)
  return 0
