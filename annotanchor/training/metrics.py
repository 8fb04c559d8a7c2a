"""Training metrics to MODEL_DIR/train_metrics.jsonl, TensorBoard and the terminal."""
from __future__ import annotations

import json
import os
import sys
from typing import Mapping

import tensorflow as tf
import tqdm


def truncate_jsonl_after(path: str, step: int) -> None:
  """Drops logged steps past `step` (work lost by an interruption), atomically."""
  if not tf.io.gfile.exists(path):
    return
  with tf.io.gfile.GFile(path) as f:
    kept = [line for line in f if line.strip() and json.loads(line)["step"] <= step]
  tmp = path + ".tmp"
  with tf.io.gfile.GFile(tmp, "w") as f:
    f.write("".join(kept))
  tf.io.gfile.rename(tmp, path, overwrite=True)


class MetricsWriter:
  """Writes one record per logged step; only process 0 writes.

  Args:
    model_dir: run directory; jsonl and TensorBoard events go there.
    start_step: first step of this run (earlier lines past it are dropped on resume).
    total_steps: TRAIN_STEPS, for the progress bar.
    enabled: whether this process writes (process 0 on pods).
    progress_bar: a tqdm bar on interactive terminals; plain lines otherwise.
  """

  def __init__(self, model_dir: str, *, start_step: int, total_steps: int, enabled: bool = True,
               progress_bar: bool | None = None):
    self.enabled = enabled
    if not enabled:
      return
    tf.io.gfile.makedirs(model_dir)
    self.jsonl_path = os.path.join(model_dir, "train_metrics.jsonl")
    truncate_jsonl_after(self.jsonl_path, start_step)
    self._jsonl = tf.io.gfile.GFile(self.jsonl_path, "a")
    self._summary = tf.summary.create_file_writer(os.path.join(model_dir, "tensorboard"))
    interactive = sys.stdout.isatty() if progress_bar is None else progress_bar
    self._bar = (tqdm.tqdm(total=total_steps, initial=start_step, unit="step", dynamic_ncols=True)
                 if interactive else None)
    self._last_step = start_step

  def write(self, step: int, metrics: Mapping[str, float]) -> None:
    if not self.enabled:
      return
    record = {"step": step, **{k: float(v) for k, v in metrics.items()}}
    self._jsonl.write(json.dumps(record) + "\n")
    self._jsonl.flush()
    with self._summary.as_default(step=step):
      for name, value in metrics.items():
        tf.summary.scalar(name, value)
    self._summary.flush()
    shown = {k: record[k] for k in ("loss", "tokens_per_second", "mfu", "learning_rate", "grad_norm")
             if k in record}
    if self._bar is not None:
      self._bar.update(step - self._last_step)
      self._bar.set_postfix({k: f"{v:.4g}" for k, v in shown.items()})
    else:
      print(f"step {step}: " + "  ".join(f"{k}={v:.4g}" for k, v in shown.items()), flush=True)
    self._last_step = step

  def close(self) -> None:
    if self.enabled:
      self._jsonl.close()
      self._summary.close()
      if self._bar is not None:
        self._bar.close()
