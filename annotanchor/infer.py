"""`annotanchor infer` / `python -m annotanchor.infer`: draw N samples per prompt to JSONL.

  annotanchor infer --gin_file=gin/models/tiny.gin --gin_file=gin/runs/infer.gin \
      --gin.CHECKPOINT_PATH="'runs/tiny_sft'" --gin.OUTPUT_DIR="'runs/tiny_sft/infer'" \
      --gin.MIXTURE_OR_TASK_NAME="'storyworld_eval_prompts'" --gin.ARM="'sft'"

Writes OUTPUT_DIR/samples.jsonl (the annotanchor.evaluation.samples schema), atomically,
then the marker OUTPUT_DIR/samples.jsonl.done. While running, finished prompts are appended
to samples.jsonl.partial; a rerun resumes from it (finished prompts are skipped), and a
rerun of a finished run with the same settings does nothing. See gin/runs/infer.gin.
"""
from __future__ import annotations

if __name__ == "__main__":
  from annotanchor.gin_utils import run_module_main
  run_module_main("annotanchor.infer")

import json
import logging
import os
import sys
import time
from typing import Any, Mapping, Sequence

import gin
import seqio
import tqdm

from annotanchor import gin_utils
from annotanchor.atomic_files import write_atomic
from annotanchor.data.prompt_files import checked, read_prompts
from annotanchor.data.prompts import PromptTemplate
from annotanchor.data.registration import mixture_or_task, register_configured_corpora
from annotanchor.decoding.from_checkpoint import restore_for_sampling
from annotanchor.decoding.generate import DecodeSettings, Generator
from annotanchor.errors import UserError
from annotanchor.evaluation.samples import (Sample, SampleFileError, decoding_record,
                                            write_samples)
from annotanchor.training.given_model import GivenModel


class InferError(UserError, ValueError):
  """Bad prompts, settings that clash with an earlier run's output, or a bad checkpoint."""


def read_task_prompts(name: str, split: str) -> tuple[list[tuple[str, str]], seqio.Vocabulary]:
  """The prompts (features `prompt`, optional `id`) of a SeqIO task, and its vocabulary."""
  register_configured_corpora()
  task = mixture_or_task(name)
  dataset = task.get_dataset(sequence_length=None, split=split, shuffle=False, use_cached=False)
  prompts = []
  for i, ex in enumerate(dataset.as_numpy_iterator()):
    if "prompt" not in ex:
      raise InferError(f"task {name!r} examples have no 'prompt' feature ({sorted(ex)})")
    pid = ex.get("id", f"{name}-{i}")
    pid = pid.decode("utf-8") if isinstance(pid, bytes) else str(pid)  # String or int ids.
    prompts.append((pid, ex["prompt"].decode("utf-8")))
  return checked(prompts, f"task {name!r}"), task.output_features["targets"].vocabulary


def _resume(partial: str, run: Mapping[str, Any], num_samples: int
            ) -> dict[str, list[Sample]]:
  """The finished prompts of an interrupted run, by prompt id.

  A torn last line (the process died mid-write) and prompts with fewer than N samples are
  dropped; the partial file is rewritten without them before new samples are appended.

  Raises:
    InferError: the partial file was written with other settings or another arm.
  """
  if not os.path.exists(partial):
    return {}
  with open(partial, encoding="utf-8") as f:
    lines = f.read().split("\n")
  by_prompt: dict[str, list[Sample]] = {}
  for lineno, line in enumerate(lines, 1):
    if not line.strip():
      continue
    try:
      sample = Sample.from_json(line, f"{partial}:{lineno}")
    except SampleFileError:
      if lineno == len(lines):  # Only the unterminated last line may be torn.
        break
      raise
    if sample.arm != run["arm"] or dict(sample.decoding) != run["decoding"]:
      raise InferError(
          f"{partial}:{lineno} was written with arm {sample.arm!r} and decoding "
          f"{dict(sample.decoding)}, not {run['arm']!r} and {run['decoding']}; delete it or "
          f"choose another OUTPUT_DIR")
    by_prompt.setdefault(sample.prompt_id, []).append(sample)
  done = {pid: sorted(s, key=lambda x: x.sample_index) for pid, s in by_prompt.items()
          if len(s) == num_samples}
  write_samples(partial, [s for samples in done.values() for s in samples])
  return done


