"""The annotation format: `key:value` tags between delimiters, and chunking.

An annotation is a short list of tags, written

    <ann> genre:fairy_tale hero:Mira location:glass_harbor </ann>

Keys are lower-case identifiers; values hold no whitespace (spaces become `_`)
and may contain `:` after the first one. This module is the only place that
knows the layout: everything else formats and parses through it.
"""
import dataclasses
import re
from typing import Optional, Sequence

Tag = tuple[str, str]

_KEY = re.compile(r"[a-z][a-z0-9_]*\Z")
_BLANK_LINE = re.compile(r"\n[ \t\r\f\v]*\n")


class AnnotationError(ValueError):
  """Raised for text that is not a well-formed annotation."""


@dataclasses.dataclass(frozen=True)
class AnnotationFormat:
  """The delimiters around an annotation.

  One object, owned by the corpus's PromptTemplate (`JsonlCorpus.template`, storyworld's
  `TEMPLATE`), reaches every layer that formats or parses: the tasks' sources and
  preprocessors, the checkpoint's metadata, decoding, and each sample's record for
  evaluation. It is a plain value (no gin state); gin files construct another with
  `@annotations.AnnotationFormat()` where a corpus needs one.

  Attributes:
    open: opening delimiter.
    close: closing delimiter.
  """
  open: str = "<ann>"
  close: str = "</ann>"

  def __post_init__(self):
    for name, delimiter in (("open", self.open), ("close", self.close)):
      if not delimiter or any(c.isspace() for c in delimiter) or ":" in delimiter:
        raise AnnotationError(f"Delimiter {name}={delimiter!r} must be non-empty, without "
                              "whitespace or ':'.")
    if self.open == self.close:
      raise AnnotationError(f"The open and close delimiters are both {self.open!r}.")


def normalize_value(value: str) -> str:
  """Joins the words of a value with `_` ("glass harbor" -> "glass_harbor")."""
  return "_".join(str(value).split())


def validate_tag(key: str, value: str, fmt: Optional[AnnotationFormat] = None) -> None:
  """Raises AnnotationError unless `key:value` is a well-formed tag (one that holds neither
  of `fmt`'s delimiters, when given: its annotation would not parse back)."""
  if not _KEY.match(key):
    raise AnnotationError(f"Tag key {key!r} is not a lower-case identifier ([a-z][a-z0-9_]*).")
  if not value or any(c.isspace() for c in value):
    raise AnnotationError(f"Tag {key!r} has an empty value or one with whitespace: {value!r}.")
  if fmt is not None and (fmt.open in value or fmt.close in value):
    raise AnnotationError(f"Tag {key!r} holds a delimiter of {fmt}: {value!r}.")


def make_tags(pairs) -> tuple[Tag, ...]:
  """Normalizes and validates (key, value) pairs (or a dict) into tags."""
  items = pairs.items() if isinstance(pairs, dict) else pairs
  tags = tuple((str(k), normalize_value(v)) for k, v in items)
  for key, value in tags:
    validate_tag(key, value)
  return tags


def format_body(tags: Sequence[Tag]) -> str:
  """`[("genre", "myth"), ("hero", "Mira")]` -> `"genre:myth hero:Mira"`."""
  return " ".join(f"{k}:{v}" for k, v in tags)


def format_annotation(tags: Sequence[Tag], fmt: AnnotationFormat) -> str:
  """The full annotation text, `<ann> k:v ... </ann>`.

  Raises:
    AnnotationError: a tag holds one of the delimiters (the text would not parse back).
  """
  for key, value in tags:
    validate_tag(key, value, fmt)
  return f"{fmt.open} {format_body(tags)} {fmt.close}"


def annotation_pieces(tags: Sequence[Tag], fmt: AnnotationFormat) -> list[tuple[str, bool]]:
  """Splits `format_annotation(tags)` into (text, is_value) pieces.

  Preprocessors tokenize each piece on its own so that the tokens of tag
  values are known (anchored SFT can leave keys in the loss and mask values).
  The pieces concatenate to the annotation text:

    [("<ann>", False), (" genre:", False), ("myth", True), (" </ann>", False)]
  """
  pieces = [(fmt.open, False)]
  for key, value in tags:
    pieces += [(f" {key}:", False), (value, True)]
  return pieces + [(f" {fmt.close}", False)]


def parse_body(body: str, strict: bool = True) -> tuple[Tag, ...]:
  """Parses `"k:v k:v"` into tags.

  Args:
    body: whitespace-separated tags.
    strict: raise on any malformed tag (ingested data); otherwise skip it
      (model output).

  Returns:
    The tags, in order.

  Raises:
    AnnotationError: in strict mode, on a malformed tag or an empty body.
  """
  tags = []
  for word in body.split():
    key, sep, value = word.partition(":")
    try:
      if not sep:
        raise AnnotationError(f"{word!r} is not a key:value tag.")
      validate_tag(key, value)
    except AnnotationError:
      if strict:
        raise
      continue
    tags.append((key, value))
  if strict and not tags:
    raise AnnotationError("The annotation holds no tags.")
  return tuple(tags)


def parse_annotation(text: str, fmt: AnnotationFormat, strict: bool = True) -> tuple[Tag, ...]:
  """Parses an annotation's text back into tags.

  Strict mode (for ingested data) requires exactly one `<ann> tags </ann>`
  and nothing else. Tolerant mode (for model output) reads the tags of the
  first annotation in `text`, with or without a closing delimiter, skipping
  malformed tags; text without an opening delimiter gives no tags.

  Raises:
    AnnotationError: in strict mode, if `text` is not a well-formed annotation.
  """
  if strict:
    stripped = text.strip()
    if not (stripped.startswith(fmt.open) and stripped.endswith(fmt.close)):
      raise AnnotationError(f"Annotation {text!r} is not enclosed in {fmt.open} ... {fmt.close}.")
    body = stripped[len(fmt.open):len(stripped) - len(fmt.close)]
    if fmt.open in body or fmt.close in body:
      raise AnnotationError(f"Annotation {text!r} holds a nested or second delimiter.")
    return parse_body(body, strict=True)
  span = find_annotation(text, fmt)
  return () if span is None else parse_body(text[span[0] + len(fmt.open):span[1]], strict=False)


def find_annotation(text: str, fmt: AnnotationFormat) -> Optional[tuple[int, int]]:
  """Locates the first annotation in `text`.

  Returns:
    `(start, end)` with `text[start:]` beginning with the open delimiter and
    `text[end:]` with the close delimiter (`end == len(text)` when the
    annotation is never closed), or None when there is no open delimiter.
  """
  start = text.find(fmt.open)
  if start < 0:
    return None
  end = text.find(fmt.close, start + len(fmt.open))
  return start, (len(text) if end < 0 else end)


def strip_annotations(text: str, fmt: AnnotationFormat) -> str:
  """Removes every annotation (closed or not) from `text`."""
  while (span := find_annotation(text, fmt)) is not None:
    start, end = span
    text = text[:start] + text[end + len(fmt.close):].lstrip(" ")
  return text.strip()


def split_chunks(document: str) -> list[str]:
  """Splits a document into chunks on blank lines, dropping empty chunks."""
  return [c.strip() for c in _BLANK_LINE.split(document.replace("\r\n", "\n")) if c.strip()]
