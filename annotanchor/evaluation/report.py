"""report.json and report.md from the evaluation results (written atomically).

report.json layout:

  {"caveats": [{"kind": K, "arm": str|null, "metric": str|null, "message": str}, ...],
   "num_prompts": P, "num_samples": N, "base_arm": ..., "sft_arm": ..., "anchored_arm": ...,
   "settings": {...},
   "arms": {arm: {"diversity": {metric: E}, "quality": {name: E},
                  "entropy_by_attribute": {attr: E}, "unknown_rate": {attr: float},
                  "degenerate": {"share": F, "empty": F, "repetitive": F, "count": int}}},
   "comparisons": {metric: {arm: {"collapse": E, "gap_closed": E, "collapse_ratio": E}}},
   "annotation_adherence": {arm: {attr: {"all": S, "outside_sft_modes": S}}},
   "malformed_annotations": {arm: {"share": float|null, "count": int, "by_cause": {...}}},
   "capability": {arm: {task: {"acc": A, "acc_norm": A, "num_examples": n, ...}}},
   "frontier": {metric: {"reference_quality": E, "curves": {curve: {"points": [...],
                "matched": {"temperature": E, "diversity": E, "gap_closed": E}}}}}}

with E = {"value": float|null, "ci": [low, high]|null, "reason": str (only when null)} and
S = {"follows": float|null, "count": int} (see evaluation/adherence.py; only arms that
sample annotations, and only with a response-side labeller); malformed_annotations covers
the arms that sample annotations (see evaluation/wellformed.py); capability, the arms
given a capability.json, with A = {"value": float, "stderr": float|null} (see
evaluation/capability.py); frontier, the curves of `evaluate.frontiers` (see
evaluation/frontier.py); caveats, the sentences saying which figures mean nothing and
why (evaluation/caveats.py: [] when none; `write_report` derives them when the report has
none); degenerate, the share of an arm's samples that are empty or repetitive (F a float,
null without samples; evaluation/caveats.py).

report.md opens with the caveats ("Read with care", when there are any), then the tables.
"""
import json
from typing import List, Optional

from annotanchor.atomic_files import write_atomic
from annotanchor.evaluation import caveats as caveats_mod

METRIC_TITLES = {
    "semantic_entropy": "semantic entropy (bits)",
    "embedding_distance": "embedding distance",
    "distinct_k": "distinct_k",
}


def metric_title(name: str) -> str:
  return METRIC_TITLES.get(name, name.replace("_", "-") if name.startswith("distinct_") else name)


def fmt_estimate(est: dict, digits: int = 3) -> str:
  """`1.234 [1.100, 1.400]`, or `n/a` (with a footnote mark when a reason exists)."""
  if est is None:
    return ""
  if est["value"] is None:
    return "n/a*" if est.get("reason") else "n/a"
  text = f"{est['value']:.{digits}f}"
  if est["ci"] is not None:
    text += f" [{est['ci'][0]:.{digits}f}, {est['ci'][1]:.{digits}f}]"
  elif est.get("reason"):
    text += " [n/a*]"
  return text


def markdown_table(header: List[str], rows: List[List[str]]) -> List[str]:
  return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
          *("| " + " | ".join(r) + " |" for r in rows), ""]


def per_arm_table(report: dict) -> List[str]:
  """The per-arm table (markdown): each arm's diversity, quality and capability figures;
  `annotanchor evaluate` also prints it."""
  arms = list(report["arms"])
  first = report["arms"][arms[0]]
  metrics, quals = list(first["diversity"]), list(first["quality"])
  capability = report.get("capability") or {}
  tasks = list(next(iter(capability.values()))) if capability else []
  rows = [[a] + [fmt_estimate(report["arms"][a]["diversity"][m]) for m in metrics]
          + [fmt_estimate(report["arms"][a]["quality"][q]) for q in quals]
          + [_fmt_accuracy(capability.get(a, {}).get(t, {}).get("acc")) for t in tasks]
          for a in arms]
  return markdown_table(["arm"] + [metric_title(m) for m in metrics] + quals
                        + [f"{t} acc" for t in tasks], rows)


def measured_with(settings: dict) -> List[str]:
  """Where the labels, the distinct_k classes and the quality come from (report.md lines;
  none for a report written before evaluate recorded them)."""
  lines = []
  clusters = settings.get("clusters")
  if clusters:
    count = clusters["num_clusters"]
    silhouette = clusters.get("mean_silhouette")
    lines.append(
        f"Semantic entropy labels: embedding clusters ({clusters['scope']}; cut at cosine "
        f"distance {clusters['distance_threshold']:.2f}, {clusters['threshold_chosen_by']}; "
        f"{count['mean_per_prompt']:.1f} clusters per prompt, {count['min_per_prompt']} to "
        f"{count['max_per_prompt']}"
        + ("" if silhouette is None else f"; mean silhouette {silhouette:.2f}") + ").")
  elif settings.get("labeller"):
    lines.append(f"Semantic entropy labels: {settings['labeller']}.")
  if settings.get("distinct_k_equivalence"):
    lines.append(f"distinct_k classes: {settings['distinct_k_equivalence']}.")
  if "quality_source" in settings:
    lines.append(f"Quality: {settings['quality_source'] or 'not measured (no checker or judge)'}.")
  return [*lines, ""] if lines else []


