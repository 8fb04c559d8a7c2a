"""User-supplied functions: import by path, and adapt to (prompt, annotation, response)."""
import importlib
from typing import Callable, Sequence

import gin

from annotanchor.errors import SettingError

INPUTS = ("prompt", "annotation", "response")


def import_object(path: str) -> object:
  """Imports `package.module:name` or `package.module.name`.

  Raises:
    ValueError: naming the path, when the module or the name is not found.
  """
  module_name, sep, attr = path.partition(":")
  if not sep:
    module_name, _, attr = path.rpartition(".")
  if not module_name or not attr:
    raise SettingError(f"{path!r} is not an import path like 'package.module:function'")
  try:
    # A command names its hooks in gin and imports them once its gin config is locked;
    # a module that registers configurables on import (tasks/ does) would then make gin
    # refuse ("Attempted to add a new configurable after the config was locked").
    # Registering is harmless here: nothing binds them any more.
    with gin.unlock_config():
      module = importlib.import_module(module_name)
  except ImportError as e:
    raise SettingError(f"cannot import module {module_name!r} of {path!r}: {e}") from None
  obj = module
  for part in attr.split("."):
    if not hasattr(obj, part):
      raise SettingError(f"module {module_name!r} has no {attr!r} (from {path!r})")
    obj = getattr(obj, part)
  return obj


def import_callable(path: str) -> Callable:
  """`import_object`, checked to be callable."""
  fn = import_object(path)
  if not callable(fn):
    raise SettingError(f"{path!r} is not callable")
  return fn


def check_inputs(inputs: Sequence[str]) -> tuple:
  """Validates a choice of sample fields; returns it as a tuple."""
  bad = [i for i in inputs if i not in INPUTS]
  if bad or not inputs:
    raise SettingError(f"inputs {list(inputs)} must be a non-empty subset of {INPUTS}")
  return tuple(inputs)


def adapt(fn: Callable, inputs: Sequence[str] = INPUTS) -> Callable[[str, str, str], object]:
  """Wraps `fn`, which takes the sample fields named in `inputs` (in that order), as a
  function of (prompt, annotation, response). An exact response parser or checker
  that reads only the text takes ("response",); one that checks prompt adherence
  takes ("prompt", "response")."""
  inputs = check_inputs(inputs)
  if inputs == INPUTS:
    return fn

  def call(prompt: str, annotation: str, response: str):
    fields = {"prompt": prompt, "annotation": annotation, "response": response}
    return fn(*(fields[i] for i in inputs))
  call.__name__ = getattr(fn, "__name__", "adapted")
  call.__wrapped__ = fn
  return call
