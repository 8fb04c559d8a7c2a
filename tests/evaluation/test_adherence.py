"""Annotation adherence: the docstring's worked example and the evaluate report."""
import re

import pytest

from annotanchor import evaluate as evaluate_mod
from annotanchor.evaluation.adherence import annotation_adherence


def test_worked_example():
  anns = [{"hero": "Priya"}, {"hero": "Lars"}, {"hero": "Lars"}]
  resps = [{"hero": "Priya"}, {"hero": "Lars"}, {"hero": "Priya"}]
  out = annotation_adherence(anns, resps, ["hero"], {"hero": {"Priya", "Ada"}})
  assert out["hero"]["all"] == {"follows": pytest.approx(2 / 3), "count": 3}
  assert out["hero"]["outside_sft_modes"] == {"follows": 0.5, "count": 2}


def test_unknown_and_multiple_values_are_not_counted_and_unknown_responses_do_not_follow():
  anns = [{"hero": "unknown"}, {"hero": "a|b"}, {}, {"hero": "a"}, {"hero": "b"}]
  resps = [{"hero": "x"}, {"hero": "a"}, {"hero": "a"}, {"hero": "unknown"}, {}]
  out = annotation_adherence(anns, resps, ["hero", "genre"], {})
  assert out["hero"]["all"] == {"follows": 0.0, "count": 2}
  assert out["genre"]["all"] == {"follows": None, "count": 0}


def _response_labels(prompt, annotation, response):
  """'A <genre> story about <hero>.' -> labels; anything else: unknown."""
  m = re.fullmatch(r"A (\w+) story about (\w+)\.", response)
  return {"genre": m.group(1), "hero": m.group(2)} if m else {}


def test_evaluate_reports_adherence_of_arms_that_sample_annotations(tmp_path, write_arm):
  heroes = [f"h{i}" for i in range(4)]
  sft = write_arm("sft", {"p0": [f"A myth story about {h}." for h in ("h0", "h1") * 2]})
  base = write_arm("base", {"p0": [f"A myth story about {h}." for h in heroes]})
  # Annotations name h0..h3; the responses write h0, h1, h0, h3: h2 is not followed.
  anchored = write_arm(
      "anchored", {"p0": [f"A myth story about {h}." for h in ("h0", "h1", "h0", "h3")]},
      {"p0": [f"<ann> genre:myth hero:{h} </ann>" for h in heroes]})
  rep = evaluate_mod.evaluate(evaluate_mod.evaluate_config(
      {"base": base, "sft": sft, "anchored": anchored}, str(tmp_path / "e"),
      labeller=_response_labels, embedder=None, num_resamples=20, write_plots=False))
  adherence = rep["annotation_adherence"]
  assert list(adherence) == ["anchored"]  # base and sft carry no annotation
  assert adherence["anchored"]["hero"]["all"] == {"follows": 0.75, "count": 4}
  # SFT modes are h0, h1: of h2, h3 only h3 is followed.
  assert adherence["anchored"]["hero"]["outside_sft_modes"] == {"follows": 0.5, "count": 2}
  assert adherence["anchored"]["genre"]["outside_sft_modes"] == {"follows": None, "count": 0}
  md = open(tmp_path / "e" / "report.md").read()
  assert "## Annotation adherence" in md and "| hero | 0.75 (4) | 0.50 (2) |" in md


def test_annotation_tag_labeller_measures_no_adherence(tmp_path, write_arm):
  """Labels read from the annotation itself would follow it trivially: not reported."""
  files = {a: write_arm(a, {"p0": ["x."] * 2}, {"p0": ["<ann> hero:a </ann>"] * 2})
           for a in ("base", "sft", "anchored")}
  rep = evaluate_mod.evaluate(evaluate_mod.evaluate_config(
      files, str(tmp_path / "e"), labeller="annotation_tags", embedder=None, num_resamples=20,
      write_plots=False))
  assert rep["annotation_adherence"] == {}
  assert "Annotation adherence" not in open(tmp_path / "e" / "report.md").read()
