"""PNG plots of a report (matplotlib, Agg backend, written atomically)."""
import io
import os
from typing import List

from annotanchor.atomic_files import write_atomic
from annotanchor.evaluation.report import metric_title


def _pyplot():
  import matplotlib
  matplotlib.use("Agg")  # files only; never a display
  import matplotlib.pyplot as plt
  return plt


def _save(fig, path: str) -> str:
  buf = io.BytesIO()
  fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
  _pyplot().close(fig)
  write_atomic(path, buf.getvalue())
  return path


def _err(est: dict):
  """Asymmetric error-bar half-widths of an estimate (0 where there is no interval; a
  percentile interval can leave out its point estimate, and matplotlib refuses a negative
  half-width, so each is at least 0)."""
  if est["value"] is None or est["ci"] is None:
    return [[0.0], [0.0]]
  return [[max(0.0, est["value"] - est["ci"][0])], [max(0.0, est["ci"][1] - est["value"])]]


def diversity_vs_quality(report: dict, path: str) -> str:
  """One panel per diversity metric: each arm at (quality, D) with both intervals."""
  plt = _pyplot()
  arms = list(report["arms"])
  metrics = list(report["arms"][arms[0]]["diversity"])
  fig, axes = plt.subplots(1, len(metrics), figsize=(4.4 * len(metrics), 3.8), squeeze=False,
                           layout="constrained")
  for ax, m in zip(axes[0], metrics):
    for i, arm in enumerate(arms):
      d = report["arms"][arm]["diversity"][m]
      q = report["arms"][arm]["quality"]["quality"]
      if d["value"] is None or q["value"] is None:
        continue
      ax.errorbar(q["value"], d["value"], xerr=_err(q), yerr=_err(d), fmt="o", capsize=3,
                  color=f"C{i}", label=arm)
      ax.annotate(arm, (q["value"], d["value"]), textcoords="offset points", xytext=(5, 5))
    ax.set_xlabel("quality")
    ax.set_ylabel(metric_title(m))
    ax.grid(alpha=0.3)
  axes[0][0].legend(fontsize="small")
  fig.suptitle("Diversity against quality per arm")
  return _save(fig, path)


def frontier_curves(report: dict, path: str) -> str:
  """One panel per diversity metric: each curve's (quality, D) points joined in
  temperature order, labelled with their temperature; q* as a dashed line, the base arm."""
  plt = _pyplot()
  frontier = report["frontier"]
  fig, axes = plt.subplots(1, len(frontier), figsize=(4.6 * len(frontier), 3.9),
                           squeeze=False, layout="constrained")
  base = report["base_arm"]
  for ax, (metric, figures) in zip(axes[0], frontier.items()):
    for i, (curve, c) in enumerate(figures["curves"].items()):
      pts = [p for p in c["points"] if p["quality"]["value"] is not None
             and p["diversity"]["value"] is not None]
      xs = [p["quality"]["value"] for p in pts]
      ys = [p["diversity"]["value"] for p in pts]
      ax.plot(xs, ys, "-", color=f"C{i}", alpha=0.6)
      for p, x, y in zip(pts, xs, ys):
        ax.errorbar(x, y, xerr=_err(p["quality"]), yerr=_err(p["diversity"]), fmt="o",
                    capsize=3, color=f"C{i}", label=curve if p is pts[0] else None)
        ax.annotate(f"T={p['temperature']:g}", (x, y), textcoords="offset points",
                    xytext=(4, 4), fontsize="x-small")
    q_star = figures["reference_quality"]["value"]
    if q_star is not None:
      ax.axvline(q_star, ls="--", color="grey", lw=1, label="q* (sft)")
    d_base = report["arms"][base]["diversity"][metric]["value"]
    if d_base is not None:
      ax.axhline(d_base, ls=":", color="black", lw=1, label=f"{base}")
    ax.set_xlabel("quality")
    ax.set_ylabel(metric_title(metric))
    ax.grid(alpha=0.3)
  axes[0][0].legend(fontsize="small")
  fig.suptitle("Diversity-quality frontier over sampling temperature")
  return _save(fig, path)


