"""Arm-level figures and the comparisons of docs/design.md 1.5, with bootstrap intervals.

With D a diversity figure (the mean over prompts of a per-prompt metric):

  collapse(m)     = D(base) - D(m)
  gap_closed(m)   = (D(m) - D(sft)) / (D(base) - D(sft))
  collapse_ratio(m) = collapse(sft) / collapse(m)

Interval method: a paired percentile bootstrap over prompts. One seeded set of
`num_resamples` resamples of the prompt indices (with replacement) is drawn and
used for every arm and metric, so arms are compared on the same prompts in every
resample (the per-prompt pairing of the arms is kept). Each figure is recomputed on
each resample; the interval is the (alpha/2, 1 - alpha/2) quantiles of those
replicates, taken as order statistics (numpy's "inverted_cdf") so no value is
interpolated towards an infinite one.

Ratios near zero. A denominator within `eps = rel_tol * |D(base)|` of zero (less
collapse than `rel_tol` of the base's diversity) makes the ratio meaningless: the
point estimate is then null with the reason. Its interval is null too when more than
alpha/2 of the resamples have such a denominator or one of the other sign, i.e. when
the denominator's own interval reaches zero, because the ratio is then unbounded.
Otherwise those few resamples count as +/- infinity on the far side (where the ratio
goes as the denominator shrinks), which the order statistics step over.
"""
import dataclasses
import warnings
from typing import Dict, Mapping, Optional, Sequence

import numpy as np

from annotanchor.errors import SettingError


@dataclasses.dataclass(frozen=True)
class Estimate:
  """A point estimate with its interval; None where undefined, with the reason."""
  value: Optional[float]
  ci: Optional[tuple]
  reason: Optional[str] = None

  def to_dict(self) -> dict:
    out = {"value": self.value, "ci": None if self.ci is None else list(self.ci)}
    if self.reason:
      out["reason"] = self.reason
    return out


@dataclasses.dataclass(frozen=True)
class Bootstrap:
  """Seeded, paired resampling of prompts.

  Attributes:
    num_prompts: P.
    num_resamples: B.
    seed: the RNG seed; the same seed gives the same intervals.
    confidence: e.g. 0.95.
  """
  num_prompts: int
  num_resamples: int = 1000
  seed: int = 0
  confidence: float = 0.95

  def __post_init__(self):
    if self.num_prompts < 1 or self.num_resamples < 1:
      raise ValueError("bootstrap needs at least one prompt and one resample")
    if not 0 < self.confidence < 1:
      raise SettingError(f"confidence={self.confidence} must lie in (0, 1)")

  @property
  def alpha(self) -> float:
    return 1.0 - self.confidence

  def indices(self) -> np.ndarray:
    """(B, P) prompt indices; row b is resample b."""
    rng = np.random.default_rng(self.seed)
    return rng.integers(0, self.num_prompts, size=(self.num_resamples, self.num_prompts))

  def interval(self, replicates: np.ndarray) -> Optional[tuple]:
    """Percentile interval of the replicates; None if a bound is not finite."""
    reps = replicates[~np.isnan(replicates)]
    if reps.size == 0:
      return None
    lo, hi = np.quantile(reps, [self.alpha / 2, 1 - self.alpha / 2], method="inverted_cdf")
    if not (np.isfinite(lo) and np.isfinite(hi)):
      return None
    return (float(lo), float(hi))


def nanmean(x: np.ndarray, axis=None):
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices give NaN on purpose
    return np.nanmean(x, axis=axis)


def _num(x) -> Optional[float]:
  return float(x) if np.isfinite(x) else None


