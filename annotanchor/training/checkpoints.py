"""Orbax checkpoints: async saves, keep-last-K, resume, resharding restore, strict checks.

Layout: MODEL_DIR/checkpoints/<step>/{params, opt_state, meta}. Parameters are their own
item so fine-tuning (INITIAL_CHECKPOINT_PATH) reads them without the optimizer state.
"""
from __future__ import annotations

import os
from typing import Any, Mapping

import jax
import numpy as np
import orbax.checkpoint as ocp
import tensorflow as tf

from annotanchor.errors import UserError
from annotanchor.training.train_state import TrainState


class CheckpointMismatchError(UserError, ValueError):
  """A checkpoint whose arrays do not match the model being restored."""


class CheckpointNotFoundError(UserError, FileNotFoundError):
  """A checkpoint path with no checkpoint under it."""


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

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

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
    """Restores `step` into the shardings carried by `abstract` (any mesh)."""
    metadata = self.manager.metadata(step).item_metadata
    where = os.path.join(self.directory, str(step))
    check_matches(metadata["params"].tree, abstract.params, where + "/params")
    check_matches(metadata["opt_state"].tree, abstract.opt_state, where + "/opt_state")
    restored = self.manager.restore(step, args=ocp.args.Composite(
        params=ocp.args.StandardRestore(abstract.params), opt_state=ocp.args.StandardRestore(abstract.opt_state),
        meta=ocp.args.JsonRestore()))
    return TrainState(step=jax.numpy.asarray(restored["meta"]["step"], jax.numpy.int32),
                      params=restored["params"], opt_state=restored["opt_state"])

  def wait(self) -> None:
    self.manager.wait_until_finished()

  def close(self) -> None:
    self.manager.close()


def resolve_params_dir(path: str, setting: str = "INITIAL_CHECKPOINT_PATH") -> str:
  """The params item of a checkpoint path: a step directory, a checkpoints directory (its
  latest step) or a MODEL_DIR (its latest checkpoint); `setting` names it in errors."""
  candidates = [path, os.path.join(path, "checkpoints")]
  for candidate in candidates:
    if tf.io.gfile.isdir(os.path.join(candidate, "params")):
      return os.path.join(candidate, "params")
    if tf.io.gfile.isdir(candidate):
      steps = [int(s.rstrip("/")) for s in tf.io.gfile.listdir(candidate) if s.rstrip("/").isdigit()]
      if steps:
        return os.path.join(candidate, str(max(steps)), "params")
  raise CheckpointNotFoundError(
      f"{setting}={path!r} holds no checkpoint (expected a step directory with "
      f"params/, a checkpoints/ directory, or a MODEL_DIR)")


def restore_params(path: str, abstract_params: Any,
                   setting: str = "INITIAL_CHECKPOINT_PATH") -> Any:
  """Parameters only, from a checkpoint path (named `setting` in errors), into the current
  mesh's shardings."""
  params_dir = resolve_params_dir(absolute(path), setting)
  with ocp.StandardCheckpointer() as checkpointer:
    check_matches(checkpointer.metadata(params_dir).item_metadata.tree, abstract_params,
                  params_dir)
    return checkpointer.restore(params_dir, abstract_params)
