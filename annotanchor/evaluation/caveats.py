"""When a report's numbers mean nothing: its caveats, and how degenerate an arm's samples are.

A report computes its figures whatever the samples are. Four situations make some of them
meaningless, and `report_caveats` names each as a short sentence with the arm, the metric
and the numbers (report.json "caveats"; report.md and `annotanchor evaluate` show them
first, under "Read with care"):

  kind                    when                                       what means nothing
  base_not_more_diverse   on a metric, standard SFT is not less      that metric's collapse,
                          diverse than the base: SFT's figure >=     gap closed, collapse
                          the base's, or SFT's collapse (the paired  ratio (all arms)
                          difference D(base) - D(sft)) has an
                          interval reaching 0
  unknown_labels          more than UNKNOWN_MAX_RATE of an arm's     that arm's semantic
                          labels of an attribute are unknown         entropy on it
  degenerate_samples      more than DEGENERATE_MAX_SHARE of an       that arm's diversity
                          arm's samples are empty or repetitive      and quality figures
  malformed_annotations   more than MALFORMED_MAX_SHARE of an arm's  that arm's annotation
                          sampled annotations do not parse           diversity

Degenerate samples (`degeneracy`, from the responses alone; `evaluate` puts the result in
report["arms"][arm]["degenerate"]): a response is *empty* when it has no non-space
character, and *repetitive* when at least REPETITION_MIN_SHARE of its word REPETITION_N-grams
repeat one earlier in the same response (words: the lower-cased text split on white space):

  response                                   3-grams  repeats  share  repetitive
  "the cat sat the cat sat the cat sat"      7        4        0.57   yes
  "Once upon a time a fox met a crow."       7        0        0.00   no
  "stop stop"                                0        0        0.00   no (too short)

Identical responses to one prompt are not degeneracy: that is the collapse the report
measures. A loop inside one word ("!!!!!!!!") or in text without spaces is not caught.
"""
import collections
from typing import Dict, List, Mapping, Optional, Sequence

# Semantic entropy counts an unknown label as one more value (or drops it): once most of an
# arm's labels are unknown, its entropy says what the labeller could read, not what the arm
# wrote (an arm whose labels are all unknown scores 0 bits however varied it is).
UNKNOWN_MAX_RATE = 0.5
# Annotation diversity only counts when a reader can read the annotations; past half
# malformed, most of an arm's sampled annotations carry no readable attribute at all.
MALFORMED_MAX_SHARE = 0.5
# A working model at sampling temperature writes few empty or looping responses; once a
# quarter of an arm's samples are broken, its diversity and quality describe the breakage
# as much as the model's stories (a few stray ones should not void the arm).
DEGENERATE_MAX_SHARE = 0.25
# Word 3-grams: prose repeats few of them (a phrase such as "in the forest" now and then);
# a decoding loop repeats nearly all.
REPETITION_N = 3
# At least half of a response's 3-grams repeating an earlier one is a loop, not style.
REPETITION_MIN_SHARE = 0.5

KINDS = ("base_not_more_diverse", "unknown_labels", "degenerate_samples",
         "malformed_annotations")


def repetition_share(text: str, n: int = REPETITION_N) -> float:
  """Share of the word n-grams of `text` that repeat one earlier in it (0 when it has none):
  1 - distinct / total, the within-response rep-n."""
  words = text.lower().split()
  grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
  return 1.0 - len(set(grams)) / len(grams) if grams else 0.0


def degeneracy(responses: Sequence[str]) -> Dict[str, object]:
  """How many of one arm's responses are empty or repetitive (see the module docstring).

  Returns:
    {"share": degenerate / count, "empty": empty / count, "repetitive": repetitive / count,
     "count": count}; shares are None when there is no response. A response is counted
    once: empty, or else repetitive.
  """
  empty = sum(1 for r in responses if not r.strip())
  repetitive = sum(1 for r in responses
                   if r.strip() and repetition_share(r) >= REPETITION_MIN_SHARE)
  count = len(responses)

  def share(k: int) -> Optional[float]:
    return k / count if count else None

  return {"share": share(empty + repetitive), "empty": share(empty),
          "repetitive": share(repetitive), "count": count}


def degeneracy_by_arm(responses_by_arm: Mapping[str, Sequence[str]]) -> Dict[str, dict]:
  """`degeneracy` of each arm's responses (all prompts' samples in one sequence)."""
  return {arm: degeneracy(list(responses)) for arm, responses in responses_by_arm.items()}


def _fmt(est: Optional[dict]) -> str:
  """`0.412 [0.380, 0.440]` (or without the interval when it has none)."""
  text = f"{est['value']:.3f}"
  if est.get("ci") is not None:
    text += f" [{est['ci'][0]:.3f}, {est['ci'][1]:.3f}]"
  return text


def _caveat(kind: str, arm: Optional[str], metric: Optional[str], message: str) -> dict:
  return {"kind": kind, "arm": arm, "metric": metric, "message": message}


