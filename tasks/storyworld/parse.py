"""Reading attributes back from text, and judging assistant-style quality.

Used by evaluation on generated responses (annotations already stripped):
`parse_attributes` gives the per-attribute labels behind semantic entropy and
`check_quality` the share of good samples, without a judge model.
"""
import dataclasses
import functools
import re
from typing import Mapping

from tasks.storyworld import templates
from tasks.storyworld.world import ATTRIBUTES

UNKNOWN = "unknown"


@functools.cache
def _patterns() -> dict[str, tuple[re.Pattern, dict[str, str]]]:
  """Per attribute: one regex over all surface phrases, and phrase -> value tag."""
  patterns = {}
  for attribute, values in ATTRIBUTES.items():
    lookup = {p.lower(): v.tag for v in values for p in v.phrases}
    # Longest first, so that a phrase wins over any phrase it contains.
    alternation = "|".join(re.escape(p) for p in sorted(lookup, key=len, reverse=True))
    patterns[attribute] = (re.compile(rf"(?<!\w)(?:{alternation})(?!\w)", re.IGNORECASE), lookup)
  return patterns


def parse_attributes(text: str) -> dict[str, str]:
  """Maps text to each attribute's value tag, or "unknown".

  The first phrase of an attribute found in the text decides its value.

  Args:
    text: a story (or any text), without annotations.

  Returns:
    `{attribute: value tag or "unknown"}` for every storyworld attribute.
  """
  result = {}
  for attribute, (pattern, lookup) in _patterns().items():
    match = pattern.search(text)
    result[attribute] = lookup[match.group(0).lower()] if match else UNKNOWN
  return result


@dataclasses.dataclass(frozen=True)
class Quality:
  """The quality verdict on one response.

  Attributes:
    well_formed: at least three paragraphs, no markup left, every attribute
      recognized.
    assistant_style: opens with a `Title: ` line and closes with "The End.".
    prompt_followed: every constrained attribute has the constrained value.
  """
  well_formed: bool
  assistant_style: bool
  prompt_followed: bool

  @property
  def ok(self) -> bool:
    return self.well_formed and self.assistant_style and self.prompt_followed


_MARKUP = re.compile(r"<[^>\s]*>")


def check_quality(response: str, constraints: Mapping[str, str]) -> Quality:
  """Judges a response to a prompt with the given constraints.

  Args:
    response: the generated response, annotation removed.
    constraints: `{attribute: value tag}` the prompt asked for (may be empty).

  Returns:
    The Quality.
  """
  paragraphs = [p.strip() for p in response.strip().split("\n\n") if p.strip()]
  attributes = parse_attributes(response)
  well_formed = (len(paragraphs) >= 3 and not _MARKUP.search(response)
                 and UNKNOWN not in attributes.values())
  title_prefix = templates.SFT_TITLE.split("{")[0]
  assistant_style = (bool(paragraphs) and paragraphs[0].startswith(title_prefix)
                     and "\n" not in paragraphs[0] and paragraphs[-1] == templates.SFT_CLOSING)
  followed = all(attributes.get(a) == v for a, v in constraints.items())
  return Quality(well_formed, assistant_style, followed)


def prompt_constraints(prompt: str) -> dict[str, str]:
  """The attributes a storyworld prompt constrains, read back from its text.

  Prompts name a constrained value with one of its surface phrases and name no
  other attribute, so the parser recovers the constraint exactly:
  "Tell me a story whose hero is Mira." -> {"hero": "Mira"}; "Could you tell me
  a story?" -> {}.
  """
  return {a: v for a, v in parse_attributes(prompt).items() if v != UNKNOWN}


def check_prompted_quality(prompt: str, response: str) -> Quality:
  """`check_quality` with the constraints read from the prompt (evaluation's hook:
  `evaluate.quality_fn = 'tasks.storyworld.parse:check_prompted_quality'`,
  `evaluate.quality_inputs = ('prompt', 'response')`)."""
  return check_quality(response, prompt_constraints(prompt))
