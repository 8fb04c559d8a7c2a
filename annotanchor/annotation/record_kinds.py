"""What `annotate` annotates in a record, and the record it writes back.

  kind              units annotated             written record (what the data tasks read)
  documents         the blank-line chunks of    {"id", "text", "annotations": [one per chunk]}
                    text
  sft_pairs         the response                the record, plus "annotation"
  sft_chat          each assistant message      the record, each assistant message with its
                                                "annotation"
  preference_pairs  both answers of a pair (and the record, each answer with its annotation:
                    the prompt's earlier        "chosen_annotation" / "rejected_annotation"
                    assistant turns)            beside a string answer, "annotation" in an
                                                assistant message

An `sft_pairs` output is read by `JsonlCorpus.sft` (pairs); an `sft_chat` output by
`JsonlCorpus.sft` with `sft_format='messages'`; a `preference_pairs` output by
`PreferenceCorpus.pairs` (anchored DPO; record layouts: `data/preference_records.py`).
In a Tulu 3 record, whose two sides each hold the whole conversation, an earlier assistant
turn is annotated once and its annotation written to both sides. With `show_prompt` the annotator of an SFT
unit sees `"Prompt: <the user turn before it>\\n\\nResponse: <the response>"` instead of the
response alone.
"""
from __future__ import annotations

import copy
import dataclasses
from typing import Any, Callable, Mapping, Sequence

from annotanchor.data import annotations, conversations, sources
from annotanchor.errors import SettingError

KINDS = ("documents", "sft_pairs", "sft_chat", "preference_pairs")

# An annotation's place in a record being annotated: sets it there.
Assign = Callable[[str], None]


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
    if self.kind == "preference_pairs":
      return tuple(self._shown(prompt, text) for prompt, text, _ in _preference_slots(
          copy.deepcopy(dict(record)), where))
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
    if self.kind == "preference_pairs":
      for (_, _, assign), text in zip(_preference_slots(out, doc_id), texts, strict=True):
        assign(text)
      return out
    annotated = iter(texts)
    for message in out[self.messages_field]:
      if message.get("role") == "assistant" and conversations.message_text(message, 0).strip():
        message["annotation"] = next(annotated)
    return out


def _is_conversation(value: Any) -> bool:
  """Whether a preference answer is the whole conversation (Tulu 3), not the answer alone."""
  return (isinstance(value, list) and bool(value) and isinstance(value[0], dict)
          and value[0].get("role") in ("system", "developer", "user"))


def _preference_slots(record: dict[str, Any], where: str) -> list[tuple[str, str, Assign]]:
  """(the user text before it, the text, where its annotation goes in `record`) of every
  assistant turn of a preference record: the prompt's earlier ones, then the chosen and
  the rejected answer (`data/preference_records.py` has the layouts).

  Raises:
    sources.SourceError: no such answer, or one in no layout.
  """
  slots: list[tuple[str, str, Assign]] = []

  def turns(messages: Any, field: str, prompt: str, mirrors: Any = ()) -> str:
    """Slots for the assistant turns of `messages` (their annotations also written to the
    same turns of `mirrors`); returns the last user text."""
    if not isinstance(messages, list):
      raise sources.SourceError(f"{where}: field '{field}' is not a list of messages")
    for i, message in enumerate(messages):
      if not isinstance(message, dict):
        raise sources.SourceError(f"{where}: field '{field}': messages[{i}] is not a message")
      text = conversations.message_text(message, i).strip()
      if message.get("role") == "user":
        prompt = text
      elif message.get("role") == "assistant" and text:
        targets = [message] + [m for m in list(mirrors)[i:i + 1] if isinstance(m, dict)]
        slots.append((prompt, text, lambda a, targets=targets: [
            m.__setitem__("annotation", a) for m in targets]))
    return prompt

  try:
    answers = {side: sources.record_field(record, side, where) for side in ("chosen", "rejected")}
    prompt = ""
    if _is_conversation(answers["chosen"]):  # Its earlier turns are the prompt, on both sides.
      mirrors = answers["rejected"][:-1] if _is_conversation(answers["rejected"]) else ()
      prompt = turns(answers["chosen"][:-1], "chosen", prompt, mirrors)
    else:
      field = next((f for f in ("messages", "prompt") if f in record), None)
      context = record.get(field) if field else None
      prompt = context.strip() if isinstance(context, str) else (
          turns(context, field, prompt) if context is not None else prompt)
    for side, answer in answers.items():
      if isinstance(answer, str) and answer.strip():
        slots.append((prompt, answer.strip(), lambda a, side=side: record.__setitem__(
            f"{side}_annotation", a)))
        continue
      last = answer[-1] if isinstance(answer, list) and answer else None
      if (not isinstance(last, dict) or last.get("role") != "assistant"
          or not (_is_conversation(answer) or len(answer) == 1)):
        raise sources.SourceError(f"{where}: field '{side}' must be a string, one assistant "
                                  "message in a list, or the whole conversation")
      text = conversations.message_text(last, len(answer) - 1).strip()
      if not text:
        raise sources.SourceError(f"{where}: field '{side}': the answer is empty")
      slots.append((prompt, text, lambda a, last=last: last.__setitem__("annotation", a)))
  except conversations.ConversationError as e:
    raise sources.SourceError(f"{where}: {e}") from None
  return slots
