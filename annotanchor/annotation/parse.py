"""Reading `key:value` tags out of an annotator's free-text answer.

An instruct model answers in one of a few shapes; each is tried in turn and the first that
yields a schema-valid tag wins (see `TagSchema` for normalisation):

  "<ann> topic:dragons genre:myth </ann>"        the annotation format itself
  '{"topic": "dragons", "genre": "myth"}'        a JSON object (values may be lists)
  "topic:dragons genre:fairy_tale"               inline tags
  "- Topic: sea dragons\\n- Genre: myth"          one `key: value` per line

  parse_response("Tags: topic:dragons location:glass_harbor.", TagSchema())
  -> (("topic", "dragons"), ("location", "glass_harbor"))

An answer with no valid tag raises `ResponseParseError`: the caller retries it and finally
records a failure; an empty annotation is never returned.
"""
from __future__ import annotations

import json
import re

from annotanchor.annotation.schema import TagSchema
from annotanchor.data import annotations

_LINE = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)])?\s*([A-Za-z][\w \-]{0,40}?)\s*:\s+(\S.*?)\s*$")
_FENCE = re.compile(r"```[a-zA-Z]*")


class ResponseParseError(ValueError):
  """An annotator's answer holds no tag that the schema accepts."""


def _json_pairs(text: str) -> list[tuple[str, str]]:
  start, end = text.find("{"), text.rfind("}")
  if start < 0 or end < start:
    return []
  try:
    obj = json.loads(text[start:end + 1])
  except json.JSONDecodeError:
    return []
  if not isinstance(obj, dict):
    return []
  pairs = []
  for key, value in obj.items():
    for v in value if isinstance(value, list) else [value]:
      if isinstance(v, (str, int, float)) and not isinstance(v, bool):
        pairs.append((key, str(v)))
  return pairs


def _inline_pairs(text: str) -> list[tuple[str, str]]:
  pairs = []
  for word in re.split(r"[\s,;]+", text):
    key, sep, value = word.partition(":")
    if sep and key and value:
      pairs.append((key, value))
  return pairs


def _line_pairs(text: str) -> list[tuple[str, str]]:
  return [m.groups() for m in map(_LINE.match, text.splitlines()) if m]


def parse_response(text: str, schema: TagSchema) -> tuple[annotations.Tag, ...]:
  """The tags of an annotator's answer (see the module docstring for the shapes read).

  Args:
    text: the answer (a completion's text or a chat message's content).
    schema: keeps, normalises and limits the tags; its format's delimiters are recognised
      when the answer uses them.

  Returns:
    At least one tag.

  Raises:
    ResponseParseError: no shape gives a schema-valid tag.
  """
  body, fmt = _FENCE.sub(" ", text), schema.fmt
  span = annotations.find_annotation(body, fmt)
  if span is not None:
    body = body[span[0] + len(fmt.open):span[1]]
  for reader in (_json_pairs, _inline_pairs, _line_pairs):
    tags = schema.normalize(reader(body))
    if tags:
      return tags
  shown = text if len(text) <= 200 else text[:200] + "..."
  raise ResponseParseError(f"no valid key:value tag in the answer {shown!r}")
