"""The training loop: resume or initialise, step, log, checkpoint, stop cleanly on SIGTERM."""
from __future__ import annotations

import dataclasses
import logging
import signal
import time
from typing import Callable, Iterator, Mapping

import jax
import numpy as np

from annotanchor.errors import UserError
from annotanchor.model.model import DecoderOnlyModel
from annotanchor.model.preference_model import PreferenceModel
from annotanchor.training import checkpoints, multihost, step as step_lib
from annotanchor.training import train_state
from annotanchor.training.flops import peak_flops_per_device
from annotanchor.training.metrics import MetricsWriter
from annotanchor.training.run_config import TrainConfig

# start_step -> iterator over this process's batches, beginning at that step.
DatasetFn = Callable[[int], Iterator[Mapping[str, np.ndarray]]]


class NonFiniteLossError(UserError, RuntimeError):
  """The loss or gradient norm became NaN/Inf under nan_policy='stop'."""


@dataclasses.dataclass
class TrainResult:
  state: train_state.TrainState
  last_step: int
  preempted: bool
  last_metrics: dict[str, float]


def _reference_params(config: TrainConfig, model: DecoderOnlyModel, abstract) -> tuple:
  """The step's frozen arguments: a preference model's reference, else nothing.

  The reference is the initial checkpoint, restored at every start, resumed or not, so a
  resumed run compares against the same policy. It is restored into buffers of its own,
  never the policy's: the train state is donated to each step.
  """
  if not isinstance(model, PreferenceModel):
    return ()
  path = config.checkpoint.initial_checkpoint_path
  logging.info("Reference policy (frozen): %s", path)
  return (checkpoints.restore_params(path, abstract.params),)


def _row_shape(local: Mapping[str, np.ndarray]) -> tuple[int, int]:
  """(row length, rows) of a process's batch: every `*decoder_target_tokens` feature is a
  set of rows (one for a language model, the two sides of pairs for preferences)."""
  rows = [v.shape for k, v in local.items() if k.endswith("decoder_target_tokens")]
  return rows[0][1], sum(shape[0] for shape in rows)


class _SigtermFlag:
  """Records SIGTERM (preemption notice) so the loop can checkpoint and exit."""

  def __init__(self):
    self.raised = False
    self._previous = None

  def __enter__(self):
    try:
      self._previous = signal.signal(signal.SIGTERM, self._handle)
    except ValueError:  # Not the main thread: no handler, no preemption save.
      self._previous = None
    return self

  def _handle(self, signum, frame):
    del signum, frame
    self.raised = True

  def __exit__(self, *exc):
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)


