"""The scale table reads each size's report figures as they are, in the order given; the
command writes its files and refuses a missing or foreign report with one line."""
import json

import pytest

from annotanchor.evaluation import plots, scale
from tests.faults.conftest import assert_one_line_error, run


def _est(value, low, high):
  return {"value": value, "ci": [low, high]}


def _report(base_h, sft_h, anchored_h, sft_q, anchored_q):
  """A report.json of evaluate's layout with the figures the scale table reads."""
  arm = lambda h, q: {"diversity": {"semantic_entropy": _est(h, h - 0.1, h + 0.1)},
                      "quality": {"quality": _est(q, q - 0.05, q + 0.05)}}
  lost_sft, lost_anchored = base_h - sft_h, base_h - anchored_h
  gap = 1 - lost_anchored / lost_sft
  return {
      "base_arm": "base", "sft_arm": "sft", "anchored_arm": "anchored",
      "arms": {"base": arm(base_h, 0.0), "sft": arm(sft_h, sft_q),
               "anchored": arm(anchored_h, anchored_q)},
      "comparisons": {"semantic_entropy": {
          "sft": {"collapse": _est(lost_sft, lost_sft - 0.1, lost_sft + 0.1)},
          "anchored": {"collapse": _est(lost_anchored, lost_anchored - 0.1, lost_anchored + 0.1),
                       "gap_closed": _est(gap, gap - 0.1, gap + 0.1),
                       "collapse_ratio": _est(lost_sft / lost_anchored, 1.0, 9.0)}}}}


def test_rows_are_the_reports_figures_in_order():
  reports = {"small (3M)": _report(2.3, 1.0, 1.7, 0.5, 0.1),
             "tiny (0.1M)": _report(1.5, 1.2, 1.1, 0.4, 0.0)}
  rows = scale.scale_rows(reports)
  assert [r["size"] for r in rows] == ["small (3M)", "tiny (0.1M)"]
  first = reports["small (3M)"]
  assert rows[0]["base_entropy"] == first["arms"]["base"]["diversity"]["semantic_entropy"]
  assert rows[0]["sft_collapse"] == first["comparisons"]["semantic_entropy"]["sft"]["collapse"]
  assert rows[0]["gap_closed"] == first["comparisons"]["semantic_entropy"]["anchored"][
      "gap_closed"]
  assert rows[1]["anchored_quality"] == _est(0.0, -0.05, 0.05)
  table = scale.scale_markdown(rows).splitlines()
  assert table[0].startswith("| size | base semantic entropy (bits) |")
  assert table[2].startswith("| small (3M) | 2.30 [2.20, 2.40] | 1.30 [1.20, 1.40] |")


def test_a_report_without_quality_leaves_its_cells_empty():
  report = _report(2.0, 1.0, 1.5, 0.5, 0.4)
  for arm in report["arms"].values():
    arm["quality"] = {}
  row, = scale.scale_rows({"a": report})
  assert row["sft_quality"] is None and row["anchored_quality"] is None
  assert scale.scale_markdown([row]).splitlines()[2].endswith("| 2.00 [1.00, 9.00] |  |  |")


def test_a_report_without_the_arms_is_named():
  with pytest.raises(scale.ScaleError,
                     match=r"report 'b' has no arms\.base\.diversity\.semantic_entropy"):
    scale.scale_rows({"a": _report(2.0, 1.0, 1.5, 0.5, 0.4),
                      "b": {"base_arm": "base", "sft_arm": "sft", "anchored_arm": "anchored"}})


def test_the_command_writes_table_json_and_plot(tmp_path):
  paths = {}
  for size, figures in (("tiny", (1.5, 1.2, 1.1, 0.4, 0.0)), ("demo", (2.2, 0.8, 2.0, 0.5, 0.1)),
                        ("small", (2.3, 1.0, 1.7, 0.5, 0.1))):
    paths[size] = tmp_path / f"{size}.json"
    paths[size].write_text(json.dumps(_report(*figures)))
  out = tmp_path / "scale"
  reports = {size: str(p) for size, p in paths.items()}
  result = run(["scale", "--gin_file=gin/runs/scale.gin", f"--gin.REPORTS={reports!r}",
                f"--gin.OUTPUT_DIR='{out}'"])
  assert result.returncode == 0, result.stderr[-3000:]
  written = json.loads((out / "scale.json").read_text())
  assert [r["size"] for r in written["rows"]] == ["tiny", "demo", "small"]
  assert (out / "scale.md").read_text() in result.stdout
  assert (out / "scale.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  missing = run(["scale", "--gin_file=gin/runs/scale.gin",
                 f"--gin.REPORTS={{'tiny': '{tmp_path / 'nope.json'}'}}",
                 f"--gin.OUTPUT_DIR='{out}'"])
  assert_one_line_error(missing, "scale", "REPORTS['tiny']", "does not exist")
  unreadable = run(["scale", "--gin_file=gin/runs/scale.gin",
                    f"--gin.REPORTS={{'tiny': '{tmp_path}'}}", f"--gin.OUTPUT_DIR='{out}'"])
  assert_one_line_error(unreadable, "scale", "REPORTS['tiny']", "cannot be read")


def test_the_plot_takes_an_interval_that_leaves_out_its_point(tmp_path):
  """A percentile interval need not contain the point estimate; a missing value is skipped."""
  report = _report(2.0, 1.0, 1.5, 0.5, 0.4)
  gap = report["comparisons"]["semantic_entropy"]["anchored"]
  gap["gap_closed"] = _est(0.5, 0.55, 0.9)
  other = _report(2.0, 1.0, 1.5, 0.5, 0.4)
  other["comparisons"]["semantic_entropy"]["anchored"]["gap_closed"] = {
      "value": None, "ci": None, "reason": "undefined"}
  path = plots.scale_trend(scale.scale_rows({"a": report, "b": other}), str(tmp_path / "s.png"))
  assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
