"""What `annotate` annotates in a record, and the record it writes back.

  kind        units annotated                 written record (what the data tasks read)
  documents   the blank-line chunks of text   {"id", "text", "annotations": [one per chunk]}
  sft_pairs   the response                    the record, plus "annotation"
  sft_chat    each assistant message          the record, each assistant message with its
                                              "annotation"

An `sft_pairs` output is read by `JsonlCorpus.sft` (pairs); an `sft_chat` output by
`JsonlCorpus.sft` with `sft_format='messages'`. With `show_prompt` the annotator of an SFT
unit sees `"Prompt: <the user turn before it>\\n\\nResponse: <the response>"` instead of the
response alone.
"""
from __future__ import annotations

import copy
import dataclasses
from typing import Any, Mapping, Sequence

from annotanchor.data import annotations, conversations, sources
from annotanchor.errors import SettingError

KINDS = ("documents", "sft_pairs", "sft_chat")


@dataclasses.dataclass(frozen=True)
class RecordKind:
  """The fields of the input records and how their units are found.

  Attributes:
    kind: one of KINDS.
    text_field: documents: the text; sft_pairs: the response.
    prompt_field: sft_pairs: the prompt.
    messages_field: sft_chat: the conversation.
    show_prompt: SFT kinds: the annotator also sees the prompt.
  """
  kind: str = "documents"
  text_field: str = "text"
  prompt_field: str = "prompt"
  messages_field: str = "messages"
  show_prompt: bool = False

  def __post_init__(self):
    if self.kind not in KINDS:
      raise SettingError(f"record_kind={self.kind!r}; expected one of {KINDS}")

  def _shown(self, prompt: str, response: str) -> str:
    return f"Prompt: {prompt}\n\nResponse: {response}" if self.show_prompt else response

  def units(self, record: Mapping[str, Any], where: str) -> tuple[str, ...]:
    """The texts to annotate, in order.

    Raises:
      sources.SourceError: the record lacks them (the record is a failure "bad_record").
    """
    if self.kind == "documents":
      text = sources.record_field(record, self.text_field, where, scalar=True)
      if not isinstance(text, str):
        raise sources.SourceError(f"{where}: field '{self.text_field}' is not a string")
      chunks = tuple(annotations.split_chunks(text))
      if not chunks:
        raise sources.SourceError(f"{where}: empty document in field '{self.text_field}'")
      return chunks
    if self.kind == "sft_pairs":
      texts = []
      for name in (self.prompt_field, self.text_field):
        value = sources.record_field(record, name, where, scalar=True)
        if not isinstance(value, str) or not value.strip():
          raise sources.SourceError(f"{where}: field '{name}' is empty or not a string")
        texts.append(value.strip())
      return (self._shown(*texts),)
    return tuple(self._shown(prompt, response) for prompt, response in self._exchanges(
        record, where))

  def _exchanges(self, record: Mapping[str, Any], where: str) -> list[tuple[str, str]]:
    """(the user text before it, the text) of each assistant turn of a conversation."""
    try:
      turns = conversations.conversation_turns(
          sources.record_field(record, self.messages_field, where))
    except conversations.ConversationError as e:
      raise sources.SourceError(f"{where}: field '{self.messages_field}': {e}") from None
    out, prompt = [], ""
    for role, text, _ in turns:
      if role == "user":
        prompt = text
      elif text:
        out.append((prompt, text))
    if not out:
      raise sources.SourceError(f"{where}: field '{self.messages_field}' has no assistant turn")
    return out

  def written(self, record: Mapping[str, Any], doc_id: str, units: Sequence[str],
              tags: Sequence[tuple[annotations.Tag, ...]],
              fmt: annotations.AnnotationFormat) -> dict[str, Any]:
    """The output record: `record` with each unit's annotation (see the module docstring)."""
    texts = [annotations.format_annotation(t, fmt) for t in tags]
    if self.kind == "documents":
      return {"id": doc_id, "text": "\n\n".join(units), "annotations": texts}
    out = copy.deepcopy(dict(record))
    if self.kind == "sft_pairs":
      out["annotation"] = texts[0]
      return out
    annotated = iter(texts)
    for message in out[self.messages_field]:
      if message.get("role") == "assistant" and conversations.message_text(message, 0).strip():
        message["annotation"] = next(annotated)
    return out