def render_markdown(report: dict) -> str:
  """The human-readable report: its caveats first, then the per-arm table, comparisons,
  per-attribute entropy and the other tables."""
  arms = list(report["arms"])
  first = report["arms"][arms[0]]
  conf = round(100 * report["settings"]["confidence"])
  lines = [
      "# Diversity report", "",
      *caveats_mod.markdown_lines(report),
      f"{report['num_prompts']} prompts x {report['num_samples']} samples per arm. "
      f"Intervals: {conf}% paired percentile bootstrap over prompts "
      f"({report['settings']['num_resamples']} resamples, seed {report['settings']['seed']}).",
      ""]
  lines += measured_with(report["settings"])
  if report["settings"].get("prompt_constraints"):
    lines += ["Semantic entropy leaves out, per prompt, the attributes the prompt fixes "
              f"(`{report['settings']['prompt_constraints']}`).", ""]
  capability = report.get("capability") or {}
  lines += ["## Per arm", "", *per_arm_table(report)]
  lines += [f"## Comparisons (base = {report['base_arm']}, sft = {report['sft_arm']})", "",
            "collapse = D(base) - D(arm); gap closed = (D(arm) - D(sft)) / (D(base) - D(sft)); "
            "collapse ratio = collapse(sft) / collapse(arm).", ""]
  notes = []
  rows = []
  for m, by_arm in report["comparisons"].items():
    for arm, comp in by_arm.items():
      cells = [metric_title(m), arm]
      for key in ("collapse", "gap_closed", "collapse_ratio"):
        est = comp.get(key)
        cells.append(fmt_estimate(est) if est else "")
        if est and est.get("reason"):
          notes.append(f"\\* {metric_title(m)}, {arm}, {key}: {est['reason']}")
      rows.append(cells)
  lines += markdown_table(["metric", "arm", "collapse", "gap closed", "collapse ratio"], rows)
  attrs = list(first.get("entropy_by_attribute", {}))
  if attrs:
    lines += ["## Semantic entropy by attribute (bits; unknown rate in parentheses)", ""]
    lines += markdown_table(
        ["attribute"] + arms,
        [[attr] + [f"{fmt_estimate(report['arms'][a]['entropy_by_attribute'][attr])}"
                   f" ({report['arms'][a]['unknown_rate'][attr]:.0%})" for a in arms]
         for attr in attrs])
  lines += _degenerate_lines(report["arms"])
  lines += _adherence_lines(report.get("annotation_adherence") or {})
  lines += _malformed_lines(report.get("malformed_annotations") or {})
  lines += _capability_lines(capability)
  lines += _frontier_lines(report.get("frontier") or {}, report["sft_arm"])
  if notes:
    lines += ["## Notes", "", *notes, ""]
  return "\n".join(lines)


def _degenerate_lines(arms: dict) -> List[str]:
  """The degenerate-sample table: share of each arm's samples empty or repetitive."""
  rows = [[arm, *(_fmt_share(d[k]) for k in ("share", "empty", "repetitive")), str(d["count"])]
          for arm, figures in arms.items() for d in [figures.get("degenerate")] if d]
  if not rows:
    return []
  return ["## Degenerate samples", "",
          "Share of each arm's samples that are empty or repetitive (at least "
          f"{caveats_mod.REPETITION_MIN_SHARE:.0%} of a response's word "
          f"{caveats_mod.REPETITION_N}-grams repeat an earlier one; see "
          "evaluation/caveats.py).", "",
          *markdown_table(["arm", "degenerate", "empty", "repetitive", "samples"], rows)]


def _fmt_share(share: Optional[float]) -> str:
  return "n/a" if share is None else f"{share:.1%}"


def _adherence_lines(adherence: dict) -> List[str]:
  """The annotation-adherence table: share following (samples) per attribute and arm."""
  if not adherence:
    return []
  arms = list(adherence)
  attrs = list(next(iter(adherence.values())))

  def cell(share: dict) -> str:
    return "n/a (0)" if share["follows"] is None else f"{share['follows']:.2f} ({share['count']})"

  header = ["attribute"] + [f"{a}: all" for a in arms] + [f"{a}: outside SFT modes" for a in arms]
  rows = [[attr] + [cell(adherence[a][attr]["all"]) for a in arms]
          + [cell(adherence[a][attr]["outside_sft_modes"]) for a in arms] for attr in attrs]
  return ["## Annotation adherence (arms that sample an annotation)", "",
          "Share of samples whose response realizes the value its annotation names (samples "
          "counted in parentheses); *outside SFT modes*: annotation values the standard-SFT "
          "arm's responses never take.", "", *markdown_table(header, rows)]


