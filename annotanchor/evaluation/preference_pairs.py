"""On-policy preference pairs: samples of the model being tuned, judged by a quality function.

For each prompt, the K samples a model drew (`infer` with NUM_SAMPLES=K) are scored by the
quality function evaluation uses (storyworld's exact checker: a sample passes when every
check passes); a passing sample becomes the chosen answer and a failing one the rejected
answer to the same prompt. With the anchored model's samples each answer keeps its own
sampled annotation, so the pairs train anchored DPO (`data/preference_records.py`).

Example: prompt p1 with samples scored [1, 0, 1, 0] and pairs_per_prompt=2 gives two pairs,
each a different passing sample against a different failing one (drawn with `seed`); a
prompt whose samples all pass, or all fail, gives none.

A sample whose annotation does not parse strictly (a model's sampled tags can be
malformed) cannot be an anchored answer: with `require_annotations` it is left out and
counted. So is a sample with an empty response, always.
"""
from __future__ import annotations

import collections
import dataclasses
from typing import Callable, Sequence

import numpy as np

from annotanchor.data.annotations import AnnotationError, AnnotationFormat, parse_annotation
from annotanchor.evaluation.quality import OVERALL, score_sample
from annotanchor.evaluation.samples import Sample


@dataclasses.dataclass(frozen=True)
class PairingCounts:
  """What pairing found: prompts, and how many had a pair, samples left out, pairs made."""
  prompts: int = 0
  prompts_paired: int = 0
  samples_passing: int = 0
  samples_failing: int = 0
  samples_without_annotation: int = 0
  samples_without_answer: int = 0
  pairs: int = 0


def _annotated(sample: Sample, fmt: AnnotationFormat) -> bool:
  if not sample.annotation:
    return False
  try:
    parse_annotation(sample.annotation, fmt, strict=True)
  except AnnotationError:
    return False
  return True


def pair_samples(samples: Sequence[Sample], quality_fn: Callable[[str, str, str], object], *,
                 pairs_per_prompt: int = 1, pass_threshold: float = 1.0, seed: int = 0,
                 require_annotations: bool = True,
                 fmt: AnnotationFormat = AnnotationFormat()) -> tuple[list[dict], PairingCounts]:
  """Preference records from scored samples (see the module docstring).

  Args:
    samples: the samples, any number per prompt.
    quality_fn: (prompt, annotation, response) -> a score or named checks
      (`quality.score_sample`); its overall score decides pass or fail.
    pairs_per_prompt: at most this many pairs per prompt, no sample in two of them.
    pass_threshold: a sample passes when its overall score is at least this.
    seed: which passing and failing samples are paired.
    require_annotations: leave out samples whose annotation is missing or does not parse
      (anchored DPO needs one on every answer).
    fmt: the samples' annotation format.

  Returns:
    (records {"id", "prompt", "chosen", "rejected"} and, with annotations,
    "chosen_annotation", "rejected_annotation"; the counts).
  """
  by_prompt: dict[str, list[Sample]] = collections.defaultdict(list)
  for sample in samples:
    by_prompt[sample.prompt_id].append(sample)
  counts = collections.Counter(prompts=len(by_prompt))
  records = []
  for prompt_id in sorted(by_prompt):
    group = sorted(by_prompt[prompt_id], key=lambda s: (s.arm, s.sample_index))
    # An empty answer cannot be chosen or rejected (the preference records refuse one), and
    # a model can stop right after its annotation.
    answered = [s for s in group if s.response.strip()]
    counts["samples_without_answer"] += len(group) - len(answered)
    group = answered
    if require_annotations:
      kept = [s for s in group if _annotated(s, fmt)]
      counts["samples_without_annotation"] += len(group) - len(kept)
      group = kept
    passing, failing = [], []
    for sample in group:
      score = score_sample(quality_fn, sample.prompt, sample.annotation, sample.response)
      (passing if score[OVERALL] >= pass_threshold else failing).append(sample)
    counts["samples_passing"] += len(passing)
    counts["samples_failing"] += len(failing)
    # One generator per prompt: a prompt's pairs do not depend on the other prompts.
    rng = np.random.default_rng([seed, int.from_bytes(prompt_id.encode()[-8:], "little")])
    chosen = rng.permutation(len(passing))[:pairs_per_prompt]
    rejected = rng.permutation(len(failing))[:len(chosen)]
    counts["prompts_paired"] += bool(len(rejected))
    for k, (c, r) in enumerate(zip(chosen, rejected)):
      win, lose = passing[c], failing[r]
      record = {"id": f"{prompt_id}-{k}", "prompt": win.prompt, "chosen": win.response,
                "rejected": lose.response}
      if win.annotation and lose.annotation:
        record.update(chosen_annotation=win.annotation, rejected_annotation=lose.annotation)
      records.append(record)
  counts["pairs"] = len(records)
  return records, PairingCounts(**counts)
