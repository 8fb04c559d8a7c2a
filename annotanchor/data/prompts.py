"""The prompt template shared by SFT data, decoding and evaluation.

An SFT sequence reads

    <user> Write a story about a dragon.
    <assistant> <ann> genre:myth hero:Mira </ann> Title: ...

`PromptTemplate.build` gives the model prompt (everything up to and including
the assistant marker); the model continues with an optional annotation and
the response, which `PromptTemplate.split_generation` takes apart again.
"""
import dataclasses

from annotanchor.data import annotations


@dataclasses.dataclass(frozen=True)
class Generation:
  """A generated continuation taken apart.

  Attributes:
    annotation: the annotation text as generated (empty when there was none).
    tags: its tags, parsed tolerantly.
    response: the response, annotation removed, surrounding whitespace stripped.
  """
  annotation: str
  tags: tuple[annotations.Tag, ...]
  response: str


@dataclasses.dataclass(frozen=True)
class PromptTemplate:
  """User/assistant markers around a prompt.

  A plain value, passed explicitly: a corpus registers its tasks with one (the standard
  `PromptTemplate()` unless its registration says otherwise, e.g. `JsonlCorpus.template =
  @prompts.PromptTemplate()` in gin), `train` records the task's in every checkpoint, and
  `infer`/`serve` read it back from there.

  Attributes:
    user_marker: opens the user turn.
    assistant_marker: opens the assistant turn; the model continues after it.
    annotation_format: the delimiters of the annotation that may open the
      assistant turn.
  """
  user_marker: str = "<user>"
  assistant_marker: str = "<assistant>"
  annotation_format: annotations.AnnotationFormat = dataclasses.field(
      default_factory=annotations.AnnotationFormat)

  @property
  def prompt_prefix(self) -> str:
    return f"{self.user_marker} "

  @property
  def prompt_suffix(self) -> str:
    return f"\n{self.assistant_marker}"

  # What separates the response from the assistant marker or the annotation.
  response_prefix = " "

  def build(self, prompt: str) -> str:
    """The model prompt for a user prompt: `"<user> {prompt}\\n<assistant>"`."""
    return f"{self.prompt_prefix}{prompt.strip()}{self.prompt_suffix}"

  def split_generation(self, text: str) -> Generation:
    """Splits a generated continuation into its annotation and response.

    Anything from a new user or assistant marker on is dropped (the model
    started another turn). An annotation counts only at the start of the
    continuation; one that is never closed takes the whole text.

    Args:
      text: the decoded continuation of `build(prompt)`.

    Returns:
      The Generation.
    """
    for marker in (self.user_marker, self.assistant_marker):
      cut = text.find(marker)
      if cut >= 0:
        text = text[:cut]
    fmt = self.annotation_format
    stripped = text.lstrip()
    if not stripped.startswith(fmt.open):
      return Generation("", (), stripped.strip())
    _, end = annotations.find_annotation(stripped, fmt)
    annotation = stripped[:end + len(fmt.close)]
    tags = annotations.parse_annotation(annotation, fmt, strict=False)
    return Generation(annotation.strip(), tags, stripped[end + len(fmt.close):].strip())


def marker_symbols(template: PromptTemplate) -> list[str]:
  """The delimiters and prompt markers of `template` that must be single tokens."""
  fmt = template.annotation_format
  return [fmt.open, fmt.close, template.user_marker, template.assistant_marker]
