"""The tag schema of an annotation run: which keys, how long a value, how many tags.

Normalisation goes through `annotanchor.data.annotations` (the one place that knows the
tag format); the schema only decides what to keep:

  TagSchema(allowed_keys=("topic", "location")).normalize(
      [("Topic", "Sea Dragons."), ("mood", "calm"), ("location", "glass harbor")])
  -> (("topic", "sea_dragons"), ("location", "glass_harbor"))
"""
from __future__ import annotations

import dataclasses
from typing import Iterable, Optional, Sequence

import gin

from annotanchor.data import annotations
from annotanchor.errors import SettingError

# The paper's tag keys (docs/design.md 1.1).
PAPER_KEYS = ("topic", "domain", "entity", "action", "location", "time", "sentiment", "style",
              "genre")
# Stripped from both ends of a value: quotes, brackets and sentence punctuation.
_TRIM = "\"'`.,;!?()[]{}"


@gin.configurable
@dataclasses.dataclass(frozen=True)
class TagSchema:
  """What a valid annotation holds.

  Attributes:
    allowed_keys: the keys kept (others are dropped); None keeps every well-formed key.
    max_value_chars: values longer than this (after normalisation) are dropped.
    max_tags: at most this many tags are kept, in order.
    lowercase_values: lower-case every value.
    fmt: the annotation format the tags will be written in (the reading corpus's
      template's; `annotate.annotation_format`): a value holding one of its delimiters
      is dropped, and an answer written in it is read between its delimiters.
  """
  allowed_keys: Optional[Sequence[str]] = PAPER_KEYS
  max_value_chars: int = 40
  max_tags: int = 12
  lowercase_values: bool = True
  fmt: annotations.AnnotationFormat = annotations.AnnotationFormat()

  def __post_init__(self):
    if self.allowed_keys is not None:
      for key in self.allowed_keys:
        try:
          annotations.validate_tag(key, "x")
        except annotations.AnnotationError as e:
          raise SettingError(f"TagSchema.allowed_keys: {e}") from None
      object.__setattr__(self, "allowed_keys", tuple(self.allowed_keys))
    if self.max_value_chars < 1 or self.max_tags < 1:
      raise SettingError(f"TagSchema.max_value_chars={self.max_value_chars} and max_tags="
                         f"{self.max_tags} must be at least 1")

  def normalize_key(self, key: str) -> str:
    """`" Main Topic "` -> `"main_topic"`; `"sub-genre"` -> `"sub_genre"`."""
    return annotations.normalize_value(key.strip(_TRIM + " ").replace("-", " ").lower())

  def normalize(self, pairs: Iterable[tuple[str, str]]) -> tuple[annotations.Tag, ...]:
    """The schema-valid tags among raw (key, value) pairs, normalised, duplicates dropped.

    Args:
      pairs: keys and values as an annotator wrote them.

    Returns:
      The kept tags, in their original order (possibly none).
    """
    kept = []
    for key, value in pairs:
      key = self.normalize_key(str(key))
      value = annotations.normalize_value(str(value).strip(_TRIM + " ").strip(_TRIM))
      if self.lowercase_values:
        value = value.lower()
      if self.allowed_keys is not None and key not in self.allowed_keys:
        continue
      if len(value) > self.max_value_chars or (key, value) in kept:
        continue
      try:
        annotations.validate_tag(key, value, self.fmt)
      except annotations.AnnotationError:
        continue
      kept.append((key, value))
    return tuple(kept[:self.max_tags])
