"""The persistent XLA compilation cache that every `annotanchor` command uses by default.

A command compiles its programs (train step, decode loop, scorers) before it does any
work: 8 of the 22 s of a tiny `train` on a 2-core CPU, minutes for a billion-parameter
model on a TPU slice. JAX can keep compiled programs on disk and load them when the same
program comes again with the same compile options, XLA flags and devices: a rerun, a
resumed or preempted job, the demo's steps that share shapes (its two pretraining runs,
its two SFT runs, its sampling arms). MaxText keeps such a cache too (`jax_cache_dir`).

`configure()` runs before JAX is imported and sets, only where the environment does not
already set them:

  JAX_COMPILATION_CACHE_DIR                   $XDG_CACHE_HOME/annotanchor/xla
                                              (~/.cache/annotanchor/xla)
  JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS  0: every program (JAX's default, 1 s, leaves
                                              out the many small ones a step compiles)
  JAX_COMPILATION_CACHE_MAX_SIZE              4 GiB, the least recently used evicted; a
                                              bound also turns on JAX's file lock, so that
                                              one process never reads an entry another is
                                              still writing

`JAX_COMPILATION_CACHE_DIR=` (empty) turns the cache off; any other value moves it. A
cache entry is keyed by the program, compile options, XLA_FLAGS, devices and the jax and
jaxlib versions, so a changed model, mesh or flag compiles anew and never loads a stale
program.
"""
from __future__ import annotations

import logging
import os
from typing import MutableMapping

DIR = "JAX_COMPILATION_CACHE_DIR"
MIN_COMPILE_TIME = "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"
MAX_SIZE = "JAX_COMPILATION_CACHE_MAX_SIZE"
DEFAULT_MAX_SIZE = 4 << 30


def default_dir(environ: MutableMapping[str, str] = os.environ) -> str:
  cache_home = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  return os.path.join(cache_home, "annotanchor", "xla")


def configure(environ: MutableMapping[str, str] = os.environ) -> str | None:
  """Sets the cache's environment variables (the module docstring). Before JAX is imported.

  Returns:
    The cache directory in use, or None when the cache is off: turned off by the user, or
    its default directory cannot be made (a read-only home), which is not worth a warning.
  """
  if DIR not in environ:
    path = default_dir(environ)
    try:
      os.makedirs(path, exist_ok=True)
    except OSError as e:
      logging.getLogger(__name__).debug("no compilation cache: %s", e)
      return None
    environ[DIR] = path
  if not environ[DIR]:
    return None
  environ.setdefault(MIN_COMPILE_TIME, "0")
  environ.setdefault(MAX_SIZE, str(DEFAULT_MAX_SIZE))
  return environ[DIR]
