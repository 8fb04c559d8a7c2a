"""t5x-style gin flags: `--gin_file=` (repeatable), `--gin.NAME=VALUE`, `--gin_search_path=`.

Every entry point parses its command line with `parse_and_bind`, so all of them accept
the same flags as `python -m t5x.train`:

  annotanchor train --gin_file=gin/models/tiny.gin --gin_file=gin/runs/pretrain.gin \
      --gin.MODEL_DIR="'runs/tiny'" --gin.TRAIN_STEPS=20
"""
from __future__ import annotations

import os
from typing import Sequence

import gin

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class GinFlagError(ValueError):
  """A gin file or binding given on the command line could not be applied."""


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
  except (ValueError, KeyError, IOError, SyntaxError) as e:
    raise GinFlagError(f"gin configuration failed: {e}") from None
  return rest


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
