"""Report caveats: the figures a report should not be read for, and why (issue 30)."""
import json

import numpy as np
import pytest

from annotanchor.evaluation import caveats, compare, report as report_mod
from annotanchor.evaluation.wellformed import CAUSES

ARMS = ("base", "sft", "anchored")
P = 16
_noise = np.random.default_rng(0).standard_normal((3, P))


def _healthy_figures():
  """{metric: {arm: (P,) per-prompt values}}: the base most diverse, SFT collapsed, the
  anchored arm in between, on every metric."""
  return {metric: {arm: level + 0.05 * _noise[i] for i, (arm, level) in
                   enumerate(zip(ARMS, levels))}
          for metric, levels in {"semantic_entropy": (2.5, 0.5, 2.0),
                                 "embedding_distance": (0.6, 0.3, 0.5),
                                 "distinct_1": (0.7, 0.4, 0.6)}.items()}


def _report(figures=None, unknown_rate=None, malformed_share=0.1, degenerate=None):
  """A report of evaluate's layout (report.py's docstring), assembled as evaluate assembles
  it: each metric's per-arm figures and comparisons from `compare.summarize_metric`."""
  figures = figures or _healthy_figures()
  boot = compare.Bootstrap(P, num_resamples=200, seed=0)
  arms = {a: {"diversity": {}, "quality": {}, "entropy_by_attribute": {}, "unknown_rate": {}}
          for a in ARMS}
  comparisons = {}
  for metric, per_arm in figures.items():
    summary = compare.summarize_metric(per_arm, boot, "base", "sft", arms=ARMS)
    for a in ARMS:
      arms[a]["diversity"][metric] = summary["per_arm"][a]
    comparisons[metric] = summary["comparisons"]
  genre = compare.ArmFigures(figures["semantic_entropy"], boot)
  for a in ARMS:
    arms[a]["entropy_by_attribute"]["genre"] = genre.estimate(a).to_dict()
    arms[a]["unknown_rate"]["genre"] = (unknown_rate or {}).get(a, 0.0)
    arms[a]["degenerate"] = (degenerate or {}).get(
        a, {"share": 0.0, "empty": 0.0, "repetitive": 0.0, "count": P * 8})
  by_cause = dict.fromkeys(CAUSES, 0)
  by_cause["malformed_tag"] = round(malformed_share * P * 8)
  return {
      "num_prompts": P, "num_samples": 8, "base_arm": "base", "sft_arm": "sft",
      "anchored_arm": "anchored",
      "settings": {"confidence": 0.95, "num_resamples": 200, "seed": 0},
      "arms": arms, "comparisons": comparisons, "annotation_adherence": {},
      "malformed_annotations": {"anchored": {"share": malformed_share, "count": P * 8,
                                             "by_cause": by_cause}},
      "capability": {}, "frontier": {}}


def _kinds(rep):
  return [(c["kind"], c["arm"], c["metric"]) for c in caveats.report_caveats(rep)]


def test_a_healthy_report_has_no_caveats_and_no_heading(tmp_path):
  rep = _report()
  assert caveats.report_caveats(rep) == []
  assert caveats.terminal_lines(rep) == []
  report_mod.write_report(rep, str(tmp_path))
  written = json.loads((tmp_path / "report.json").read_text())
  assert written["caveats"] == [] and written == rep
  md = (tmp_path / "report.md").read_text()
  assert "Read with care" not in md
  assert "## Degenerate samples" in md and "| base | 0.0% | 0.0% | 0.0% | 128 |" in md


def test_base_less_diverse_than_sft_on_one_metric_flags_that_metric_only():
  figures = _healthy_figures()
  figures["embedding_distance"]["sft"] = figures["embedding_distance"]["base"] + 0.05
  rep = _report(figures)
  found = caveats.report_caveats(rep)
  assert [(c["kind"], c["arm"], c["metric"]) for c in found] == [
      ("base_not_more_diverse", "base", "embedding_distance")]
  base = rep["arms"]["base"]["diversity"]["embedding_distance"]
  sft = rep["arms"]["sft"]["diversity"]["embedding_distance"]
  message = found[0]["message"]
  assert f"{base['value']:.3f} [{base['ci'][0]:.3f}, {base['ci'][1]:.3f}]" in message
  assert f"{sft['value']:.3f}" in message and "sft's figure is the higher" in message
  assert "gap closed" in message and "mean nothing" in message


def test_base_not_more_diverse_within_the_paired_interval():
  """A collapse(sft) whose paired interval reaches 0 is flagged; intervals that overlap only
  because prompts differ (each prompt's base above its SFT) are not."""
  figures = _healthy_figures()
  figures["distinct_1"]["sft"] = (figures["distinct_1"]["base"] - 0.002
                                 + 0.05 * (_noise[1] - _noise[1].mean()))
  spread = np.linspace(0.0, 2.0, P)  # Prompts differ far more than the arms do.
  figures["embedding_distance"] = {"base": spread + 0.1, "sft": spread,
                                   "anchored": spread + 0.05}
  rep = _report(figures)
  base = rep["arms"]["base"]["diversity"]["embedding_distance"]
  sft = rep["arms"]["sft"]["diversity"]["embedding_distance"]
  assert base["ci"][0] <= sft["ci"][1]  # The marginal intervals overlap ...
  assert rep["comparisons"]["embedding_distance"]["sft"]["collapse"]["ci"][0] > 0  # ... but.
  found = caveats.report_caveats(rep)
  assert [(c["kind"], c["metric"]) for c in found] == [("base_not_more_diverse", "distinct_1")]
  assert "reaches 0 within its interval" in found[0]["message"]