def train_loop(config: TrainConfig, *, model: DecoderOnlyModel, optimizer, schedule, mesh,
               dataset_fn: DatasetFn, metadata: Mapping | None = None,
               async_checkpoints: bool = True, progress_bar: bool | None = None) -> TrainResult:
  """Trains `model` to `config.train_steps`, resuming from MODEL_DIR/checkpoints when present.

  The loop reads the run's settings from `config` where it uses them (run directory, steps,
  batch, step, checkpoint cadence, seed, logging); what is built from them (the model, the
  optimizer and its schedule, the mesh, the data) comes in as arguments, so a test can hand
  in its own devices or batches.

  The data stream is resumed at the restored step (dataset_fn(start_step)), so an
  interrupted and resumed run ends with the same parameters as an uninterrupted one.
  `metadata` is written into every checkpoint (see `checkpoints.Checkpointer`).
  """
  model_dir, train_steps = config.model_dir, config.train_steps
  batch_size = config.data.batch_size
  step_fn, abstract, shardings = step_lib.sharded_train_step(
      model, optimizer, schedule, mesh, batch_size=batch_size,
      microbatches=config.step.microbatches, nan_policy=config.step.nan_policy)
  ckpt = checkpoints.Checkpointer(model_dir, save_every=config.checkpoint.every,
                                  keep=config.checkpoint.keep, async_save=async_checkpoints,
                                  metadata=metadata)
  state = ckpt.restore_latest(abstract)
  if state is not None:
    logging.info("Resuming from %s/%d", ckpt.directory, int(state.step))
  else:
    state = train_state.init_state(model, optimizer, jax.random.PRNGKey(config.seed), shardings)
    initial_checkpoint_path = config.checkpoint.initial_checkpoint_path
    if initial_checkpoint_path:
      logging.info("Initialising parameters from %s", initial_checkpoint_path)
      state = state.replace(params=checkpoints.restore_params(initial_checkpoint_path,
                                                              abstract.params))
  frozen = _reference_params(config, model, abstract)
  start = int(state.step)
  if start >= train_steps:
    logging.info("%s already holds step %d of %d: nothing to train", ckpt.directory, start,
                 train_steps)
    ckpt.close()
    return TrainResult(state=state, last_step=start, preempted=False, last_metrics={})

  peak, peak_source = peak_flops_per_device(config.peak_flops)
  logging.info("MFU against %.3g FLOP/s per device (%s)", peak, peak_source)
  writer = MetricsWriter(model_dir, start_step=start, total_steps=train_steps,
                         enabled=jax.process_index() == 0, progress_bar=progress_bar)
  data = dataset_fn(start)
  pending: list[dict] = []
  last: dict[str, float] = {}
  preempted = False
  step = start
  window_start, window_step = time.perf_counter(), start
  try:
    with _SigtermFlag() as sigterm:
      while step < train_steps:
        try:
          local = next(data)
        except StopIteration:
          raise RuntimeError(f"the training data ran out at step {step} of {train_steps}") from None
        if step == start:  # Throughput figures need the row length.
          sequence_length, rows = _row_shape(local)
          tokens_per_step = rows * jax.process_count() * sequence_length
          # Training FLOPs of the rows the policy learns from (a reference's forward passes
          # are not counted).
          flops_per_step = model.config.flops_per_token(sequence_length) * tokens_per_step
          writer.announce(batch_size, sequence_length)
        state, metrics = step_fn(state, multihost.global_batch(local, mesh), *frozen)
        step += 1
        pending.append(metrics)
        if step == start + 1:  # Leave compilation out of the first throughput window.
          jax.block_until_ready(metrics)
          window_start, window_step = time.perf_counter(), step
          writer.start_clock(step)
        ckpt.save(state, step=step)
        log_now = step % config.log_every == 0 or step == train_steps
        if log_now or sigterm.raised:
          host = jax.device_get(pending)
          pending = []
          first = step - len(host) + 1
          bad = [first + i for i, m in enumerate(host) if m["nonfinite"]]
          last = {k: float(v) for k, v in host[-1].items() if k != "nonfinite"}
          steps_done = step - window_step
          if steps_done:  # A window holding only the compiling step has no throughput.
            elapsed = time.perf_counter() - window_start
            last["tokens_per_second"] = tokens_per_step * steps_done / elapsed
            last["mfu"] = flops_per_step * steps_done / elapsed / (peak * mesh.devices.size)
          last["nonfinite_steps"] = float(sum(m["nonfinite"] for m in host))
          writer.write(step, last)
          window_start, window_step = time.perf_counter(), step
          if bad and config.step.nan_policy == "stop":
            raise NonFiniteLossError(
                f"loss or gradient norm was NaN/Inf at step(s) {bad[:5]}; the last good "
                f"checkpoint is in {ckpt.directory} (nan_policy='stop')")
        # Across processes the decision must be collective, so it is taken at log steps.
        check_preemption = log_now or jax.process_count() == 1
        if check_preemption and multihost.any_process(sigterm.raised):
          logging.warning("SIGTERM received: saving step %d and exiting", step)
          ckpt.save(state, step=step, force=True)
          preempted = True
          break
      if not preempted:
        ckpt.save(state, step=step, force=True)
  finally:
    ckpt.wait()
    ckpt.close()
    writer.close()
  return TrainResult(state=state, last_step=step, preempted=preempted, last_metrics=last)
