"""A tiny model and deterministic packed batches for the training tests.

Used in-process by the tests and by multiprocess_worker.py in subprocesses, so both sides
train on exactly the same global batches.
"""
from __future__ import annotations

import numpy as np

from annotanchor.model.config import TransformerConfig
from annotanchor.model.model import DecoderOnlyModel
from annotanchor.training import loop, optim, partitioning, run_config

# Every sharded dimension divides 8 and 4, so any test mesh fits.
TINY = TransformerConfig(vocab_size=64, d_model=32, num_layers=2, num_heads=8, num_kv_heads=4,
                         head_dim=8, mlp_dim=64, max_len=64, qk_norm=True)
BATCH, LENGTH = 8, 16


def packed_batch(step: int, batch: int = BATCH, length: int = LENGTH, vocab: int = 64,
                 seed: int = 0) -> dict[str, np.ndarray]:
  """The global batch of `step`: two packed segments per row, random loss weights.

  Row example (length 6, split at 4): targets [t0 t1 t2 t3 | u0 u1],
  inputs [0 t0 t1 t2 | 0 u0], segment_ids [1 1 1 1 2 2], positions [0 1 2 3 0 1].
  """
  rng = np.random.default_rng([seed, step])
  targets = rng.integers(2, vocab, size=(batch, length)).astype(np.int32)
  split = rng.integers(2, length - 1, size=(batch, 1))
  index = np.arange(length)[None, :]
  segment_ids = np.where(index < split, 1, 2).astype(np.int32)
  positions = np.where(index < split, index, index - split).astype(np.int32)
  inputs = np.concatenate([np.zeros((batch, 1), np.int32), targets[:, :-1]], axis=1)
  inputs[positions == 0] = 0
  weights = (rng.random((batch, length)) < 0.7).astype(np.float32)
  return {"decoder_input_tokens": inputs, "decoder_target_tokens": targets,
          "decoder_loss_weights": weights, "decoder_segment_ids": segment_ids,
          "decoder_positions": positions}


def dataset_fn(process_index: int = 0, process_count: int = 1, batch: int = BATCH):
  """start_step -> this process's rows of each global batch."""
  rows = batch // process_count
  def batches(start_step: int):
    step = start_step
    while True:
      full = packed_batch(step, batch=batch)
      yield {k: v[process_index * rows:(process_index + 1) * rows] for k, v in full.items()}
      step += 1
  return batches


def config(model_dir: str, *, steps: int = 3, microbatches: int = 1, nan_policy: str = "skip",
           log_every: int = 1, checkpoint_every: int = 1000, keep_checkpoints: int = 3,
           initial_checkpoint_path: str | None = None) -> run_config.TrainConfig:
  """The TrainConfig of a TINY run on these batches (its task name is never looked up).

  `steps=0`, which TrainConfig refuses from a user (a run that trains nothing), is set after
  validation: the tests use it to see the state a run starts from (restored or initial).
  """
  config = run_config.TrainConfig(
      model_dir=model_dir, train_steps=max(steps, 1), model=TINY,
      data=run_config.DataConfig(mixture_or_task_name="tiny_setup.packed_batch",
                                 task_feature_lengths={"targets": LENGTH}, batch_size=BATCH),
      step=run_config.StepConfig(microbatches=microbatches, nan_policy=nan_policy),
      checkpoint=run_config.CheckpointConfig(every=checkpoint_every, keep=keep_checkpoints,
                                             initial_checkpoint_path=initial_checkpoint_path),
      log_every=log_every, peak_flops=1e12)
  if steps == 0:
    object.__setattr__(config, "train_steps", 0)  # Frozen dataclass: set past validation.
  return config


def run(model_dir: str, mesh_degrees, *, steps: int = 3, process_index: int = 0,
        process_count: int = 1, devices=None, **settings):
  """Trains TINY for `steps` on the deterministic batches, logging every step; `settings`
  are `config`'s."""
  tx, schedule = optim.make_optimizer(optim.OptimizerConfig(learning_rate=1e-2, warmup_steps=1), 10)
  return loop.train_loop(
      config(model_dir, steps=steps, **settings), model=DecoderOnlyModel(TINY), optimizer=tx,
      schedule=schedule, mesh=partitioning.make_mesh(mesh_degrees, devices),
      dataset_fn=dataset_fn(process_index, process_count), progress_bar=False)


def logged_losses(model_dir: str) -> list[float]:
  import json, os
  with open(os.path.join(model_dir, "train_metrics.jsonl")) as f:
    return [json.loads(line)["loss"] for line in f]
