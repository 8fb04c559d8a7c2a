"""The `annotanchor` command: one subcommand per entry point.

  annotanchor train --gin_file=... --gin.MODEL_DIR="'runs/x'"

Each subcommand is also `python -m annotanchor.<name>`; both call the module's `main(argv)`.
"""
from __future__ import annotations

import importlib
import sys

from annotanchor import platforms

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
}


def main(argv: list[str] | None = None) -> int:
  argv = sys.argv[1:] if argv is None else argv
  if not argv or argv[0] in ("-h", "--help") or argv[0] not in SUBCOMMANDS:
    usage = "usage: annotanchor {%s} [--gin_file=F ...] [--gin.NAME=VALUE ...]" % ",".join(SUBCOMMANDS)
    if argv and argv[0] not in ("-h", "--help"):
      print(f"annotanchor: unknown subcommand {argv[0]!r}\n{usage}", file=sys.stderr)
      return 2
    print(usage)
    return 0
  platforms.choose_platform()  # Before any subcommand imports JAX.
  module = importlib.import_module(SUBCOMMANDS[argv[0]])
  return module.main(argv[1:]) or 0


if __name__ == "__main__":
  sys.exit(main())
