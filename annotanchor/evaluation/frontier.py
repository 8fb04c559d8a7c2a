"""The diversity-quality frontier: each model's arms over a temperature grid, compared at
matched quality.

Sampling hotter buys diversity with quality, so a method that merely trades one for the
other looks good at equal temperature. The honest comparison holds quality fixed: with q*
the standard-SFT arm's quality (at its own temperature), a curve's *matched* point is where
its quality, interpolated linearly in temperature between grid points, equals q*; its
diversity there is compared with SFT's by the gap closed of compare.py:

  curve "anchored": T     0.6    0.8    1.0        sft arm (T 1.0): quality q* = 0.46
                    q     0.50   0.30   0.11
                    D     2.08   2.11   2.06
  q crosses q* between 0.6 and 0.8 at frac (0.50 - 0.46) / (0.50 - 0.30) = 0.2:
  T* = 0.64, D* = 2.08 + 0.2 * (2.11 - 2.08) = 2.086,
  gap closed at matched quality = (D* - D(sft)) / (D(base) - D(sft)).

Where q crosses q* more than once (noise), the crossing at the highest temperature counts
(the most diverse point of the curve that still reaches q*). A curve whose quality stays
below q* (or above it) over the whole grid has no matched point: null, with the reason.
Intervals: the paired bootstrap over prompts of compare.py, every figure recomputed on each
resample (q* included); a resample without a crossing counts as undefined, and the
interval is null when more than alpha/2 of them are.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from annotanchor.errors import SettingError
from annotanchor.evaluation import compare


def check_curves(curves: Mapping[str, Sequence[str]], arms: Sequence[str],
                 temperatures: Mapping[str, float]) -> None:
  """Raises SettingError for a curve of fewer than two arms, an arm no sample file holds,
  or two arms of one curve at one temperature."""
  for name, members in curves.items():
    if len(members) < 2:
      raise SettingError(f"frontiers[{name!r}]={list(members)}: a curve needs two or more arms")
    unknown = [a for a in members if a not in arms]
    if unknown:
      raise SettingError(f"frontiers[{name!r}] names arms {unknown} that no sample file holds")
    temps = [temperatures[a] for a in members]
    if len(set(temps)) != len(temps):
      raise SettingError(f"frontiers[{name!r}]: two arms share a temperature ({temps})")


def _matched(q: np.ndarray, d: np.ndarray, t: np.ndarray, q_star: np.ndarray):
  """(T*, D*) per replicate row; NaN where q never crosses q*. q, d: (R, K), t: (K,)."""
  t_star = np.full(q.shape[0], np.nan)
  d_star = np.full(q.shape[0], np.nan)
  for k in range(q.shape[1] - 1):  # Later segments overwrite: the highest crossing wins.
    lo, hi = q[:, k] - q_star, q[:, k + 1] - q_star
    crosses = lo * hi <= 0
    with np.errstate(divide="ignore", invalid="ignore"):  # lo == hi == 0: the later point.
      frac = np.where(lo == hi, 1.0, lo / (lo - hi))
    t_star = np.where(crosses, t[k] + frac * (t[k + 1] - t[k]), t_star)
    d_star = np.where(crosses, d[:, k] + frac * (d[:, k + 1] - d[:, k]), d_star)
  return t_star, d_star


def _estimate(point: float, reps: np.ndarray, boot: compare.Bootstrap,
              reason: str) -> compare.Estimate:
  if not np.isfinite(point):
    return compare.Estimate(None, None, reason)
  undefined = np.mean(~np.isfinite(reps))
  if undefined > boot.alpha / 2:
    return compare.Estimate(float(point), None, f"no matched point in {undefined:.1%} of "
                            "resamples: the interval is unbounded")
  return compare.Estimate(float(point), boot.interval(reps))


def frontier(diversity: Mapping[str, np.ndarray], quality: Mapping[str, np.ndarray],
             curves: Mapping[str, Sequence[str]], temperatures: Mapping[str, float],
             base_arm: str, sft_arm: str, boot: compare.Bootstrap) -> dict:
  """The curves and their matched points for one diversity metric.

  Args:
    diversity, quality: arm -> (P,) per-prompt values (NaN: undefined, left out).
    curves: curve name -> its arms (any order; sorted by temperature here).
    temperatures: arm -> its response temperature.
    base_arm, sft_arm: the gap-closed reference arms; q* is sft_arm's quality.
    boot: the paired resampling.

  Returns:
    {"reference_quality": E, "curves": {name: {"points": [{"arm", "temperature",
    "diversity": E, "quality": E}], "matched": {"temperature": E, "diversity": E,
    "gap_closed": E}}}} with E an Estimate dict.
  """
  needed = {base_arm, sft_arm} | {a for members in curves.values() for a in members}
  d_figs = compare.ArmFigures({a: diversity[a] for a in needed}, boot)
  q_figs = compare.ArmFigures({a: quality[a] for a in needed}, boot)
  point = lambda figs, a: np.array([figs.point[a]])
  rows = lambda figs, a: np.concatenate([point(figs, a), figs.reps[a]])  # Row 0: the point.
  q_star = rows(q_figs, sft_arm)
  out = {"reference_quality": q_figs.estimate(sft_arm).to_dict(), "curves": {}}
  for name, members in curves.items():
    members = sorted(members, key=lambda a: temperatures[a])
    t = np.array([temperatures[a] for a in members], np.float64)
    q = np.stack([rows(q_figs, a) for a in members], axis=1)
    d = np.stack([rows(d_figs, a) for a in members], axis=1)
    t_star, d_star = _matched(q, d, t, q_star)
    d_base, d_sft = rows(d_figs, base_arm), rows(d_figs, sft_arm)
    with np.errstate(divide="ignore", invalid="ignore"):
      gap = (d_star - d_sft) / (d_base - d_sft)
    if q[0].max() < q_star[0]:
      reason = f"its quality stays below q* = {q_star[0]:.3f} over the grid"
    elif q[0].min() > q_star[0]:
      reason = f"its quality stays above q* = {q_star[0]:.3f} over the grid: add hotter points"
    else:
      reason = "undefined"
    out["curves"][name] = {
        "points": [{"arm": a, "temperature": temperatures[a],
                    "diversity": d_figs.estimate(a).to_dict(),
                    "quality": q_figs.estimate(a).to_dict()} for a in members],
        "matched": {key: _estimate(v[0], v[1:], boot, reason).to_dict()
                    for key, v in (("temperature", t_star), ("diversity", d_star),
                                   ("gap_closed", gap))}}
  return out