@gin.configurable
def infer(*, checkpoint_path: str = gin.REQUIRED, output_dir: str = gin.REQUIRED,
          arm: str = gin.REQUIRED, decoding: DecodeSettings = DecodeSettings(),
          model: GivenModel = GivenModel(),
          mixture_or_task_name: str | None = None, split: str = "test",
          prompts_file: str | None = None, vocabulary: seqio.Vocabulary | None = None,
          batch_size: int = 8,
          mesh: Mapping[str, int] | None = None, template: PromptTemplate | None = None,
          output_name: str = "samples.jsonl", progress_bar: bool | None = None) -> str:
  """Samples a checkpoint on the prompts of a task or file; returns the sample file's path.

  Args:
    checkpoint_path: a MODEL_DIR, its checkpoints/ directory or a step directory.
    output_dir: where samples.jsonl, its marker and config.gin are written.
    arm: the arm name recorded with every sample (base, sft, anchored, an ablation).
    decoding: what is drawn (mode, N, temperatures, ...; gin/runs/infer.gin binds it from
      MODE, NUM_SAMPLES, TEMPERATURE, ...), recorded with every sample.
    model: a model gin file's network and MODEL_OVERRIDES (infer.gin binds it), checked
      against the checkpoint's (annotanchor/training/given_model.py); default nothing
      given: the checkpoint's network.
    mixture_or_task_name: a SeqIO task whose examples hold `prompt` (and `id`).
    split: the task's split.
    prompts_file: instead of a task, JSONL of `{"id": ..., "prompt": ...}`.
    vocabulary: encodes and decodes; default the task's `targets` vocabulary, else the
      checkpoint's (either must be the one the checkpoint was trained with).
    batch_size: prompts per sampler call (rounded up to the mesh's batch multiple).
    mesh: degrees per mesh axis; default every device on `data`.
    template: the prompt template; default the checkpoint's.
    output_name: the sample file's name in output_dir.
    progress_bar: a tqdm bar (default: on interactive terminals).

  Raises:
    InferError: no or both prompt sources, bad prompts, a clash with earlier output.
  """
  num_samples = decoding.num_samples
  if (mixture_or_task_name is None) == (prompts_file is None):
    raise InferError("set exactly one of MIXTURE_OR_TASK_NAME and PROMPTS_FILE")
  if prompts_file is not None:
    prompts = read_prompts(prompts_file)
  else:
    prompts, task_vocabulary = read_task_prompts(mixture_or_task_name, split)
    vocabulary = vocabulary or task_vocabulary

  out_path = os.path.join(output_dir, output_name)
  partial, marker = out_path + ".partial", out_path + ".done"
  run = {"arm": arm, "decoding": decoding.record(), "checkpoint_path": checkpoint_path,
         "num_prompts": len(prompts), "num_samples": num_samples}
  if os.path.exists(marker):
    with open(marker, encoding="utf-8") as f:
      previous = json.load(f)
    if previous == run:
      logging.info("%s is complete (%s); nothing to do", out_path, marker)
      return out_path
    raise InferError(f"{marker} marks a finished run with other settings ({previous}); "
                     f"delete it and {out_path}, or choose another OUTPUT_DIR")
  setup = restore_for_sampling(checkpoint_path, model=model, vocabulary=vocabulary,
                               template=template, mesh=mesh)
  # Each sample also records the checkpoint's annotation format, where it is not standard.
  recorded = decoding_record(run["decoding"], setup.template.annotation_format)
  done = _resume(partial, {**run, "decoding": recorded}, num_samples)
  todo = [(pid, p) for pid, p in prompts if pid not in done]
  if done:
    logging.info("resuming: %d of %d prompts already sampled", len(done), len(prompts))
  generator = Generator(setup.sampler, setup.params, setup.vocabulary, decoding, setup.template)
  gin_utils.write_operative_config(output_dir)

  bar = tqdm.tqdm(total=len(prompts) * num_samples, initial=len(done) * num_samples,
                  unit="sample", dynamic_ncols=True,
                  disable=not (sys.stderr.isatty() if progress_bar is None else progress_bar))
  start, drawn = time.perf_counter(), 0
  with open(partial, "a", encoding="utf-8") as f:
    for first in range(0, len(todo), batch_size):
      batch = todo[first:first + batch_size]
      generations = generator.generate([pid for pid, _ in batch], [p for _, p in batch])
      lines = []
      for (pid, prompt), gens in zip(batch, generations):
        samples = [Sample(prompt_id=pid, prompt=prompt, annotation=g.annotation,
                          response=g.response, sample_index=j, arm=arm,
                          decoding=recorded) for j, g in enumerate(gens)]
        done[pid] = samples
        lines += [s.to_json() + "\n" for s in samples]
      f.write("".join(lines))
      f.flush()
      os.fsync(f.fileno())
      drawn += len(lines)
      rate = drawn / (time.perf_counter() - start)
      bar.update(len(lines))
      bar.set_postfix(samples_per_s=f"{rate:.2f}")
      if bar.disable:
        logging.info("%d/%d samples, %.2f samples/s", len(done) * num_samples,
                     len(prompts) * num_samples, rate)
  bar.close()
  write_samples(out_path, [s for pid, _ in prompts for s in done[pid]])
  write_atomic(marker, json.dumps(run, sort_keys=True))
  os.remove(partial)
  logging.info("wrote %d samples to %s", len(prompts) * num_samples, out_path)
  return out_path


def check_settings() -> None:
  """Builds the decoding and model settings gin binds for `infer` without loading anything
  (what `annotanchor.gin_check` calls, so that the demo finds a bad MODE or
  MODEL_OVERRIDES before its first step).

  Raises:
    SettingError: naming the setting, as `infer` would.
  """
  # The same constructions as infer.gin's `infer.decoding = @generate.DecodeSettings()` and
  # `infer.model = @given_model.GivenModel()`: each from its own bindings, as
  # train.configured_run builds its TrainConfig. Only these: infer's other references load
  # files.
  for cls in (DecodeSettings, GivenModel):
    try:
      build = gin.get_configurable(cls)
    except ValueError:  # No gin file names it: infer takes its defaults.
      continue
    build()


def main(argv: Sequence[str] | None = None) -> int:
  return gin_utils.run_main(
      "infer", infer, argv, doc=__doc__)
