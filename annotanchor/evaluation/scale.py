"""The scale trend: one report per model size, side by side.

The paper's second finding is that standard SFT's collapse grows with model size while the
anchored model keeps its diversity. Each size is a whole demo pipeline with its own report
(gin/experiments/model_size_sweep.gin); this module reads their report.json figures into one
row per size, in the order given:

  size | base entropy H_b | SFT collapse H_b - H_sft | anchored collapse H_b - H_anc |
       | gap closed 1 - (H_b - H_anc) / (H_b - H_sft) | collapse ratio | quality of both arms

(semantic entropy in bits), every figure with its own report's bootstrap interval: the
figures are the reports', nothing is recomputed.
"""
from typing import List, Mapping

from annotanchor.errors import UserError
from annotanchor.evaluation.report import fmt_estimate, markdown_table

METRIC = "semantic_entropy"


class ScaleError(UserError):
  """A report lacks what the scale table needs."""


def _get(report: dict, name: str, *keys, required: bool = True):
  """report[k1][k2]...; a missing key is a ScaleError naming the whole path, or None
  where not `required`."""
  node = report
  for key in keys:
    if not isinstance(node, dict) or key not in node:
      if not required:
        return None
      raise ScaleError(f"report {name!r} has no {'.'.join(keys)}: expected an "
                       "`annotanchor evaluate` report.json with base, sft and anchored arms")
    node = node[key]
  return node


def scale_rows(reports: Mapping[str, dict]) -> List[dict]:
  """One row per size (report), in order.

  Args:
    reports: size label -> a parsed report.json (evaluation/report.py's layout).

  Returns:
    [{"size", "base_entropy", "sft_collapse", "anchored_collapse", "gap_closed",
      "collapse_ratio", "sft_quality", "anchored_quality"}], each figure an estimate
    {"value", "ci"} as in the report (the qualities None for a report without them).
  """
  if not reports:
    raise ScaleError("no reports given: expected size label -> report.json")
  rows = []
  for size, report in reports.items():
    base, sft, anchored = (_get(report, size, k) for k in ("base_arm", "sft_arm", "anchored_arm"))
    compared = lambda arm, key: _get(report, size, "comparisons", METRIC, arm, key)
    # Quality needs a checker (evaluate's quality_fn), which not every corpus has.
    quality = lambda arm: _get(report, size, "arms", arm, "quality", "quality", required=False)
    rows.append({
        "size": size,
        "base_entropy": _get(report, size, "arms", base, "diversity", METRIC),
        "sft_collapse": compared(sft, "collapse"),
        "anchored_collapse": compared(anchored, "collapse"),
        "gap_closed": compared(anchored, "gap_closed"),
        "collapse_ratio": compared(anchored, "collapse_ratio"),
        "sft_quality": quality(sft),
        "anchored_quality": quality(anchored),
    })
  return rows


COLUMNS = (("base_entropy", "base semantic entropy (bits)"),
           ("sft_collapse", "standard SFT collapse (bits)"),
           ("anchored_collapse", "anchored collapse (bits)"),
           ("gap_closed", "gap closed"), ("collapse_ratio", "collapse ratio"),
           ("sft_quality", "standard SFT quality"), ("anchored_quality", "anchored quality"))


def scale_markdown(rows: List[dict]) -> str:
  """The rows as a markdown table, 95% intervals in brackets."""
  return "\n".join(markdown_table(
      ["size"] + [title for _, title in COLUMNS],
      [[row["size"]] + [fmt_estimate(row[key], 2) for key, _ in COLUMNS] for row in rows]))
