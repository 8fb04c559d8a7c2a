"""`annotanchor capability` / `python -m annotanchor.capability`: multiple-choice accuracy.

  annotanchor capability --gin_file=gin/runs/capability.gin \
      --gin.CHECKPOINT_PATH="'runs/demo/sft'" --gin.OUTPUT_DIR="'runs/demo/capability/sft'" \
      --gin.TASK_FILES="{'arc_easy': 'arc_easy.jsonl'}" --gin.ARM="'sft'"

Scores every choice of every question of each task file (annotanchor/evaluation/
capability.py: the JSONL layout, acc and acc_norm) by its log-likelihood after the context
(annotanchor/decoding/choice_scoring.py), as lm-eval-harness does, and writes
OUTPUT_DIR/capability.json (per-task accuracy, which `evaluate` puts next to each arm's
diversity) and OUTPUT_DIR/capability_scores.jsonl (every choice's log-likelihood), each
atomically. A rerun with the same settings does nothing. See gin/runs/capability.gin.
"""
from __future__ import annotations

if __name__ == "__main__":
  from annotanchor.gin_utils import run_module_main
  run_module_main("annotanchor.capability")

import json
import logging
import os
import sys
import time
from typing import Mapping, Sequence

import gin
import seqio
import tqdm

from annotanchor import gin_utils
from annotanchor.atomic_files import write_atomic
from annotanchor.capability_config import CapabilityConfig, ProbeConfig, ScoredCheckpoint
from annotanchor.data.prompts import PromptTemplate
from annotanchor.decoding.choice_scoring import ContinuationScorer
from annotanchor.decoding.from_checkpoint import restore_for_sampling
from annotanchor.errors import UserError
from annotanchor.evaluation import capability as capability_lib
from annotanchor.training.given_model import GivenModel

SCORES_FILE = "capability_scores.jsonl"


def _questions(probes: ProbeConfig):
  """{task: [(example, context with its shots)]} for every task file."""
  out = {}
  for name, source in probes.task_files.items():
    examples = capability_lib.read_choice_task(source)[:probes.limit]
    out[name] = [(ex, capability_lib.fewshot_context(
        ex, capability_lib.pick_shots(examples, i, probes.num_fewshot, probes.seed),
        probes.delimiter, probes.fewshot_separator))
        for i, ex in enumerate(examples)]
  return out


@gin.configurable
def capability(*, checkpoint_path: str = gin.REQUIRED, output_dir: str = gin.REQUIRED,
               arm: str = gin.REQUIRED, task_files: Mapping[str, str] = gin.REQUIRED,
               num_fewshot: int = 0, delimiter: str = " ", fewshot_separator: str = "\n\n",
               seed: int = 1234, limit: int | None = None, rows_per_call: int = 32,
               model: GivenModel = GivenModel(),
               vocabulary: seqio.Vocabulary | None = None, template: PromptTemplate | None = None,
               mesh: Mapping[str, int] | None = None,
               progress_bar: bool | None = None) -> CapabilityConfig:
  """The `capability.*` settings, as users bind them (gin/runs/capability.gin), checked
  once into a CapabilityConfig (annotanchor/capability_config.py), which `score` runs.

  Args: the fields of annotanchor/capability_config.py's groups, flat: checkpoint_path,
    model, vocabulary, template and mesh (ScoredCheckpoint: the checkpoint scored
    and what the user says about it); task_files, num_fewshot, delimiter,
    fewshot_separator, seed and limit (ProbeConfig: the questions); output_dir, arm,
    rows_per_call and progress_bar (CapabilityConfig).

  Raises:
    SettingError: a bad setting, naming it.
  """
  return CapabilityConfig(
      output_dir=output_dir, arm=arm,
      probes=ProbeConfig(task_files=task_files, num_fewshot=num_fewshot, delimiter=delimiter,
                         fewshot_separator=fewshot_separator, seed=seed, limit=limit),
      checkpoint=ScoredCheckpoint(path=checkpoint_path, model=model,
                                  vocabulary=vocabulary, template=template, mesh=mesh),
      rows_per_call=rows_per_call, progress_bar=progress_bar)