def _malformed_lines(malformed: dict) -> List[str]:
  """The malformed-annotation table: share that does not parse, and its causes, per arm."""
  if not malformed:
    return []
  causes = list(next(iter(malformed.values()))["by_cause"])
  rows = [[arm, f"{m['share']:.1%}", str(m["count"])] + [str(m["by_cause"][c]) for c in causes]
          for arm, m in malformed.items()]
  return ["## Malformed sampled annotations", "",
          "Share of sampled annotations that do not parse strictly or repeat a key (see "
          "evaluation/wellformed.py), with the count per cause.", "",
          *markdown_table(["arm", "malformed", "sampled"] + causes, rows)]


def _fmt_accuracy(acc: Optional[dict]) -> str:
  """`0.812 ± 0.021` (the standard error), or "" for an arm without a capability result."""
  if not acc:
    return ""
  return f"{acc['value']:.3f}" + (f" ± {acc['stderr']:.3f}" if acc["stderr"] is not None else "")


def _capability_lines(capability: dict) -> List[str]:
  """The capability table: acc and acc_norm per task and arm."""
  if not capability:
    return []
  tasks = list(next(iter(capability.values())))
  header = ["arm"] + [f"{t} {k}" for t in tasks for k in ("acc", "acc_norm")]
  rows = [[arm] + [_fmt_accuracy(by_task[t][k]) for t in tasks for k in ("acc", "acc_norm")]
          for arm, by_task in capability.items()]
  n = {t: next(iter(capability.values()))[t]["num_examples"] for t in tasks}
  return ["## Capability (multiple choice)", "",
          "Accuracy of the choice with the highest log-likelihood (acc) and of the highest "
          "log-likelihood per character (acc_norm), ± the standard error; questions per task: "
          + ", ".join(f"{t} {n[t]}" for t in tasks) + ".", "", *markdown_table(header, rows)]


def _frontier_lines(frontier: dict, sft_arm: str) -> List[str]:
  """Diversity at matched quality per curve, and the curves' points."""
  if not frontier:
    return []
  rows, points = [], []
  for metric, figures in frontier.items():
    for curve, c in figures["curves"].items():
      m = c["matched"]
      rows.append([metric_title(metric), curve, fmt_estimate(figures["reference_quality"]),
                   fmt_estimate(m["temperature"], 2), fmt_estimate(m["diversity"]),
                   fmt_estimate(m["gap_closed"])]
                  + ([m["diversity"].get("reason", "")] if m["diversity"]["value"] is None
                     else [""]))
      if metric == next(iter(frontier)):
        points += [[curve, f"{p['temperature']:g}", p["arm"], fmt_estimate(p["quality"]),
                    fmt_estimate(p["diversity"])] for p in c["points"]]
  first = metric_title(next(iter(frontier)))
  return ["## Diversity at matched quality (the frontier)", "",
          f"Each curve is one model sampled over a temperature grid; its matched point is "
          f"where its quality, interpolated in temperature, equals q* = the {sft_arm} arm's; "
          "gap closed there = (D* - D(sft)) / (D(base) - D(sft)). A method that only trades "
          "quality for diversity has no more diversity there than SFT itself.", "",
          *markdown_table(["metric", "curve", "q*", "T*", "D*", "gap closed at q*", "note"], rows),
          f"Points ({first}):", "",
          *markdown_table(["curve", "temperature", "arm", "quality", first], points)]


def write_report(report: dict, output_dir: str) -> List[str]:
  """Writes report.json and report.md under `output_dir`; returns their paths.

  A report without "caveats" gets them here (`caveats.report_caveats`, set on `report`
  itself, so the caller's dict is what report.json holds); they come first in report.json.
  """
  import os
  json_path = os.path.join(output_dir, "report.json")
  md_path = os.path.join(output_dir, "report.md")
  if "caveats" not in report:
    report["caveats"] = caveats_mod.report_caveats(report)
  ordered = {"caveats": report["caveats"], **report}
  # allow_nan=False: a NaN that slipped through is a bug, not a number to print.
  write_atomic(json_path, json.dumps(ordered, indent=2, sort_keys=False, allow_nan=False) + "\n")
  write_atomic(md_path, render_markdown(report))
  return [json_path, md_path]


def read_report(output_dir: str) -> Optional[dict]:
  """Loads report.json from `output_dir`."""
  import os
  with open(os.path.join(output_dir, "report.json"), encoding="utf-8") as f:
    return json.load(f)
