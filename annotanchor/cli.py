"""The `annotanchor` command: one subcommand per entry point.

  annotanchor train --gin_file=... --gin.MODEL_DIR="'runs/x'"

Each subcommand is also `python -m annotanchor.<name>`; both call the module's `main(argv)`.
Every subcommand takes `--verbose` (the libraries' start-up and log lines, which it
otherwise keeps quiet: annotanchor/quiet.py) and answers `-h`/`--help` with its module's
docstring, read without importing the module (no TensorFlow or JAX start-up).
"""
from __future__ import annotations

import importlib
import sys

from annotanchor import quiet, startup

# Subcommand -> module with a `main(argv: list[str]) -> int | None`.
SUBCOMMANDS = {
    "train": "annotanchor.train",
    "evaluate": "annotanchor.evaluate",
    "infer": "annotanchor.infer",
    "demo": "annotanchor.demo",
    "annotate": "annotanchor.annotate",
    "serve": "annotanchor.serve",
    "compile": "annotanchor.compile",
    "capability": "annotanchor.capability",
    "convert": "annotanchor.convert",
    "scale": "annotanchor.scale",
    "pair": "annotanchor.pair",
}


def main(argv: list[str] | None = None) -> int:
  argv = sys.argv[1:] if argv is None else list(argv)
  if argv[:1] == [quiet.VERBOSE_FLAG]:  # `annotanchor --verbose train ...`
    argv = [*argv[1:2], quiet.VERBOSE_FLAG, *argv[2:]]
  if not argv or argv[0] in ("-h", "--help") or argv[0] not in SUBCOMMANDS:
    usage = ("usage: annotanchor {%s} [--gin_file=F ...] [--gin.NAME=VALUE ...] [--verbose]"
             % ",".join(SUBCOMMANDS))
    if argv and argv[0] not in ("-h", "--help"):
      print(f"annotanchor: unknown subcommand {argv[0]!r}\n{usage}", file=sys.stderr)
      return 2
    print(usage)
    return 0
  name, args = argv[0], argv[1:]
  if quiet.wants_help(args):
    doc = quiet.module_docstring(SUBCOMMANDS[name])
    if doc is not None:
      print(doc)
      return 0
  with quiet.command(args) as args:  # Before any subcommand imports TF or JAX.
    startup.before_jax()
    module = importlib.import_module(SUBCOMMANDS[name])
    return module.main(args) or 0


if __name__ == "__main__":
  sys.exit(main())
