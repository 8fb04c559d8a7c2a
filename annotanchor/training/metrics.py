"""Training metrics to MODEL_DIR/train_metrics.jsonl, TensorBoard and the terminal."""
from __future__ import annotations

import json
import os
import sys
import time
from typing import Mapping, Optional

import tensorflow as tf
import tqdm

from annotanchor.atomic_files import write_atomic


def truncate_jsonl_after(path: str, step: int) -> None:
  """Drops logged steps past `step` (work lost by an interruption), atomically."""
  if not tf.io.gfile.exists(path):
    return
  with tf.io.gfile.GFile(path) as f:
    kept = [line for line in f if line.strip() and json.loads(line)["step"] <= step]
  write_atomic(path, "".join(kept))


# The figures shown on the terminal: record key -> label, format.
_SHOWN = {"loss": ("loss", ".4g"), "tokens_per_second": ("tokens/s", ".0f"), "mfu": ("mfu", ".4g"),
          "learning_rate": ("lr", ".4g"), "grad_norm": ("grad_norm", ".4g")}


def format_duration(seconds: float) -> str:
  """'1h02m', '1m05s' or '42s'."""
  s = int(round(seconds))
  if s >= 3600:
    return f"{s // 3600}h{s % 3600 // 60:02d}m"
  if s >= 60:
    return f"{s // 60}m{s % 60:02d}s"
  return f"{s}s"


def progress_line(step: int, total_steps: int, metrics: Mapping[str, float],
                  seconds_left: Optional[float]) -> str:
  """`step 20/200 (10%): loss=2.31 tokens/s=12034 ... ETA 1m05s` (no ETA before a rate is
  measured)."""
  shown = "  ".join(f"{label}={metrics[k]:{spec}}" for k, (label, spec) in _SHOWN.items()
                    if k in metrics)
  line = f"step {step}/{total_steps} ({step / max(total_steps, 1):.0%}): {shown}"
  return line if seconds_left is None else f"{line}  ETA {format_duration(seconds_left)}"


class MetricsWriter:
  """Writes one record per logged step; only process 0 writes.

  On the terminal: a tqdm bar on interactive terminals, otherwise a `progress_line` per
  logged step, with the time left from the step rate measured since `start_clock`.

  Args:
    model_dir: run directory; jsonl and TensorBoard events go there.
    start_step: first step of this run (earlier lines past it are dropped on resume).
    total_steps: TRAIN_STEPS, for the progress bar and lines.
    enabled: whether this process writes (process 0 on pods).
    progress_bar: a tqdm bar on interactive terminals; plain lines otherwise.
  """

  def __init__(self, model_dir: str, *, start_step: int, total_steps: int, enabled: bool = True,
               progress_bar: bool | None = None):
    self.enabled = enabled
    self.start_step, self.total_steps = start_step, total_steps
    self._clock: Optional[tuple[float, int]] = None  # (time, step) the rate is measured from.
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

  def announce(self, batch_size: int, sequence_length: int) -> None:
    """Says once, at start, which steps this run trains and on what batches."""
    if not self.enabled:
      return
    batches = f"batch {batch_size} x {sequence_length} tokens"
    if self.start_step:
      line = f"resuming at step {self.start_step} of {self.total_steps} ({batches})"
    else:
      line = f"training steps 0 -> {self.total_steps} ({batches})"
    self._print(line)

  def start_clock(self, step: int) -> None:
    """Measures the step rate from now, at `step` (the loop calls it once the first step,
    which compiles, has run: its compile time would make every estimate too long)."""
    self._clock = (time.perf_counter(), step)

  def seconds_left(self, step: int) -> Optional[float]:
    """The time the remaining steps take at the mean rate since `start_clock` (None before
    a rate is measured, and at the last step)."""
    if self._clock is None or step <= self._clock[1] or step >= self.total_steps:
      return None
    started, first = self._clock
    return (time.perf_counter() - started) / (step - first) * (self.total_steps - step)

  def _print(self, line: str) -> None:
    if self._bar is not None:
      self._bar.write(line)  # Above the bar, which stays where it is.
    else:
      print(line, flush=True)

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
    if self._bar is not None:
      self._bar.update(step - self._last_step)
      self._bar.set_postfix({label: f"{record[k]:{spec}}" for k, (label, spec) in _SHOWN.items()
                             if k in record})
    else:
      print(progress_line(step, self.total_steps, record, self.seconds_left(step)), flush=True)
    self._last_step = step

  def close(self) -> None:
    if self.enabled:
      self._jsonl.close()
      self._summary.close()
      if self._bar is not None:
        self._bar.close()
