"""Orbax checkpoints: async saves, keep-last-K, resume, resharding restore, strict checks.

Layout: MODEL_DIR/checkpoints/<step>/{params, opt_state, meta}. Parameters are their own
item so fine-tuning (INITIAL_CHECKPOINT_PATH) reads them without the optimizer state.
Resuming skips damaged checkpoints, moving them to MODEL_DIR/damaged_checkpoints/.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import re
from typing import Any, Mapping

import jax
from jax.experimental import multihost_utils
import numpy as np
import orbax.checkpoint as ocp
import tensorflow as tf

from annotanchor.errors import UserError
from annotanchor.training import multihost, orbax_loops
from annotanchor.training.train_state import TrainState

orbax_loops.install()  # A failed restore lets its other reads end before closing its loop.

_ITEMS = ("params", "opt_state", "meta")
# TensorStore's status codes for stored data that is missing or unreadable.
_DAMAGE_STATUS = re.compile(r"^(NOT_FOUND|FAILED_PRECONDITION|OUT_OF_RANGE|DATA_LOSS): ")


class CheckpointMismatchError(UserError, ValueError):
  """A checkpoint whose arrays do not match the model being restored (also a ValueError,
  as it was before UserError existed)."""


class CheckpointNotFoundError(UserError, FileNotFoundError):
  """A checkpoint path that holds no checkpoint."""


class CheckpointDamagedError(UserError):
  """A checkpoint with missing, truncated or unreadable files.

  Attributes:
    directory: the damaged checkpoint's directory.
    cause: what Orbax or TensorStore reported, on one line.
  """

  def __init__(self, directory: str, cause: str, advice: str = ""):
    super().__init__(f"the checkpoint at {directory} is damaged ({cause}){advice}")
    self.directory, self.cause = directory, cause


def _damage_cause(error: BaseException | None, directory: str) -> str | None:
  """One line on what is damaged, when `error` or its explicit causes report files under
  `directory` missing or unreadable; None for any other error."""
  while error is not None:
    # Drop TensorStore's spec dumps ("... [tensorstore_spec=...]", multi-line specs).
    text = str(error).split("\n")[0].split(" [")[0]
    if isinstance(error, json.JSONDecodeError):
      return f"unreadable JSON: {text}"
    if directory in text and (isinstance(error, FileNotFoundError) or (
        isinstance(error, ValueError) and _DAMAGE_STATUS.match(text))):
      return text.replace(directory, os.path.basename(directory))  # Named once is enough.
    error = error.__cause__
  return None


@contextlib.contextmanager
def _damage_reported(directory: str, advice: str = ""):
  """Raises CheckpointDamagedError for errors that report files under `directory` missing
  or unreadable; every other error propagates unchanged, traceback and all."""
  try:
    yield
  except Exception as e:  # Orbax wraps TensorStore's read errors in bare Exceptions.
    cause = _damage_cause(e, directory)
    if cause is None:
      raise
    raise CheckpointDamagedError(directory, cause, advice) from e


def _sync_processes(name: str) -> None:
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(name)


def _key_name(key) -> str:
  for attr in ("key", "name", "idx"):
    if hasattr(key, attr):
      return str(getattr(key, attr))
  return str(key)


def _flat_shapes(tree) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
  """'a/b/c' -> (shape, dtype), with dict keys, attributes and indices named alike."""
  flat, _ = jax.tree_util.tree_flatten_with_path(tree)
  return {"/".join(_key_name(k) for k in path): (tuple(leaf.shape), np.dtype(leaf.dtype))
          for path, leaf in flat}


def absolute(path: str) -> str:
  """Orbax needs absolute paths: local relative ones are made absolute, URLs (gs://) kept."""
  return path if "://" in path else os.path.abspath(path)


def check_matches(saved_tree, target_tree, where: str) -> None:
  """Raises CheckpointMismatchError naming the first missing, extra or mismatched array."""
  saved, target = _flat_shapes(saved_tree), _flat_shapes(target_tree)
  for name in sorted(target):
    if name not in saved:
      raise CheckpointMismatchError(f"{where}: the checkpoint has no array {name!r}")
    if saved[name][0] != target[name][0]:
      raise CheckpointMismatchError(
          f"{where}: {name!r} has shape {saved[name][0]} in the checkpoint but the model "
          f"expects {target[name][0]}")
    if saved[name][1] != target[name][1]:
      raise CheckpointMismatchError(
          f"{where}: {name!r} has dtype {saved[name][1]} in the checkpoint but the model "
          f"expects {target[name][1]}")
  extra = sorted(set(saved) - set(target))
  if extra:
    raise CheckpointMismatchError(
        f"{where}: the checkpoint has arrays the model lacks, first {extra[0]!r}")


class Checkpointer:
  """Saves and restores TrainStates under MODEL_DIR/checkpoints.

  Args:
    model_dir: the run directory (local or a tf.io.gfile path such as gs://).
    save_every: save when step % save_every == 0 (the final and preemption saves are forced).
    keep: number of most recent checkpoints kept.
    async_save: write in a background thread while training continues.
    metadata: JSON written into every checkpoint's `meta` item next to the step (what the
      run was trained with: annotanchor/training/metadata.py).
  """

  def __init__(self, model_dir: str, *, save_every: int, keep: int = 3, async_save: bool = True,
               metadata: Mapping[str, Any] | None = None):
    self.directory = os.path.join(absolute(model_dir), "checkpoints")
    self.save_every = save_every
    self.metadata = dict(metadata or {})
    # Cadence is decided here: Orbax's interval policy also saves the first step it sees.
    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep, save_interval_steps=1,
        enable_async_checkpointing=async_save, create=True)
    # Handlers named up front: a manager that has not saved yet can then read metadata.
    handlers = {"params": ocp.StandardCheckpointHandler(),
                "opt_state": ocp.StandardCheckpointHandler(),
                "meta": ocp.JsonCheckpointHandler()}
    self.manager = ocp.CheckpointManager(self.directory, options=options, item_handlers=handlers)

  def save(self, state: TrainState, *, step: int, force: bool = False) -> bool:
    """Starts a save of `state` (at `step`, known on the host) if due or forced.

    Returns whether a save started. `step` is passed rather than read from the state so
    that checking does not wait for the device.
    """
    if not (force or step % self.save_every == 0) or step in self.manager.all_steps():
      return False
    return self.manager.save(
        step, force=force,
        args=ocp.args.Composite(
            params=ocp.args.StandardSave(state.params),
            opt_state=ocp.args.StandardSave(state.opt_state),
            meta=ocp.args.JsonSave({"step": step, **self.metadata})))

  def restore(self, step: int, abstract: TrainState) -> TrainState:
    """Restores `step` into the shardings carried by `abstract` (any mesh).

    Raises:
      CheckpointMismatchError: the checkpoint holds another model's arrays.
      CheckpointDamagedError: files of the checkpoint are missing, truncated or unreadable.
    """
    where = os.path.join(self.directory, str(step))
    with _damage_reported(where):
      for item in _ITEMS:
        if not tf.io.gfile.isdir(os.path.join(where, item)):
          raise CheckpointDamagedError(where, f"no {item}/ directory")
      metadata = self.manager.metadata(step).item_metadata
      for item in ("params", "opt_state"):
        if metadata[item] is None:  # Orbax reads a missing _METADATA as None.
          raise CheckpointDamagedError(where, f"{item}/ has no readable metadata")
        check_matches(metadata[item].tree, getattr(abstract, item), f"{where}/{item}")
      restored = self.manager.restore(step, args=ocp.args.Composite(
          params=ocp.args.StandardRestore(abstract.params),
          opt_state=ocp.args.StandardRestore(abstract.opt_state), meta=ocp.args.JsonRestore()))
    return TrainState(step=jax.numpy.asarray(restored["meta"]["step"], jax.numpy.int32),
                      params=restored["params"], opt_state=restored["opt_state"])

  def restore_latest(self, abstract: TrainState) -> TrainState | None:
    """The newest checkpoint that restores, or None when there is none.

    Damaged newer checkpoints are moved to MODEL_DIR/damaged_checkpoints/ with a warning:
    the user's files are kept, and their steps can be saved again.

    Raises:
      CheckpointDamagedError: every checkpoint is damaged (then nothing is moved).
      CheckpointMismatchError: a checkpoint holds another model's arrays.
    """
    damaged: list[tuple[int, CheckpointDamagedError]] = []
    for step in sorted(self.manager.all_steps(), reverse=True):
      try:
        state, error = self.restore(step, abstract), None
      except CheckpointDamagedError as e:
        state, error = None, e
      # Each process reads its own shards, so all fall back if any of them saw damage.
      if multihost.any_process(error is not None):
        damaged.append((step, error or CheckpointDamagedError(
            os.path.join(self.directory, str(step)), "unreadable on another process")))
        continue
      if damaged:
        self._set_aside(damaged, resumed=step)
      return state
    if damaged:
      newest = damaged[0][1]
      raise CheckpointDamagedError(
          newest.directory, newest.cause,
          f" and no older checkpoint in {self.directory} restores: move it elsewhere (or "
          f"delete it) to train from step 0") from newest
    return None

  def _set_aside(self, damaged: list[tuple[int, CheckpointDamagedError]], resumed: int):
    """Moves the damaged steps to MODEL_DIR/damaged_checkpoints/, under names not yet used
    there, and says so."""
    aside = os.path.join(os.path.dirname(self.directory), "damaged_checkpoints")
    targets = []
    for step, _ in damaged:
      target, copies = os.path.join(aside, str(step)), 0
      while tf.io.gfile.exists(target):
        copies += 1
        target = os.path.join(aside, f"{step}.{copies}")
      targets.append(target)
    _sync_processes("annotanchor: damaged checkpoints named")  # Before any is moved.
    for (step, error), target in zip(damaged, targets):
      if jax.process_index() == 0:
        tf.io.gfile.makedirs(aside)
        tf.io.gfile.rename(error.directory, target)
      logging.warning("checkpoint step %d at %s is damaged (%s); moved it to %s; resuming "
                      "from step %d", step, error.directory, error.cause, target, resumed)
    _sync_processes("annotanchor: damaged checkpoints set aside")  # Before Orbax relists.
    self.manager.reload()

  def wait(self) -> None:
    self.manager.wait_until_finished()

  def close(self) -> None:
    self.manager.close()


