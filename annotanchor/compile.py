"""`annotanchor compile` / `python -m annotanchor.compile`: a run's steps compiled for a TPU slice.

  annotanchor compile --gin_file=gin/models/2_5b.gin --gin_file=gin/runs/pretrain_2_5b_50b.gin \
      --gin.TOPOLOGY="'v5e-64'" --gin.COMPILE_OUTPUT="'compile_2_5b_v5e-64.json'"

Takes the gin files of `annotanchor train` (model, run, MESH; or CHECKPOINT_PATH instead of
the model file: the network the checkpoint records) plus a TOPOLOGY, and compiles
ahead of time, on this (CPU) host, the train step that run would execute and one KV-cache
decode step, for the slice's chips. Needs libtpu (`pip install -e '.[tpu]'`); no TPU. Prints
per-chip memory against the chip's HBM, XLA's cost estimate with the roofline step time
and the MFU it implies, and the train state's shardings; COMPILE_OUTPUT also gets JSON.
gin/runs/compile.gin (its settings) is included before the given files.

Exit status: 0 every step fits, 1 a step does not fit (the message names by how much and
the largest arrays), 2 bad configuration (or libtpu missing).
"""
from __future__ import annotations

if __name__ == "__main__":
  from annotanchor.gin_utils import run_module_main
  run_module_main("annotanchor.compile")

import dataclasses
import json
import logging
import sys
import time
from typing import Any, Sequence

import gin

from annotanchor import gin_utils, train as train_lib
from annotanchor.atomic_files import write_atomic
from annotanchor.errors import SettingError, UserError
from annotanchor.hardware import GIB
from annotanchor.model.config import TransformerConfig
from annotanchor.tpu import aot, report
from annotanchor.tpu.chips import parse_topology
from annotanchor.training import metadata as metadata_lib, partitioning
from annotanchor.training.given_model import GivenModel

COMPILE_GIN = "gin/runs/compile.gin"
# Settings the run files require that compiling does not use: it writes no checkpoint and
# reads no data.
_UNUSED = "(not used by compile)"


class CompileSetupError(UserError, ValueError):
  """The gin files do not describe a run, or libtpu is missing."""


@gin.configurable
def compile_steps(*, topology: str = gin.REQUIRED, checkpoint_path: str | None = None,
                  model: GivenModel = GivenModel(), output_path: str | None = None,
                  decode_rows: int | None = None, decode_slots: int | None = None,
                  hbm_gib: float | None = None, gin_files: Sequence[str] = ()) -> dict[str, Any]:
  """Compiles the configured run's train step and a decode step for `topology`.

  Args:
    topology: the TPU slice ("v5e-64", "v5e:8x8"); see annotanchor.tpu.chips.
    checkpoint_path: a checkpoint whose network to compile (its metadata's
      TransformerConfig: no model gin file needed), e.g. to see whether fine-tuning it fits.
    model: with checkpoint_path, a model gin file's network and MODEL_OVERRIDES (compile.gin
      binds it), checked against the checkpoint's as `infer` checks them.
    output_path: where to write the result as JSON (None: not written).
    decode_rows: decode batch (default the train batch); 0 skips the decode step.
    decode_slots: decode cache length (default the train sequence length).
    hbm_gib: HBM per chip to check against (default the chip's), e.g. to keep a reserve.
    gin_files: the run's gin files, recorded in the result (main passes them).

  Returns:
    The result: run settings, one summary per step (annotanchor.tpu.report), "fits", and
    the wall and CPU (all threads) seconds of all the compiles.
  """
  start_wall, start_cpu = time.perf_counter(), time.process_time()
  if not isinstance(topology, str):  # gin.REQUIRED: gin's config is not finalized here.
    raise CompileSetupError("TOPOLOGY is not set: add e.g. --gin.TOPOLOGY=\"'v5e-64'\"")
  run = _configured_run(checkpoint_path, model)
  reason = aot.libtpu_missing_reason()
  if reason:
    raise CompileSetupError(reason)
  slice_ = parse_topology(topology)
  if hbm_gib is not None:
    chip = dataclasses.replace(slice_.chip, hbm_bytes=int(hbm_gib * GIB))
    slice_ = dataclasses.replace(slice_, chip=chip)
  config, length, batch_size = run.model, run.data.length, run.data.batch_size
  mesh = partitioning.make_mesh(run.mesh or {"data": -1}, aot.topology_devices(slice_))
  model, tx, schedule = train_lib.model_and_optimizer(run)

  logging.info("Compiling the train step for %s (mesh %s)", slice_.name, dict(mesh.shape))
  steps = [aot.compile_train_step(
      model, tx, schedule, mesh, batch_size=batch_size, length=length,
      microbatches=run.step.microbatches, nan_policy=run.step.nan_policy, pack=run.data.pack)]
  rows = batch_size if decode_rows is None else decode_rows
  if rows:
    logging.info("Compiling a decode step (%d rows, %s cache slots)", rows,
                 decode_slots or length)
    steps.append(aot.compile_decode_step(config, mesh, rows=rows, slots=decode_slots or length))

  # The rows the policy learns from, counted as `train` counts them (training/loop.py): a
  # preference pair's two answers and its rehearsed row; the reference's forward passes are
  # not the model's training FLOPs.
  rows_per_example = 1
  if run.preference is not None:
    rows_per_example = 2 + (run.preference.rehearsal_task is not None)
  trained_rows = batch_size * rows_per_example
  model_flops = config.flops_per_token(length) * trained_rows * length
  summaries = [report.step_summary(steps[0], slice_, model_flops)]
  summaries += [report.step_summary(s, slice_) for s in steps[1:]]
  result = {
      "config": " + ".join(gin_files) or "(gin bindings)", "topology": slice_.name, "libtpu_topology": slice_.libtpu_name,
      "chips": slice_.num_chips, "chip": slice_.chip.name,
      "peak_bf16_flops_per_chip": slice_.chip.peak_bf16_flops,
      "hbm_bandwidth_per_chip": slice_.chip.hbm_bandwidth, "mesh": dict(mesh.shape),
      "batch_size": batch_size, "trained_rows_per_step": trained_rows, "length": length,
      "microbatches": run.step.microbatches,
      "decode_rows": rows, "decode_slots": decode_slots or length,
      "num_params": config.num_params(), "model_flops_per_step": model_flops,
      "remat_policy": config.remat_policy, "dtype": config.dtype,
      "attention": aot.train_attention_kernel(config, mesh),
      "steps": summaries, "fits": all(s["fits"] for s in summaries),
      "wall_seconds": time.perf_counter() - start_wall,
      "cpu_seconds": time.process_time() - start_cpu}
  print(report.render_text(result, slice_), flush=True)
  if output_path:
    write_atomic(output_path, json.dumps(result, indent=1) + "\n")
  return result