def _known(est: Optional[dict]) -> bool:
  return bool(est) and est.get("value") is not None


def _base_not_more_diverse(report: dict) -> List[dict]:
  """One caveat per metric on which the base is not more diverse than standard SFT."""
  base, sft = report.get("base_arm"), report.get("sft_arm")
  arms = report.get("arms") or {}
  if base not in arms or sft not in arms:
    return []
  out = []
  for metric, by_arm in (report.get("comparisons") or {}).items():
    b = arms[base].get("diversity", {}).get(metric)
    s = arms[sft].get("diversity", {}).get(metric)
    if not (_known(b) and _known(s)):
      continue  # Undefined figures: the comparisons are already null, with the reason.
    collapse = (by_arm.get(sft) or {}).get("collapse")
    if s["value"] >= b["value"]:
      why = f"{sft}'s figure is the higher" if s["value"] > b["value"] else "equal figures"
    elif _known(collapse) and collapse.get("ci") is not None:
      # The paired interval of D(base) - D(sft): the bootstrap keeps each prompt's arms
      # together, so this is the test of "base more diverse", not the intervals' overlap.
      if collapse["ci"][0] > 0:
        continue
      why = f"{sft}'s collapse {_fmt(collapse)} reaches 0 within its interval"
    elif b.get("ci") is not None and s.get("ci") is not None and b["ci"][0] <= s["ci"][1]:
      why = "their intervals overlap"
    else:
      continue
    out.append(_caveat(
        "base_not_more_diverse", base, metric,
        f"{metric}: base arm '{base}' ({_fmt(b)}) is not more diverse than standard-SFT arm "
        f"'{sft}' ({_fmt(s)}; {why}), so collapse, gap closed and collapse ratio on {metric} "
        "mean nothing."))
  return out


def _unknown_labels(arm: str, figures: dict) -> List[dict]:
  rates = {attr: rate for attr, rate in (figures.get("unknown_rate") or {}).items()
           if rate is not None and rate > UNKNOWN_MAX_RATE}  # (NaN > x is False)
  if not rates:
    return []
  parts = " and ".join(f"{rate:.0%} of its {attr} labels" for attr, rate in rates.items())
  return [_caveat(
      "unknown_labels", arm, "semantic_entropy",
      f"{arm}: {parts} are unknown (the labeller read no value), so its semantic entropy on "
      f"{', '.join(rates)} measures the labeller, not the samples.")]


def _degenerate_samples(arm: str, figures: dict) -> List[dict]:
  d = figures.get("degenerate")
  if not d or d.get("share") is None or d["share"] <= DEGENERATE_MAX_SHARE:
    return []
  return [_caveat(
      "degenerate_samples", arm, None,
      f"{arm}: {d['share']:.0%} of its {d['count']} samples are degenerate ({d['empty']:.0%} "
      f"empty, {d['repetitive']:.0%} repetitive), so its diversity and quality figures "
      "describe broken output.")]


def _malformed_annotations(arm: str, m: dict) -> List[dict]:
  if m.get("share") is None or m["share"] <= MALFORMED_MAX_SHARE:
    return []
  causes = ", ".join(f"{cause} {n}" for cause, n in (m.get("by_cause") or {}).items() if n)
  return [_caveat(
      "malformed_annotations", arm, None,
      f"{arm}: {m['share']:.0%} of its {m['count']} sampled annotations are malformed"
      + (f" ({causes})" if causes else "")
      + ", so the attributes its annotations name are mostly unreadable.")]


def report_caveats(report: dict) -> List[dict]:
  """The caveats of a report of `evaluate` (the layout of report.py), in the order of KINDS:
  [{"kind": ..., "arm": ... or None, "metric": ... or None, "message": ...}, ...];
  [] for a report whose figures all mean what they say. Fields a report lacks (no labeller,
  no sampled annotations, no "degenerate" figures) raise no caveat."""
  arms = report.get("arms") or {}
  out = _base_not_more_diverse(report)
  for arm, figures in arms.items():
    out += _unknown_labels(arm, figures)
  for arm, figures in arms.items():
    out += _degenerate_samples(arm, figures)
  for arm, m in (report.get("malformed_annotations") or {}).items():
    out += _malformed_annotations(arm, m)
  return out


def caveats_of(report: dict) -> List[dict]:
  """The report's "caveats" when it has them, else `report_caveats(report)`."""
  return report["caveats"] if "caveats" in report else report_caveats(report)


def markdown_lines(report: dict) -> List[str]:
  """The "Read with care" bullet list that heads report.md; [] without caveats."""
  caveats = caveats_of(report)
  if not caveats:
    return []
  return ["**Read with care:**", "", *(f"- {c['message']}" for c in caveats), ""]


def terminal_lines(report: dict) -> List[str]:
  """The caveats as `annotanchor evaluate` prints them before its table; [] without any."""
  caveats = caveats_of(report)
  if not caveats:
    return []
  return ["Read with care:", *(f"  - {c['message']}" for c in caveats)]
