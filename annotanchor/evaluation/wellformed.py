"""How much of an arm's sampled annotations a reader can read: the malformed share.

An anchored sample's annotation is model output; its diversity counts for little if the
tags do not parse. A sampled annotation is well formed when it parses strictly (one
`<ann> ... </ann>`, every word a `key:value` tag) and names no key twice. Each malformed
one is counted under the first cause found, in this order:

  annotation                                 cause
  <ann> genre:myth hero:Mira </ann>          (well formed)
  <ann> genre:myth </ann> a story </ann>     delimiter   (nested, second or missing one)
  <ann> </ann>                               empty       (no tag at all)
  <ann> kind an:story </ann>                 malformed_tag  ("kind" is no key:value)
  <ann> genre:myth genre:epic </ann>         repeated_key

-> for these five: malformed share 4/5, by cause 1 each.
"""
from typing import Dict, Mapping, Sequence

from annotanchor.data import annotations

CAUSES = ("delimiter", "empty", "malformed_tag", "repeated_key")


def malformed_cause(annotation: str, fmt: annotations.AnnotationFormat) -> str | None:
  """The cause an annotation is malformed (one of CAUSES), or None when it is well formed."""
  stripped = annotation.strip()
  if not (stripped.startswith(fmt.open) and stripped.endswith(fmt.close)):
    return "delimiter"
  body = stripped[len(fmt.open):len(stripped) - len(fmt.close)]
  if fmt.open in body or fmt.close in body:
    return "delimiter"
  if not body.split():
    return "empty"
  try:
    tags = annotations.parse_body(body, strict=True)
  except annotations.AnnotationError:
    return "malformed_tag"
  keys = [key for key, _ in tags]
  return "repeated_key" if len(set(keys)) < len(keys) else None


def malformed_share(annotation_texts: Sequence[str],
                    fmt: annotations.AnnotationFormat) -> Dict[str, object]:
  """{"share": malformed / sampled, "count": sampled, "by_cause": {cause: count}}."""
  by_cause = dict.fromkeys(CAUSES, 0)
  for text in annotation_texts:
    cause = malformed_cause(text, fmt)
    if cause is not None:
      by_cause[cause] += 1
  total = len(annotation_texts)
  return {"share": sum(by_cause.values()) / total if total else None, "count": total,
          "by_cause": by_cause}


def malformed_by_arm(samples_by_arm: Mapping[str, Sequence],
                     fmt: annotations.AnnotationFormat) -> Dict[str, dict]:
  """malformed_share of the sampled annotations (decoding mode "anchored") of each arm
  that has any; a given annotation (mode "given_annotation") is not model output."""
  out = {}
  for arm, samples in samples_by_arm.items():
    sampled = [s.annotation for s in samples if s.decoding["mode"] == "anchored"]
    if sampled:
      out[arm] = malformed_share(sampled, fmt)
  return out
