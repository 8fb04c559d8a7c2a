"""Preference records (a prompt, a chosen and a rejected response), validated into the
training pieces of both responses.

The layouts users have (trl, the Tulu 3 preference mixture, UltraFeedback):

  {"prompt": "Tell a story.", "chosen": "Once...", "rejected": "A story."}
  {"prompt": [messages], "chosen": [assistant message], "rejected": [assistant message]}
  {"messages": [messages], "chosen": ..., "rejected": ...}        (the context as messages)
  {"chosen": [user ..., assistant], "rejected": [user ..., assistant]}  (Tulu 3: each side
                                                                  the whole conversation)

A response is a string or a message list ending with the one assistant message being
judged; when the list is a whole conversation (it starts with a user or system turn),
both sides must hold the same turns before their last message, and those are the prompt.
For anchored DPO each response carries its own annotation (`"<ann> k:v </ann>"` or a
{key: value} object): the assistant message's `annotation`, or for a string response the
record's `chosen_annotation` / `rejected_annotation`. Earlier assistant turns of a
multi-turn prompt carry theirs as in chat SFT (`sources.chat_example`).

Each side is laid out exactly as chat SFT lays out that conversation (our template, or a
Hugging Face chat template), so `{"prompt": P, "chosen": R}` reads as the SFT pair (P, R):

  chosen_pieces = ["<user> P\\n<assistant>", "<ann>", " k:", "v", " </ann>", " R"]
  chosen_kinds  = ["context", "annotation", "annotation", "annotation_value", "annotation",
                   "last_response"]

A bad record stops with one `SourceError` naming the file, the record and the field
(`chosen`, `rejected`, `prompt`): messages[i] counts the prompt's messages first.
"""
from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Optional

import tensorflow as tf

from annotanchor.data import sources
from annotanchor.data.chat_template import ChatTemplate
from annotanchor.data.prompts import PromptTemplate

SIDES = ("chosen", "rejected")
CONTEXT_FIELDS = ("prompt", "messages")


def _field(record: sources.Record, name: str, where: str) -> Any:
  """A field; a list of one string (a TFRecord feature) is that string, while a list of
  one message stays a list."""
  value = sources.record_field(record, name, where)
  return value[0] if isinstance(value, list) and len(value) == 1 and isinstance(
      value[0], str) else value


def _context(record: sources.Record, where: str) -> Optional[list[dict]]:
  """The prompt as messages, from `prompt` (a string or messages) or `messages`; None
  when the record has neither (its sides are whole conversations)."""
  given = [f for f in CONTEXT_FIELDS if f in record]
  if len(given) > 1:
    raise sources.SourceError(f"{where}: both 'prompt' and 'messages' given; a preference "
                              "record has one prompt")
  if not given:
    return None
  value = _field(record, given[0], where)
  if isinstance(value, str):
    if not value.strip():
      raise sources.SourceError(f"{where}: field '{given[0]}' is empty")
    return [{"role": "user", "content": value}]
  if not isinstance(value, list) or not value:
    raise sources.SourceError(f"{where}: field '{given[0]}' must be a string or a non-empty "
                              "list of messages")
  return list(value)


def _is_whole_conversation(response: Any) -> bool:
  return (isinstance(response, list) and bool(response) and isinstance(response[0], dict)
          and response[0].get("role") in ("system", "developer", "user"))


def _shown(messages: list[dict]) -> list[tuple[Any, Any]]:
  return [(m.get("role"), m.get("content")) if isinstance(m, dict) else (None, m)
          for m in messages]


def _conversation(record: sources.Record, where: str, side: str,
                  context: Optional[list[dict]], anchored: bool) -> list[dict]:
  """The conversation one side of the pair completes: prompt messages, then its answer."""
  response = _field(record, side, where)
  if _is_whole_conversation(response):
    return list(response)
  if context is None:
    raise sources.SourceError(
        f"{where}: field '{side}' is an answer alone, and the record has no 'prompt' or "
        "'messages' for it to answer")
  if isinstance(response, str):
    if not response.strip():
      raise sources.SourceError(f"{where}: field '{side}' is empty")
    message = {"role": "assistant", "content": response}
    annotation = record.get(f"{side}_annotation")
    if annotation is not None:
      message["annotation"] = annotation
    elif anchored:
      raise sources.SourceError(
          f"{where}: no '{side}_annotation' for the string answer in '{side}': anchored DPO "
          "needs each answer's annotation (the standard preference task does not)")
    return context + [message]
  if (not isinstance(response, list) or len(response) != 1 or not isinstance(response[0], dict)
      or response[0].get("role") != "assistant"):
    raise sources.SourceError(f"{where}: field '{side}' must be a string, one assistant "
                              "message in a list, or the whole conversation")
  return context + response


def preference_example(record: sources.Record, where: str, template: PromptTemplate,
                       chat_template: Optional[ChatTemplate] = None,
                       anchored: bool = True) -> dict[str, list[str]]:
  """Validates a preference record into both sides' training pieces and kinds.

  Args:
    record: the record (module docstring).
    where: "FILE, record N", for messages.
    template: the corpus's prompt template (and annotation format).
    chat_template: lay the conversations out in this Hugging Face chat template instead.
    anchored: every assistant message must carry its annotation (anchored DPO); False: any
      may lack it (standard DPO leaves annotations out).

  Returns:
    {"chosen_pieces", "chosen_kinds", "rejected_pieces", "rejected_kinds"}.

  Raises:
    SourceError: naming `where` and the field at fault.
  """
  context = _context(record, where)
  conversations = {side: _conversation(record, where, side, context, anchored)
                   for side in SIDES}
  if _shown(conversations["chosen"][:-1]) != _shown(conversations["rejected"][:-1]):
    raise sources.SourceError(f"{where}: 'chosen' and 'rejected' answer different prompts "
                              "(their turns before the last message differ)")
  example = {}
  for side, messages in conversations.items():
    pieces = sources.chat_example({side: messages}, where, side, template, chat_template,
                                  anchored=anchored)
    example[f"{side}_pieces"], example[f"{side}_kinds"] = pieces["pieces"], pieces["kinds"]
  return example


@dataclasses.dataclass(frozen=True)
class PreferenceExamples:
  """Preference records -> both sides' pieces and kinds (a `validated.file_source`
  converter, like `validated.ChatExamples`)."""
  template: PromptTemplate
  chat_template: Optional[ChatTemplate] = None
  anchored: bool = True
  signature: ClassVar[dict[str, tf.TensorSpec]] = {
      f"{side}_{name}": tf.TensorSpec([None], tf.string)
      for side in SIDES for name in ("pieces", "kinds")}

  def __call__(self, record: sources.Record, where: str) -> dict:
    return preference_example(record, where, self.template, self.chat_template,
                              anchored=self.anchored)
