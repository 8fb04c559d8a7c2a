"""t5x-style gin flags: `--gin_file=` (repeatable), `--gin.NAME=VALUE`, `--gin_search_path=`.

Every entry point parses its command line with `parse_and_bind`, so all of them accept
the same flags as `python -m t5x.train`:

  annotanchor train --gin_file=gin/models/tiny.gin --gin_file=gin/runs/pretrain.gin \
      --gin.MODEL_DIR="'runs/tiny'" --gin.TRAIN_STEPS=20
"""
from __future__ import annotations

import logging
import os
import re
import sys
import tokenize  # gin raises its TokenError for an unclosed bracket.
from typing import Any, Callable, Sequence

import gin

from annotanchor.errors import UserError

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class GinFlagError(UserError, ValueError):
  """A gin file or binding given on the command line could not be applied."""


# gin appends the configurable it was calling to an exception's message: a second line,
# "  In call to configurable 'train' (<function train at 0x7f...>)", useless to a user.
_GIN_CALL_SITE = re.compile(r"\n\s*In call to configurable .*$", re.MULTILINE)


def user_message(error: BaseException) -> str:
  """An error's message without the call-site lines that gin adds to it."""
  return _GIN_CALL_SITE.sub("", str(error)).strip()


def split_gin_flags(argv: Sequence[str]) -> tuple[list[str], list[str], list[str], list[str]]:
  """Separates gin flags from the rest of a command line.

  Args:
    argv: command-line arguments, without the program name.

  Returns:
    (gin files, bindings as `NAME=VALUE` strings, search paths, leftover arguments).

  Raises:
    GinFlagError: a gin flag without a value.
  """
  files, bindings, paths, rest = [], [], [], []
  args = list(argv)
  while args:
    arg = args.pop(0)
    name, has_value, value = arg.partition("=")
    if name in ("--gin_file", "--gin_search_path"):
      if not has_value:  # `--gin_file PATH` form.
        value = args.pop(0) if args else ""
      if not value:
        raise GinFlagError(f"{name} needs a value")
      if name == "--gin_file":
        files.append(value)
      else:
        paths.extend(p for p in value.split(",") if p)
    elif arg.startswith("--gin."):
      if not has_value:
        raise GinFlagError(f"{arg!r}: expected --gin.NAME=VALUE")
      bindings.append(arg[len("--gin."):])
    else:
      rest.append(arg)
  return files, bindings, paths, rest


def parse_and_bind(argv: Sequence[str], *, finalize: bool = True) -> list[str]:
  """Applies the gin flags in `argv` and returns the arguments that are not gin flags.

  Gin files are looked up as given, then under each `--gin_search_path`, then under the
  repository root (so `gin/models/tiny.gin` works from any directory).

  Raises:
    GinFlagError: with gin's own message naming the file or binding at fault.
  """
  files, bindings, paths, rest = split_gin_flags(argv)
  for path in [*paths, _REPO_ROOT]:
    gin.add_config_file_search_path(path)
  try:
    gin.parse_config_files_and_bindings(files, bindings, finalize_config=finalize)
  except (ValueError, KeyError, IOError, SyntaxError, tokenize.TokenError) as e:
    raise GinFlagError(f"gin configuration failed: {e}") from None
  return rest


def bound_model_fields(model_config: Any | None) -> dict[str, Any]:
  """The TransformerConfig fields the user set, which a checkpoint's metadata is checked
  against: all of `model_config`'s (an explicit argument), else those bound in gin by a
  gin/models/ file or flags."""
  import dataclasses  # Here: gin_utils is imported by every command, `--help` included.

  from annotanchor.model.config import TransformerConfig

  if model_config is not None:
    return dataclasses.asdict(model_config)
  try:  # Registered only once a gin file names it (dynamic registration).
    return dict(gin.get_bindings(TransformerConfig))
  except ValueError:
    return {}


def write_operative_config(model_dir: str) -> str:
  """Writes gin's operative config (every binding actually used) to MODEL_DIR/config.gin."""
  import tensorflow as tf  # tf.io.gfile reaches GCS paths on pods.

  tf.io.gfile.makedirs(model_dir)
  path = os.path.join(model_dir, "config.gin")
  tmp = path + ".tmp"
  with tf.io.gfile.GFile(tmp, "w") as f:
    f.write(gin.operative_config_str())
  tf.io.gfile.rename(tmp, path, overwrite=True)
  return path


def run_module_main(module_name: str) -> None:
  """Runs `module_name.main()` from its canonical import, then exits.

  `python -m annotanchor.train` executes the file as `__main__`, a second copy of the
  module that gin files (which import `annotanchor.train`) never bind. Each entry point
  calls this at its top under `if __name__ == "__main__":`, before defining anything.
  """
  import importlib

  from annotanchor import platforms

  platforms.choose_platform()  # Before the module imports JAX.
  sys.exit(importlib.import_module(module_name).main())


def run_main(command: str, fn: Callable[[], Any], argv: Sequence[str] | None, *,
             doc: str | None = None,
             exit_code: Callable[[Any], int] = lambda result: 0, finalize: bool = True) -> int:
  """The shared `main()` of the gin-configured entry points.

  Parses the gin flags, calls `fn()` and turns a `UserError` (bad configuration or input)
  into one line on stderr naming the command, exit status 2. Any other exception is a bug
  and propagates with its traceback (annotanchor/errors.py).

  Args:
    command: subcommand name, for messages ("train").
    fn: the gin-configured entry function, called with no arguments.
    argv: arguments without the program name (default sys.argv[1:]).
    doc: printed for -h/--help.
    exit_code: maps fn's result to the exit status.
    finalize: finalize gin's config (False leaves required macros unchecked, for commands
      that read another entry point's bindings and need only some of them).
  """
  argv = sys.argv[1:] if argv is None else list(argv)
  if doc and any(a in ("-h", "--help") for a in argv):
    print(doc)
    return 0
  # force: absl (imported by TF and orbax) has already installed a root handler.
  logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s",
                      force=True)
  logging.getLogger("absl").setLevel(logging.WARNING)  # Orbax's per-save INFO lines.
  try:
    rest = parse_and_bind(argv, finalize=finalize)
    if rest:
      raise GinFlagError(f"unexpected arguments {rest}; {command} takes only gin flags")
    result = fn()
  except UserError as e:
    print(f"annotanchor {command}: {type(e).__name__}: {user_message(e)}", file=sys.stderr)
    return 2
  return exit_code(result)