def entropy_by_attribute(report: dict, path: str) -> str:
  """Grouped bars: semantic entropy per attribute, one bar per arm, with intervals."""
  plt = _pyplot()
  arms = list(report["arms"])
  attrs = list(report["arms"][arms[0]]["entropy_by_attribute"])
  width = 0.8 / len(arms)
  fig, ax = plt.subplots(figsize=(max(5.0, 1.1 * len(attrs) * max(1, len(arms) / 2)), 3.8))
  for i, arm in enumerate(arms):
    ests = [report["arms"][arm]["entropy_by_attribute"][a] for a in attrs]
    xs = [j + (i - (len(arms) - 1) / 2) * width for j in range(len(attrs))]
    vals = [0.0 if e["value"] is None else e["value"] for e in ests]
    lo = [_err(e)[0][0] for e in ests]
    hi = [_err(e)[1][0] for e in ests]
    ax.bar(xs, vals, width, yerr=[lo, hi], capsize=2, label=arm, color=f"C{i}")
  ax.set_xticks(range(len(attrs)))
  ax.set_xticklabels(attrs, rotation=30, ha="right")
  ax.set_ylabel("entropy (bits)")
  ax.set_title("Semantic entropy by attribute")
  ax.legend(fontsize="small")
  return _save(fig, path)


def scale_trend(rows: List[dict], path: str) -> str:
  """The scale table (evaluation/scale.py) as two panels over the sizes, in order:
  each arm's collapse (bits of the base's semantic entropy lost), and the gap closed."""
  plt = _pyplot()
  fig, (left, right) = plt.subplots(1, 2, figsize=(9.0, 3.6), layout="constrained")
  xs = list(range(len(rows)))
  for i, (key, label) in enumerate((("sft_collapse", "standard SFT"),
                                    ("anchored_collapse", "anchored"))):
    ests = [r[key] for r in rows]
    _errorbar_series(left, xs, ests, f"C{i}", label)  # The frontier plot's colours.
  _errorbar_series(right, xs, [r["gap_closed"] for r in rows], "C1", "gap closed")
  left.set_ylabel("collapse (bits of semantic entropy)")
  right.set_ylabel("gap closed")
  for ax in (left, right):
    ax.set_xticks(xs)
    ax.set_xticklabels([r["size"] for r in rows])
    ax.set_xlabel("model size")
    ax.axhline(0.0, color="grey", lw=0.8)
    ax.grid(alpha=0.3)
  left.legend(fontsize="small")
  fig.suptitle("Collapse and gap closed by model size")
  return _save(fig, path)


def _errorbar_series(ax, xs: List[int], ests: List[dict], color: str, label: str) -> None:
  """Points joined in order with their intervals; sizes without a value are left out."""
  kept = [(x, e) for x, e in zip(xs, ests) if e["value"] is not None]
  if not kept:
    return
  errs = [_err(e) for _, e in kept]
  ax.errorbar([x for x, _ in kept], [e["value"] for _, e in kept],
              yerr=[[lo[0] for lo, _ in errs], [hi[0] for _, hi in errs]], fmt="o-",
              capsize=3, color=color, label=label)


def write_plots(report: dict, output_dir: str) -> List[str]:
  """Writes the plots the report has data for; returns their paths."""
  arms = list(report["arms"])
  written = []
  if "quality" in report["arms"][arms[0]]["quality"] and report["arms"][arms[0]]["diversity"]:
    written.append(diversity_vs_quality(report, os.path.join(output_dir,
                                                             "diversity_vs_quality.png")))
  if report["arms"][arms[0]].get("entropy_by_attribute"):
    written.append(entropy_by_attribute(report, os.path.join(output_dir,
                                                             "entropy_by_attribute.png")))
  if report.get("frontier"):
    written.append(frontier_curves(report, os.path.join(output_dir, "frontier.png")))
  return written
