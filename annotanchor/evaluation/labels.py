"""Label sources for semantic entropy: sample -> {attribute: label}.

A labeller maps one sample to the values of its semantic attributes (genre, hero,
location, ...). An attribute it cannot read is left out or given as UNKNOWN; the
metrics treat both the same way (see `diversity.semantic_entropy`).

A corpus with no parser and no judge needs no labeller of its own: `evaluate`'s default
labels each sample with its cluster among the response embeddings
(`clusters.EmbeddingClusterLabeller`, which labels whole sample sets rather than one
sample at a time).
"""
from typing import Callable, Dict, Mapping, Protocol, Sequence, runtime_checkable

from annotanchor.data import annotations
from annotanchor.data.annotations import AnnotationFormat
from annotanchor.evaluation.hooks import INPUTS, adapt, import_callable

UNKNOWN = "unknown"


@runtime_checkable
class Labeller(Protocol):
  """Maps (prompt, annotation, response) to {attribute: label}."""

  def __call__(self, prompt: str, annotation: str, response: str) -> Mapping[str, str]:
    ...


class AnnotationTagLabeller:
  """Labels from the sample's own annotation tags (`<ann> genre:mystery hero:ada </ann>`).

  Uses the tolerant parser of `annotanchor.data.annotations` (malformed tags skipped,
  a missing close delimiter allowed). A key that occurs several times gets its sorted
  distinct values joined by "|" (so `entity:a entity:b` and `entity:b entity:a` agree).
  Samples decoded without an annotation (direct mode) have no tags, so every attribute
  is unknown for them: use a response-side labeller (a parser, a judge, or the embedding
  clusters of `clusters.py`) to compare such arms.

  Args:
    keys: only these attributes (None: every key seen).
    fmt: the annotation format of the samples; None until `evaluate` sets the one the
      samples record (`samples.annotation_format`) with `with_format`.
  """

  def __init__(self, keys: Sequence[str] = None, fmt: AnnotationFormat | None = None):
    self.keys = None if keys is None else tuple(keys)
    self.fmt = fmt

  def with_format(self, fmt: AnnotationFormat) -> "AnnotationTagLabeller":
    """This labeller reading annotations in `fmt`."""
    return AnnotationTagLabeller(self.keys, fmt)

  def __call__(self, prompt: str, annotation: str, response: str) -> Dict[str, str]:
    if self.fmt is None:
      raise ValueError("AnnotationTagLabeller has no annotation format: use with_format()")
    values: Dict[str, set] = {}
    for key, value in annotations.parse_annotation(annotation, self.fmt, strict=False):
      values.setdefault(key, set()).add(value)
    labels = {k: "|".join(sorted(v)) for k, v in values.items()}
    if self.keys is not None:
      labels = {k: labels.get(k, UNKNOWN) for k in self.keys}
    return labels


class FunctionLabeller:
  """Adapts a plain function to the Labeller protocol.

  Args:
    fn: the function; it receives the sample fields named in `inputs`, in that order,
      and returns a mapping attribute -> label (labels are turned into strings; None
      means unknown).
    inputs: which of "prompt", "annotation", "response" `fn` takes. An exact response
      parser such as the storyworld one takes ("response",).
  """

  def __init__(self, fn: Callable[..., Mapping[str, object]], inputs: Sequence[str] = INPUTS):
    self.fn = fn
    self._call = adapt(fn, inputs)

  def __call__(self, prompt: str, annotation: str, response: str) -> Dict[str, str]:
    out = self._call(prompt, annotation, response)
    if not isinstance(out, Mapping):
      raise TypeError(f"labeller {self.fn!r} returned {type(out).__name__}, not a mapping")
    return {str(k): UNKNOWN if v is None else str(v) for k, v in out.items()}


def labeller_from_path(path: str, inputs: Sequence[str] = INPUTS) -> FunctionLabeller:
  """A FunctionLabeller around the function at import path `path`."""
  return FunctionLabeller(import_callable(path), inputs)
