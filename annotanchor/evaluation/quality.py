"""Quality: a per-sample score in [0, 1], averaged per prompt.

A quality function takes (prompt, annotation, response) and returns either a number
(a bool counts as 0/1) or named checks, as a mapping or a dataclass instance (its
fields), e.g. the storyworld checker's Quality(well_formed=True, assistant_style=True,
prompt_followed=False). For a
mapping, each check is reported on its own and the sample's overall score is the
minimum over the checks: for booleans, "passes every check", the storyworld
definition of quality.
"""
import dataclasses
import math
from typing import Callable, Dict, Mapping, Optional, Protocol, Sequence, Tuple, Union

import numpy as np

Score = Union[bool, int, float, Mapping[str, Union[bool, int, float]]]

OVERALL = "quality"


class QualityFn(Protocol):
  """Scores one sample."""

  def __call__(self, prompt: str, annotation: str, response: str) -> Score:
    ...


def _as_float(value, where: str) -> float:
  if isinstance(value, bool):
    return float(value)
  if not isinstance(value, (int, float)) or math.isnan(value) or not 0 <= value <= 1:
    raise ValueError(f"{where}: quality score {value!r} is not a number in [0, 1]")
  return float(value)


def score_sample(fn: QualityFn, prompt: str, annotation: str, response: str
                 ) -> Dict[str, float]:
  """{"quality": overall, and each named check} for one sample."""
  raw = fn(prompt, annotation, response)
  if dataclasses.is_dataclass(raw) and not isinstance(raw, type):
    raw = {f.name: getattr(raw, f.name) for f in dataclasses.fields(raw)}
  if isinstance(raw, Mapping):
    if not raw:
      raise ValueError(f"quality function {fn!r} returned no checks")
    checks = {str(k): _as_float(v, f"check {k!r}") for k, v in raw.items()}
    return {OVERALL: min(checks.values()), **checks}
  return {OVERALL: _as_float(raw, f"quality function {fn!r}")}


def quality_per_prompt(fn: QualityFn, rows: Sequence[Sequence[Tuple[str, str, str]]],
                       on_sample: Optional[Callable[[], None]] = None) -> Dict[str, np.ndarray]:
  """Mean score per prompt, for the overall score and each check.

  Args:
    fn: the quality function.
    rows: per prompt, the (prompt, annotation, response) of its N samples.
    on_sample: called after each sample is scored (progress of a slow, remote judge).

  Returns:
    name -> (P,) means; a check missing from some samples is averaged over the
    samples that report it (NaN for a prompt where none does).
  """
  sums: Dict[str, np.ndarray] = {}
  counts: Dict[str, np.ndarray] = {}
  for j, row in enumerate(rows):
    for prompt, annotation, response in row:
      for name, value in score_sample(fn, prompt, annotation, response).items():
        if name not in sums:
          sums[name], counts[name] = np.zeros(len(rows)), np.zeros(len(rows))
        sums[name][j] += value
        counts[name][j] += 1
      if on_sample is not None:
        on_sample()
  with np.errstate(invalid="ignore", divide="ignore"):
    return {name: np.where(counts[name] > 0, sums[name] / counts[name], np.nan)
            for name in sums}


def constant_quality(value: float) -> Callable[[str, str, str], float]:
  """A quality function that scores every sample `value` (when no checker applies)."""
  _as_float(value, "constant_quality")
  return lambda prompt, annotation, response: value