def score(config: CapabilityConfig) -> str:
  """Scores a checkpoint on multiple-choice task files; returns capability.json's path.

  Raises:
    CapabilityFileError: a bad task file; UserError: an earlier result in OUTPUT_DIR with
      other settings.
  """
  probes, checkpoint = config.probes, config.checkpoint
  questions = _questions(probes)
  result_path = os.path.join(config.output_dir, capability_lib.RESULT_FILE)
  run = probes.record(checkpoint.path)
  if os.path.exists(result_path):
    previous = capability_lib.CapabilityResult.read(result_path)
    if previous.arm == config.arm and dict(previous.run) == run:
      logging.info("%s is complete; nothing to do", result_path)
      return result_path
    raise UserError(f"{result_path} holds a result with other settings (arm "
                    f"{previous.arm!r}, {dict(previous.run)}); delete it or choose another "
                    "OUTPUT_DIR")

  setup = restore_for_sampling(checkpoint.path, model=checkpoint.model,
                               vocabulary=checkpoint.vocabulary, template=checkpoint.template,
                               mesh=checkpoint.mesh)
  scorer = ContinuationScorer(setup.sampler.config, setup.sampler.mesh,
                              setup.sampler.param_shardings, rows_per_call=config.rows_per_call)
  gin_utils.write_operative_config(config.output_dir)

  total = sum(len(ex.choices) for qs in questions.values() for ex, _ in qs)
  progress_bar = config.progress_bar
  bar = tqdm.tqdm(total=total, unit="choice", dynamic_ncols=True,
                  disable=not (sys.stderr.isatty() if progress_bar is None else progress_bar))
  tasks, lines, start = {}, [], time.perf_counter()
  for name, qs in questions.items():
    task_start = time.perf_counter()
    pairs = [(context, probes.delimiter + choice) for ex, context in qs
             for choice in ex.choices]
    scores = scorer.score(setup.params, setup.vocabulary, pairs, progress=bar.update)
    logliks, first = [], 0
    for ex, _ in qs:
      chosen = scores[first:first + len(ex.choices)]
      first += len(ex.choices)
      logliks.append([s.loglik for s in chosen])
      lines.append(json.dumps({
          "task": name, "id": ex.id, "gold": ex.gold, "logliks": logliks[-1],
          "num_tokens": [s.num_tokens for s in chosen],
          "greedy": [s.greedy for s in chosen]}, allow_nan=False) + "\n")
    tasks[name] = capability_lib.accuracy([ex for ex, _ in qs], logliks)
    seconds = time.perf_counter() - task_start
    tasks[name]["examples_per_s"] = round(len(qs) / seconds, 2)
    logging.info("%s: acc %.3f, acc_norm %.3f over %d questions (%.1f questions/s)", name,
                 tasks[name]["acc"]["value"], tasks[name]["acc_norm"]["value"], len(qs),
                 len(qs) / seconds)
  bar.close()
  write_atomic(os.path.join(config.output_dir, SCORES_FILE), "".join(lines))
  write_atomic(result_path, capability_lib.CapabilityResult(config.arm, run, tasks).to_json())
  logging.info("scored %d choices in %.1f s; wrote %s", total, time.perf_counter() - start,
               result_path)
  return result_path


def main(argv: Sequence[str] | None = None) -> int:
  def report(path: str) -> int:
    result = capability_lib.CapabilityResult.read(path)
    for name, acc in result.tasks.items():
      print(f"{result.arm} {name}: acc {acc['acc']['value']:.3f} acc_norm "
            f"{acc['acc_norm']['value']:.3f} ({acc['num_examples']} questions)")
    return 0
  return gin_utils.run_main("capability", lambda: score(capability()), argv, doc=__doc__,
                            exit_code=report)