def _configured_run(checkpoint_path: str | None, model: GivenModel):
  """The TrainConfig `annotanchor train` would build from the same gin files, MODEL_DIR and
  MIXTURE_OR_TASK_NAME not needed; with a checkpoint, its network (`model` checked
  against it)."""
  try:
    gin.bind_parameter("annotanchor.training.run_config.DataConfig.mixture_or_task_name",
                       _UNUSED)
  except ValueError:  # No gin file imports run_config: no run file was given.
    raise CompileSetupError(
        "the gin files bind no TrainConfig: pass the run gin file that `annotanchor train` "
        "would get (e.g. a gin/runs/ file) and its model (a gin/models/ file, or "
        "CHECKPOINT_PATH)") from None
  overrides = {"model_dir": _UNUSED}
  if checkpoint_path is not None:
    _refuse_unread_network_bindings(model)
    metadata, _ = metadata_lib.read_metadata(checkpoint_path)
    overrides["model"] = metadata_lib.resolve_model(metadata, model, checkpoint_path)
  elif model.overrides:  # Never dropped unseen: without a checkpoint nothing reads it.
    raise SettingError(
        f"MODEL_OVERRIDES={dict(model.overrides)!r}: overrides CHECKPOINT_PATH's network, "
        "and none is set; change the model gin file's network with "
        "--gin.config.TransformerConfig.NAME=VALUE")
  return train_lib.configured_run(**overrides)


def _refuse_unread_network_bindings(model: GivenModel) -> None:
  """With only a checkpoint (no model file), the network is the checkpoint's and
  MODEL_OVERRIDES: a TransformerConfig field a run file binds (pretrain_1b_20b.gin's
  remat_policy) reaches nothing, and compiling without it would answer for another program
  (a remat policy changes the memory per chip). Such a binding is refused, never dropped
  unseen. This only checks that no such binding exists; the values come from `model`."""
  if model.config is not None:
    return  # A model file's network: every TransformerConfig binding reached it.
  try:  # Registered only once a gin file imports it (dynamic registration).
    bound = sorted(gin.get_bindings(TransformerConfig))
  except ValueError:
    return
  if bound:
    raise SettingError(
        f"TransformerConfig.{bound[0]} is bound, but with only CHECKPOINT_PATH the network is "
        f"the checkpoint's and nothing reads it; set it with --gin.MODEL_OVERRIDES=\"{{'"
        f"{bound[0]}': ...}}\" or give the model gin file")


def main(argv: list[str] | None = None) -> int:
  """Exit status: 0 fits, 1 does not fit, 2 bad configuration or libtpu missing."""
  argv = sys.argv[1:] if argv is None else list(argv)
  files = lambda: gin_utils.split_gin_flags(argv)[0]  # Called once parsing has succeeded.
  return gin_utils.run_main(
      "compile", lambda: compile_steps(gin_files=files()), [f"--gin_file={COMPILE_GIN}", *argv],
      doc=__doc__,
      exit_code=lambda result: 0 if result["fits"] else 1, finalize=False)
