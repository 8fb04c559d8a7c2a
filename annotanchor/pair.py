"""`annotanchor pair` / `python -m annotanchor.pair`: preference pairs from a model's samples.

  annotanchor pair --gin_file=gin/runs/pair.gin \
      --gin.SAMPLES="'runs/anchored_samples/samples.jsonl'" --gin.OUTPUT="'pairs.jsonl'" \
      --gin.QUALITY_FN="'tasks.storyworld.parse:check_prompted_quality'"

Scores each sample with the quality function (evaluate's hook: 'pkg.module:function' of
the sample fields in QUALITY_INPUTS) and writes, per prompt, up to PAIRS_PER_PROMPT
preference records pairing a passing sample (chosen) with a failing one (rejected), each
with its sampled annotation: the on-policy data of a DPO step (gin/runs/dpo.gin's PAIRS).
The samples come from `annotanchor infer` with NUM_SAMPLES=K on the SFT prompts, from the
model being tuned (anchored mode keeps each answer's annotation). Prints what it found.
Exit status: 0 done, 2 bad configuration or input, or no prompt with both a passing and a
failing sample. See gin/runs/pair.gin and annotanchor/evaluation/preference_pairs.py.
"""
from __future__ import annotations

if __name__ == "__main__":
  from annotanchor.gin_utils import run_module_main
  run_module_main("annotanchor.pair")

import dataclasses
import json
from typing import Sequence

import gin

from annotanchor import gin_utils
from annotanchor.atomic_files import write_atomic
from annotanchor.errors import UserError, require
from annotanchor.evaluation.hooks import INPUTS, adapt, import_callable
from annotanchor.evaluation.preference_pairs import pair_samples
from annotanchor.evaluation.samples import annotation_format, read_samples


class NoPairsError(UserError, ValueError):
  """No prompt had both a passing and a failing sample."""


@gin.configurable
def pair(*, samples: str | Sequence[str] = gin.REQUIRED, output: str = gin.REQUIRED,
         quality_fn: str = gin.REQUIRED, quality_inputs: Sequence[str] = INPUTS,
         pairs_per_prompt: int = 1, pass_threshold: float = 1.0, seed: int = 0,
         require_annotations: bool = True) -> dict[str, int]:
  """Writes `output`, the preference records of `samples` (module docstring); returns the
  counts (`preference_pairs.PairingCounts`).

  Raises:
    NoPairsError: no prompt had both a passing and a failing sample.
  """
  require(isinstance(pairs_per_prompt, int) and pairs_per_prompt >= 1,
          "pair.pairs_per_prompt", pairs_per_prompt, "a positive integer")
  files = [samples] if isinstance(samples, str) else list(samples)
  read = [s for path in files for s in read_samples(path)]
  quality = adapt(import_callable(quality_fn), quality_inputs)
  records, counts = pair_samples(
      read, quality, pairs_per_prompt=pairs_per_prompt, pass_threshold=pass_threshold,
      seed=seed, require_annotations=require_annotations, fmt=annotation_format(read))
  summary = dataclasses.asdict(counts)
  print("pair: " + ", ".join(f"{k}={v}" for k, v in summary.items()), flush=True)
  if not records:
    raise NoPairsError(f"{files}: no prompt has both a passing and a failing sample "
                       f"({summary}); draw more samples per prompt (infer NUM_SAMPLES)")
  write_atomic(output, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
  return summary


def main(argv: Sequence[str] | None = None) -> int:
  return gin_utils.run_main("pair", pair, argv, doc=__doc__)
