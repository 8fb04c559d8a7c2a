"""Comparisons and bootstrap intervals on hand-made tables."""
import numpy as np
import pytest

from annotanchor.evaluation.compare import ArmFigures, Bootstrap, compare_arms, summarize_metric


def _table(p=6):
  # D(base)=4, D(sft)=1, D(anchored)=3.55: gap closed 0.85, collapse ratio 3/0.45.
  rng = np.random.default_rng(1)
  noise = rng.normal(0, 0.1, size=p)
  noise -= noise.mean()
  return {"base": 4 + noise, "sft": 1 + noise, "anchored": 3.55 + noise}


def test_hand_made_table():
  out = summarize_metric(_table(), Bootstrap(6, 200, seed=0), "base", "sft")
  per_arm, comps = out["per_arm"], out["comparisons"]
  assert per_arm["base"]["value"] == pytest.approx(4.0)
  assert comps["sft"]["collapse"]["value"] == pytest.approx(3.0)
  assert "gap_closed" not in comps["sft"]
  assert comps["anchored"]["collapse"]["value"] == pytest.approx(0.45)
  assert comps["anchored"]["gap_closed"]["value"] == pytest.approx(0.85)
  assert comps["anchored"]["collapse_ratio"]["value"] == pytest.approx(3 / 0.45)
  # The noise is shared by every arm (paired), so every difference is exact in
  # every resample and the intervals collapse onto the point estimates.
  assert comps["anchored"]["gap_closed"]["ci"] == pytest.approx([0.85, 0.85])
  assert "base" not in comps


def _noisy(p, seed):
  rng = np.random.default_rng(seed)
  return {"base": rng.normal(3.0, 0.5, p), "sft": rng.normal(1.0, 0.5, p),
          "anchored": rng.normal(2.2, 0.5, p)}


@pytest.mark.parametrize("p", [20, 80])
def test_ci_covers_point_estimate(p):
  out = summarize_metric(_noisy(p, 3), Bootstrap(p, 500, seed=0), "base", "sft")
  for arm, est in out["per_arm"].items():
    assert est["ci"][0] <= est["value"] <= est["ci"][1], arm
  for key in ("collapse", "gap_closed", "collapse_ratio"):
    est = out["comparisons"]["anchored"][key]
    assert est["ci"][0] <= est["value"] <= est["ci"][1], key


def test_ci_shrinks_with_more_prompts():
  widths = []
  for p in (10, 40, 160):
    out = summarize_metric(_noisy(p, 7), Bootstrap(p, 500, seed=0), "base", "sft")
    lo, hi = out["per_arm"]["base"]["ci"]
    widths.append(hi - lo)
  # Width goes as 1/sqrt(P): each 4x in prompts should about halve it.
  assert widths[0] > 1.5 * widths[1] > 2.25 * widths[2]


def test_seeded():
  a = summarize_metric(_noisy(30, 1), Bootstrap(30, 300, seed=5), "base", "sft")
  b = summarize_metric(_noisy(30, 1), Bootstrap(30, 300, seed=5), "base", "sft")
  c = summarize_metric(_noisy(30, 1), Bootstrap(30, 300, seed=6), "base", "sft")
  assert a == b
  assert a != c


def test_no_collapse_in_sft_gives_null_gap_closed():
  v = {"base": np.full(5, 2.0), "sft": np.full(5, 2.0), "anchored": np.full(5, 1.5)}
  comps = compare_arms(ArmFigures(v, Bootstrap(5, 50)), "base", "sft")["anchored"]
  assert comps["gap_closed"].value is None and comps["gap_closed"].ci is None
  assert "D(base) - D(sft) = 0 is within" in comps["gap_closed"].reason
  # sft lost nothing, anchored lost 0.5: the ratio is a well-defined 0.
  assert comps["collapse_ratio"].value == 0.0
  assert comps["collapse"].value == pytest.approx(0.5)


def test_anchored_without_collapse_gives_null_ratio():
  v = {"base": np.full(5, 2.0), "sft": np.full(5, 1.0), "anchored": np.full(5, 2.0)}
  comps = compare_arms(ArmFigures(v, Bootstrap(5, 50)), "base", "sft")["anchored"]
  assert comps["gap_closed"].value == pytest.approx(1.0)
  assert comps["collapse_ratio"].value is None
  assert "collapse(anchored)" in comps["collapse_ratio"].reason


def test_denominator_interval_reaching_zero_gives_null_interval():
  rng = np.random.default_rng(0)
  base = rng.normal(2.0, 1.0, 40)
  # sft is 0.05 below base on average but with prompt-level noise of 0.5: the
  # denominator's interval straddles zero.
  v = {"base": base, "sft": base - 0.05 + rng.normal(0, 0.5, 40), "anchored": base - 0.02}
  est = compare_arms(ArmFigures(v, Bootstrap(40, 500)), "base", "sft")["anchored"]["gap_closed"]
  assert est.value is not None  # the point denominator is clear of eps = 0.02 ...
  assert est.ci is None and "reaches zero" in est.reason  # ... its interval is not


def test_base_without_diversity():
  v = {"base": np.zeros(3), "sft": np.zeros(3), "anchored": np.zeros(3)}
  comps = compare_arms(ArmFigures(v, Bootstrap(3, 10)), "base", "sft")["anchored"]
  assert comps["gap_closed"].value is None and "no diversity" in comps["gap_closed"].reason


def test_nan_prompts_left_out():
  v = {"base": np.array([1.0, np.nan, 3.0]), "sft": np.array([1.0, 1.0, 1.0])}
  figs = ArmFigures(v, Bootstrap(3, 10))
  assert figs.estimate("base").value == pytest.approx(2.0)


def test_wrong_length_rejected():
  with pytest.raises(ValueError, match="expected 3"):
    ArmFigures({"base": np.zeros(2)}, Bootstrap(3, 10))
