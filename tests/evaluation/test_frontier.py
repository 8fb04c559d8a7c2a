"""The diversity-quality frontier: the docstring's worked example, the edge cases, and the
report's section and plot from sample files."""
import json

import numpy as np
import pytest

from annotanchor import evaluate as evaluate_mod
from annotanchor.errors import SettingError
from annotanchor.evaluation import compare, frontier
from annotanchor.evaluation.samples import Sample, write_samples

P = 6
BOOT = compare.Bootstrap(P, num_resamples=50, seed=0)


def const(x):
  return np.full(P, float(x))


def run(q, d, temps, q_sft=0.46, d_sft=0.8, d_base=2.2):
  arms = [f"a{i}" for i in range(len(temps))]
  quality = {"sft": const(q_sft), "base": const(0.0), **{a: const(v) for a, v in zip(arms, q)}}
  diversity = {"sft": const(d_sft), "base": const(d_base),
               **{a: const(v) for a, v in zip(arms, d)}}
  return frontier.frontier(diversity, quality, {"c": arms[::-1]}, dict(zip(arms, temps)),
                           "base", "sft", BOOT)["curves"]["c"]


def test_the_docstring_example():
  c = run([0.50, 0.30, 0.11], [2.08, 2.11, 2.06], [0.6, 0.8, 1.0])
  assert [p["temperature"] for p in c["points"]] == [0.6, 0.8, 1.0]  # Sorted by temperature.
  m = c["matched"]
  assert m["temperature"]["value"] == pytest.approx(0.64)
  assert m["diversity"]["value"] == pytest.approx(2.086)
  assert m["gap_closed"]["value"] == pytest.approx((2.086 - 0.8) / (2.2 - 0.8))
  # Every prompt alike: every resample gives the point.
  assert m["diversity"]["ci"] == pytest.approx([2.086, 2.086])


def test_the_highest_crossing_counts():
  # q crosses 0.46 between 0.6-0.8 (down), 0.8-0.9 (up) and 0.9-1.0 (down again).
  c = run([0.6, 0.4, 0.5, 0.3], [1.0, 2.0, 3.0, 4.0], [0.6, 0.8, 0.9, 1.0])
  assert c["matched"]["temperature"]["value"] == pytest.approx(0.9 + 0.1 * 0.04 / 0.2)


@pytest.mark.parametrize("q,needle", [([0.3, 0.2], "stays below q* = 0.460"),
                                      ([0.9, 0.8], "stays above q* = 0.460")])
def test_no_matched_point_is_null_with_the_reason(q, needle):
  m = run(q, [1.0, 2.0], [0.6, 1.0])["matched"]
  for key in ("temperature", "diversity", "gap_closed"):
    assert m[key]["value"] is None and needle in m[key]["reason"]


def test_a_matched_point_on_a_grid_point():
  assert run([0.46, 0.2], [1.5, 2.0], [0.6, 1.0])["matched"]["diversity"]["value"] == 1.5


def _arm_samples(arm, temperature, responses):
  return [Sample(prompt_id=f"p{j}", prompt=f"Tell story {j}.", annotation="", response=r,
                 sample_index=i, arm=arm,
                 decoding={"temperature": temperature, "top_k": 0, "top_p": 1.0,
                           "max_new_tokens": 64, "mode": "direct", "seed": 0})
          for j, row in enumerate(responses) for i, r in enumerate(row)]


def good_share(response: str) -> float:
  return float(response.startswith("good"))


@pytest.fixture
def files(tmp_path):
  # Per prompt 4 samples: diversity from distinct texts, quality from the "good" prefix.
  specs = {"base": (1.0, ["x a", "x b", "x c", "x d"]),
           "sft": (1.0, ["good a", "good a", "good a", "bad"]),         # q 0.75
           "sft_t0.6": (0.6, ["good a", "good a", "good a", "good a"]),  # q 1.0
           "anchored": (1.0, ["good a", "bad b", "bad c", "bad d"]),    # q 0.25
           "anchored_t0.6": (0.6, ["good a", "good b", "good c", "good d"])}  # q 1.0
  out = {}
  for arm, (temp, row) in specs.items():
    out[arm] = str(tmp_path / f"{arm}.jsonl")
    write_samples(out[arm], _arm_samples(arm, temp, [row] * 3))
  return out


def test_evaluate_reports_the_frontier(tmp_path, files):
  curves = {"sft": ["sft_t0.6", "sft"], "anchored": ["anchored", "anchored_t0.6"]}
  rep = evaluate_mod.evaluate(evaluate_mod.evaluate_config(
      files, str(tmp_path / "e"), frontiers=curves, quality_fn=good_share,
      quality_inputs=("response",), embedder=None, num_resamples=20))
  anchored = rep["frontier"]["distinct_k"]["curves"]["anchored"]["matched"]
  # Quality 1.0 at T 0.6 and 0.25 at 1.0 crosses q* = 0.75 at a third of the way.
  assert anchored["temperature"]["value"] == pytest.approx(0.6 + 0.4 / 3)
  assert anchored["diversity"]["value"] == pytest.approx(4.0)  # distinct 4 at both ends
  sft = rep["frontier"]["distinct_k"]["curves"]["sft"]["matched"]
  assert sft["temperature"]["value"] == pytest.approx(1.0) and sft["gap_closed"]["value"] == 0
  md = (tmp_path / "e" / "report.md").read_text()
  assert "## Diversity at matched quality (the frontier)" in md
  assert (tmp_path / "e" / "frontier.png").stat().st_size > 0
  json.dumps(rep, allow_nan=False)


@pytest.mark.parametrize("curves,kwargs,needle", [
    ({"sft": ["sft"]}, {}, "a curve needs two or more arms"),
    ({"sft": ["sft", "sft_t9"]}, {}, "names arms ['sft_t9']"),
    ({"a": ["sft", "anchored"]}, {}, "two arms share a temperature"),
    ({"sft": ["sft_t0.6", "sft"]}, {"quality_fn": None}, "needs evaluate.quality_fn")])
def test_bad_curves_are_refused_before_any_report(tmp_path, files, curves, kwargs, needle):
  settings = {"quality_fn": good_share, "quality_inputs": ("response",), "embedder": None,
              "num_resamples": 20, **kwargs}
  with pytest.raises(SettingError, match=needle.replace("[", r"\[").replace("]", r"\]")):
    evaluate_mod.evaluate(evaluate_mod.evaluate_config(
        files, str(tmp_path / "e"), frontiers=curves, **settings))
  assert not (tmp_path / "e").exists()
