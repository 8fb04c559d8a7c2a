"""Annotation adherence: does a response realize the annotation it was conditioned on?

Anchoring keeps diversity only if the response follows its sampled annotation. For an
arm that samples annotations and an attribute, adherence is the share of samples whose
annotation names a value (one value, not "unknown") whose response label equals it. A
response whose label is unknown counts as not following.

The split that explains a low gap closed is by the SFT arm's modes: a value the
standard-SFT arm's responses never take is outside what narrow SFT taught, and following
it there is what anchoring needs. Example, attribute hero, SFT arm labels {Priya, Ada}:

  annotation hero   response hero   counts toward
  Priya             Priya           all: follows;      outside SFT modes: -
  Lars              Lars            all: follows;      outside SFT modes: follows
  Lars              Priya           all: not follows;  outside SFT modes: not follows

  -> all 2/3, outside SFT modes 1/2.
"""
from typing import Callable, Dict, Mapping, Sequence

from annotanchor.evaluation.labels import UNKNOWN

Labels = Mapping[str, str]


def _share(hits: int, total: int) -> Dict[str, object]:
  return {"follows": hits / total if total else None, "count": total}


def annotation_adherence(annotation_labels: Sequence[Labels], response_labels: Sequence[Labels],
                         attributes: Sequence[str],
                         sft_modes: Mapping[str, set]) -> Dict[str, Dict[str, Dict[str, object]]]:
  """Adherence of one arm's samples, per attribute.

  Args:
    annotation_labels: per sample, the labels read from its annotation.
    response_labels: per sample, the labels read from its response.
    attributes: the attributes to measure.
    sft_modes: attribute -> the labels the standard-SFT arm's responses take.

  Returns:
    {attribute: {"all": S, "outside_sft_modes": S}} with S = {"follows": share or None
    (no sample), "count": the samples it is taken over}.
  """
  result = {}
  for attr in attributes:
    hits = total = out_hits = out_total = 0
    for ann, resp in zip(annotation_labels, response_labels):
      value = ann.get(attr, UNKNOWN)
      if value == UNKNOWN or "|" in value:  # no value, or several (not one to follow)
        continue
      follows = resp.get(attr, UNKNOWN) == value
      total += 1
      hits += follows
      if value not in sft_modes.get(attr, set()):
        out_total += 1
        out_hits += follows
    result[attr] = {"all": _share(hits, total), "outside_sft_modes": _share(out_hits, out_total)}
  return result


def adherence_by_arm(samples_by_arm: Mapping[str, Sequence], sft_arm: str,
                     annotation_labeller: Callable, response_labeller: Callable,
                     attributes: Sequence[str]) -> Dict[str, dict]:
  """annotation_adherence for every arm whose samples carry annotations.

  Args:
    samples_by_arm: arm -> samples (objects with prompt, annotation, response), flat.
    sft_arm: the standard-SFT arm, whose response labels define the SFT modes.
    annotation_labeller, response_labeller: (prompt, annotation, response) -> labels.
    attributes: the attributes to measure.

  Returns:
    {arm: annotation_adherence(...)}; arms without any annotation are left out.
  """
  def labels(labeller, samples):
    return [labeller(s.prompt, s.annotation, s.response) for s in samples]

  sft_labels = labels(response_labeller, samples_by_arm[sft_arm])
  modes = {a: {lab.get(a, UNKNOWN) for lab in sft_labels} - {UNKNOWN} for a in attributes}
  out = {}
  for arm, samples in samples_by_arm.items():
    if not any(s.annotation for s in samples):
      continue
    out[arm] = annotation_adherence(labels(annotation_labeller, samples),
                                    labels(response_labeller, samples), attributes, modes)
  return out