def test_unknown_labels_above_half():
  rep = _report(unknown_rate={"sft": 1.0, "anchored": 0.5})
  found = caveats.report_caveats(rep)
  assert [(c["kind"], c["arm"], c["metric"]) for c in found] == [
      ("unknown_labels", "sft", "semantic_entropy")]
  assert "100% of its genre labels are unknown" in found[0]["message"]


def test_the_issue_all_unknown_direct_arms():
  """Direct arms whose labels are all unknown score 0 bits: the base is then no more diverse
  than SFT on semantic entropy, and both arms' labels are named."""
  figures = _healthy_figures()
  figures["semantic_entropy"]["base"] = np.zeros(P)
  figures["semantic_entropy"]["sft"] = np.zeros(P)
  rep = _report(figures, unknown_rate={"base": 1.0, "sft": 1.0})
  assert _kinds(rep) == [("base_not_more_diverse", "base", "semantic_entropy"),
                         ("unknown_labels", "base", "semantic_entropy"),
                         ("unknown_labels", "sft", "semantic_entropy")]
  assert caveats.report_caveats(rep)[0]["message"].startswith(
      "semantic_entropy: base arm 'base' (0.000 [0.000, 0.000]) is not more diverse than "
      "standard-SFT arm 'sft' (0.000 [0.000, 0.000]; equal figures)")


def test_malformed_annotations_above_half():
  assert _kinds(_report(malformed_share=0.5)) == []
  rep = _report(malformed_share=0.75)
  found = caveats.report_caveats(rep)
  assert [(c["kind"], c["arm"], c["metric"]) for c in found] == [
      ("malformed_annotations", "anchored", None)]
  assert found[0]["message"].startswith(
      "anchored: 75% of its 128 sampled annotations are malformed (malformed_tag 96)")


def test_degeneracy_counts_empty_and_repetitive_responses():
  assert caveats.repetition_share("the cat sat the cat sat the cat sat") == pytest.approx(4 / 7)
  assert caveats.repetition_share("stop stop") == 0.0
  healthy = [
      "This is a myth from the harbor. Mira lived there with an old dog, and more than "
      "anything Mira wanted to find the lost bell.",
      "Trouble came quickly: a storm stood in their way. In the end, they found it.",
      "Listen to this fable. In the forest there once lived Tomas. One morning Tomas set out "
      "with a crow to cross the river. They walked for days over hills and along quiet roads.",
      "Once upon a time a fox met a crow."]
  assert caveats.degeneracy(healthy) == {"share": 0.0, "empty": 0.0, "repetitive": 0.0,
                                         "count": 4}
  broken = ["", "   \n", "and then and then and then and then and then",
            "The fox ran. " * 12, *healthy]
  d = caveats.degeneracy(broken)
  assert d == {"share": 0.5, "empty": 0.25, "repetitive": 0.25, "count": 8}
  assert caveats.degeneracy([])["share"] is None
  by_arm = caveats.degeneracy_by_arm({"base": broken, "sft": healthy})
  rep = _report(degenerate=by_arm)
  found = caveats.report_caveats(rep)
  assert [(c["kind"], c["arm"]) for c in found] == [("degenerate_samples", "base")]
  assert found[0]["message"].startswith(
      "base: 50% of its 8 samples are degenerate (25% empty, 25% repetitive)")


def test_report_md_puts_the_caveats_above_the_tables(tmp_path):
  figures = _healthy_figures()
  figures["embedding_distance"]["sft"] = figures["embedding_distance"]["base"] + 0.05
  rep = _report(figures, malformed_share=0.75)
  paths = report_mod.write_report(rep, str(tmp_path))
  assert paths == [str(tmp_path / "report.json"), str(tmp_path / "report.md")]
  text = (tmp_path / "report.json").read_text()
  written = json.loads(text)
  assert next(iter(written)) == "caveats" and written == rep
  assert [c["kind"] for c in written["caveats"]] == ["base_not_more_diverse",
                                                    "malformed_annotations"]
  assert set(written["caveats"][0]) == {"kind", "arm", "metric", "message"}
  md = (tmp_path / "report.md").read_text()
  lines = md.splitlines()
  heading = lines.index("**Read with care:**")
  assert lines[heading + 2:heading + 4] == [f"- {c['message']}" for c in written["caveats"]]
  comparisons = next(i for i, l in enumerate(lines) if l.startswith("## Comparisons"))
  assert heading < lines.index("## Per arm") < comparisons
  assert "| embedding distance | anchored |" in md  # The comparison is still written.
  assert caveats.terminal_lines(rep) == [
      "Read with care:", *(f"  - {c['message']}" for c in written["caveats"])]


def test_render_markdown_derives_caveats_a_report_lacks():
  rep = _report(malformed_share=0.75)
  assert "caveats" not in rep
  assert "**Read with care:**" in report_mod.render_markdown(rep)
  rep["caveats"] = []  # Given caveats are shown as they are.
  assert "Read with care" not in report_mod.render_markdown(rep)