def resolve_step_dir(path: str, setting: str = "INITIAL_CHECKPOINT_PATH") -> str:
  """The step directory a checkpoint path names: the path itself when it is one, else the
  latest step of a checkpoints/ directory or of a MODEL_DIR's; `setting` names it in errors.

  Resolve a path once and read everything from the step directory it gives: a MODEL_DIR
  still training gains steps, so resolving it again may name a newer one.
  """
  path = absolute(path)
  for candidate in (path, os.path.join(path, "checkpoints")):
    if tf.io.gfile.isdir(os.path.join(candidate, "params")):
      return candidate
    if tf.io.gfile.isdir(candidate):
      steps = [int(s.rstrip("/")) for s in tf.io.gfile.listdir(candidate) if s.rstrip("/").isdigit()]
      if steps:
        return os.path.join(candidate, str(max(steps)))
  raise CheckpointNotFoundError(
      f"{setting}={path!r} holds no checkpoint (expected a step directory with "
      f"params/, a checkpoints/ directory, or a MODEL_DIR)")


def resolve_params_dir(path: str, setting: str = "INITIAL_CHECKPOINT_PATH") -> str:
  """The params item of a checkpoint path (see `resolve_step_dir`)."""
  return os.path.join(resolve_step_dir(path, setting), "params")


def restore_params(path: str, abstract_params: Any,
                   setting: str = "INITIAL_CHECKPOINT_PATH") -> Any:
  """Parameters only, from a checkpoint path (named `setting` in errors), into the current
  mesh's shardings.

  Raises:
    CheckpointNotFoundError: `path` holds no checkpoint.
    CheckpointMismatchError: the checkpoint holds another model's arrays.
    CheckpointDamagedError: files of the checkpoint are missing, truncated or unreadable.
  """
  params_dir = resolve_params_dir(path, setting)
  advice = f" ({setting}={path!r})"
  with _damage_reported(params_dir, advice), ocp.StandardCheckpointer() as checkpointer:
    metadata = checkpointer.metadata(params_dir).item_metadata
    if metadata is None:  # Orbax logs why and reads the metadata as None.
      raise CheckpointDamagedError(params_dir, "no readable metadata", advice)
    check_matches(metadata.tree, abstract_params, params_dir)
    return checkpointer.restore(params_dir, abstract_params)
