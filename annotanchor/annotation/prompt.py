"""The prompt that asks an instruct LLM for the tags of one chunk.

  AnnotationPrompt().render("A dragon slept under the harbour.", ("topic", "location"))
  -> "Annotate the passage below with short key:value tags ... Keys: topic, location ...
      Passage:\\nA dragon slept under the harbour.\\n\\nTags:"

The template is a `str.format` string with the fields `{chunk}` and `{keys}` (the
schema's keys, comma-separated); a template with any other field is refused when the
prompt is built, naming the field.
"""
from __future__ import annotations

import dataclasses
import string
from typing import Optional, Sequence

import gin

from annotanchor.annotation.schema import PAPER_KEYS
from annotanchor.errors import SettingError

DEFAULT_TEMPLATE = """\
Annotate the passage below with short key:value tags that describe what it is about, so \
that similar passages get similar tags.
Keys: {keys}. Use only these keys, each at most once, and leave out keys that do not apply.
Values are short: one to three lower-case words joined by underscores, e.g. \
location:glass_harbor sentiment:hopeful.
Answer with the tags on one line, separated by spaces, and nothing else.

Passage:
{chunk}

Tags:"""

_FIELDS = {"chunk", "keys"}


@gin.configurable
@dataclasses.dataclass(frozen=True)
class AnnotationPrompt:
  """The annotator's prompt.

  Attributes:
    template: `str.format` text with `{chunk}` and optionally `{keys}`.
    system: a system message for chat endpoints ("" sends none).
  """
  template: str = DEFAULT_TEMPLATE
  system: str = "You annotate text passages with semantic key:value tags."

  def __post_init__(self):
    fields = {name for _, name, _, _ in string.Formatter().parse(self.template) if name is not None}
    if "chunk" not in fields or fields - _FIELDS:
      raise SettingError(f"AnnotationPrompt.template must use {{chunk}} and may use {{keys}}; it "
                         f"has the fields {sorted(fields)}")

  def render(self, chunk: str, keys: Optional[Sequence[str]]) -> str:
    """The prompt for one chunk; `keys` None (any key) names the paper's keys as examples."""
    return self.template.format(chunk=chunk.strip(), keys=", ".join(keys or PAPER_KEYS))