class ArmFigures:
  """D and its bootstrap replicates for every arm, for one metric.

  Args:
    per_prompt: arm -> (P,) per-prompt values, prompts in the same order for every
      arm (NaN: undefined for that prompt, left out of the mean).
    boot: the resampling.
  """

  def __init__(self, per_prompt: Mapping[str, np.ndarray], boot: Bootstrap):
    self.boot = boot
    idx = boot.indices()
    self.point: Dict[str, float] = {}
    self.reps: Dict[str, np.ndarray] = {}
    for arm, values in per_prompt.items():
      v = np.asarray(values, dtype=np.float64)
      if v.shape != (boot.num_prompts,):
        raise ValueError(f"arm {arm!r}: {v.shape[0]} per-prompt values, expected "
                         f"{boot.num_prompts}")
      self.point[arm] = float(nanmean(v))
      self.reps[arm] = nanmean(v[idx], axis=1)

  def estimate(self, arm: str) -> Estimate:
    """D(arm) with its interval."""
    value = _num(self.point[arm])
    reason = None if value is not None else "undefined for every prompt"
    return Estimate(value, self.boot.interval(self.reps[arm]), reason)

  def collapse(self, base: str, arm: str) -> Estimate:
    """D(base) - D(arm)."""
    value = _num(self.point[base] - self.point[arm])
    return Estimate(value, self.boot.interval(self.reps[base] - self.reps[arm]),
                    None if value is not None else "D undefined for an arm")

  def ratio(self, num: tuple, den: tuple, eps: float, what: str) -> Estimate:
    """(D(a) - D(b)) / (D(c) - D(d)) for num=(a, b), den=(c, d), guarded near zero."""
    n_pt = self.point[num[0]] - self.point[num[1]]
    d_pt = self.point[den[0]] - self.point[den[1]]
    if not (np.isfinite(n_pt) and np.isfinite(d_pt)):
      return Estimate(None, None, "D undefined for an arm")
    if abs(d_pt) <= eps:
      return Estimate(None, None, f"{what} = {d_pt:.4g} is within {eps:.3g} of zero; "
                      "the ratio is undefined")
    n_rep = self.reps[num[0]] - self.reps[num[1]]
    d_rep = self.reps[den[0]] - self.reps[den[1]]
    bad = ~np.isfinite(d_rep) | (np.abs(d_rep) <= eps) | (np.sign(d_rep) != np.sign(d_pt))
    value = float(n_pt / d_pt)
    if bad.mean() > self.boot.alpha / 2:
      return Estimate(value, None,
                      f"{what} reaches zero in {bad.mean():.1%} of resamples (more than "
                      f"{self.boot.alpha / 2:.1%}): the ratio's interval is unbounded")
    with np.errstate(divide="ignore", invalid="ignore"):
      r = n_rep / d_rep
    # As the denominator shrinks towards zero the ratio runs off to sign(n)*inf.
    r[bad] = np.inf if n_pt * d_pt >= 0 else -np.inf
    ci = self.boot.interval(r)
    return Estimate(value, ci, None if ci else "interval bound not finite")


def compare_arms(figs: ArmFigures, base: str, sft: str, rel_tol: float = 0.01
                 ) -> Dict[str, Dict[str, Estimate]]:
  """The comparisons for every arm but the base.

  Args:
    figs: one metric's figures.
    base: the base (pretrained, uncollapsed) arm.
    sft: the standard-SFT arm.
    rel_tol: denominators within rel_tol * |D(base)| of zero count as zero.

  Returns:
    arm -> {"collapse": ..., and for arms other than sft "gap_closed",
    "collapse_ratio"}.
  """
  eps = rel_tol * abs(figs.point[base]) if np.isfinite(figs.point[base]) else np.inf
  out: Dict[str, Dict[str, Estimate]] = {}
  for arm in figs.point:
    if arm == base:
      continue
    row = {"collapse": figs.collapse(base, arm)}
    if arm != sft:
      if eps == 0:
        why = "D(base) is 0: the base shows no diversity to lose"
        row["gap_closed"] = row["collapse_ratio"] = Estimate(None, None, why)
      else:
        row["gap_closed"] = figs.ratio((arm, sft), (base, sft), eps, "D(base) - D(sft)")
        row["collapse_ratio"] = figs.ratio((base, sft), (base, arm), eps,
                                           f"collapse({arm})")
    out[arm] = row
  return out


def summarize_metric(per_prompt: Mapping[str, np.ndarray], boot: Bootstrap, base: str,
                     sft: str, rel_tol: float = 0.01,
                     arms: Optional[Sequence[str]] = None) -> dict:
  """JSON-ready {"per_arm": {arm: Estimate}, "comparisons": {arm: {...}}} for a metric."""
  figs = ArmFigures(per_prompt, boot)
  arms = list(per_prompt) if arms is None else list(arms)
  comps = compare_arms(figs, base, sft, rel_tol)
  return {
      "per_arm": {a: figs.estimate(a).to_dict() for a in arms},
      "comparisons": {a: {k: e.to_dict() for k, e in comps[a].items()}
                      for a in arms if a in comps},
  }
