"""Hugging Face chat templates (the tokenizer's Jinja `chat_template`) as training pieces.

A tokenizer directory's `tokenizer_config.json` carries the template the model was
instruction-tuned with. To lay out an SFT conversation in it with loss on the assistant
turns, the template is rendered incrementally: for assistant turn j,

  context  = render(messages[:j], add_generation_prompt=True) minus render(messages[:j-1])
  response = render(messages[:j+1]) minus the context, i.e. the turn's content and its
             end-of-turn text (e.g. "<|im_end|>\\n")

so the pieces concatenate to exactly render(messages). With a ChatML template and the
conversation [user "Hi", assistant "Yo" (annotation k:v)]:

  "<|im_start|>user\\nHi<|im_end|>\\n<|im_start|>assistant\\n"   context
  "<ann>" " k:" "v" " </ann>"                                   annotation / annotation_value
  " Yo<|im_end|>\\n"                                              last_response

The annotation goes where the model starts to write (after the generation prompt), followed
by a space as in our own template. A template that does not render a conversation as a
prefix of its continuation (one that rewrites earlier turns) is refused: its loss spans
could not be found exactly. The template's end-of-turn closes each turn, so these
sequences take no EOS of ours (`chat_sft.chat_sft(append_eos=False)`).
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Optional, Sequence

import jinja2
import jinja2.sandbox
import tensorflow as tf

from annotanchor.data import annotations
from annotanchor.data.conversations import ConversationError
from annotanchor.errors import SettingError


def _raise(message: str):
  raise ConversationError(f"the chat template refused the conversation: {message}")


@dataclasses.dataclass(frozen=True)
class ChatTemplate:
  """A Jinja chat template and the special tokens it refers to.

  Attributes:
    source: the Jinja text.
    bos_token, eos_token: the values of the template's `bos_token` / `eos_token`.
  """
  source: str
  bos_token: str = ""
  eos_token: str = ""

  def render(self, messages: Sequence[dict[str, Any]], add_generation_prompt: bool) -> str:
    # As transformers renders: sandboxed, trim_blocks and lstrip_blocks, raise_exception.
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = _raise
    return env.from_string(self.source).render(
        messages=list(messages), add_generation_prompt=add_generation_prompt,
        bos_token=self.bos_token, eos_token=self.eos_token)


def token_text(value: Any) -> str:
  """A tokenizer_config special token: a string or an AddedToken-shaped {"content": ...}."""
  return value.get("content", "") if isinstance(value, dict) else (value or "")


def load_chat_template(path: str, name: str = "default") -> ChatTemplate:
  """The chat template of a tokenizer directory (its tokenizer_config.json) or file.

  Raises:
    SettingError: no such file, or no chat template in it.
  """
  config_path = os.path.join(path, "tokenizer_config.json") if tf.io.gfile.isdir(path) else path
  if not tf.io.gfile.exists(config_path):
    raise SettingError(f"chat template {config_path!r}: no such file")
  with tf.io.gfile.GFile(config_path) as f:
    config = json.load(f)
  template = config.get("chat_template")
  if isinstance(template, list):  # [{"name": "default", "template": ...}, ...]
    template = {t.get("name"): t.get("template") for t in template}.get(name)
  if not isinstance(template, str) or not template:
    raise SettingError(f"{config_path} holds no chat_template (named {name!r})")
  return ChatTemplate(template, token_text(config.get("bos_token")),
                      token_text(config.get("eos_token")))


def _after(text: str, prefix: str, what: str) -> str:
  if not text.startswith(prefix):
    raise ConversationError(f"the chat template does not render {what} as a continuation of "
                            "the turns before it, so its loss spans cannot be found")
  return text[len(prefix):]


def training_pieces(messages: Sequence[dict[str, Any]], template: ChatTemplate,
                    fmt: annotations.AnnotationFormat,
                    annotation_bodies: Optional[Sequence[str]] = None
                    ) -> tuple[list[str], list[str]]:
  """(pieces, kinds) of a conversation ending with the assistant (module docstring).

  Args:
    messages: `{"role", "content"}` dicts (any other keys are not shown to the template).
    template: the chat template.
    fmt: the annotation delimiters.
    annotation_bodies: per message, the annotation body placed before an assistant turn's
      content ("" for none); None for no annotations.

  Raises:
    ConversationError: the last message is not the assistant's, or the template does not
      render incrementally.
  """
  shown = [{"role": m["role"], "content": m["content"]} for m in messages]
  if not shown or shown[-1]["role"] != "assistant":
    raise ConversationError("the last message of an SFT conversation must be the assistant's")
  pieces, kinds, rendered = [], [], ""
  last = len(shown) - 1
  for j, message in enumerate(shown):
    if message["role"] != "assistant":
      continue
    prompt = template.render(shown[:j], add_generation_prompt=True)
    pieces.append(_after(prompt, rendered, f"messages[{j}]'s prompt"))
    kinds.append("context")
    full = template.render(shown[:j + 1], add_generation_prompt=False)
    response = _after(full, prompt, f"messages[{j}]")
    body = annotation_bodies[j] if annotation_bodies else ""
    if body:
      for piece, is_value in annotations.annotation_pieces(annotations.parse_body(body), fmt):
        pieces.append(piece)
        kinds.append("annotation_value" if is_value else "annotation")
      # The space after the annotation belongs to it: without one the text is the template's.
      pieces.append(" ")
      kinds.append("annotation")
    pieces.append(response)
    kinds.append("last_response" if j == last else "response")
    rendered = full
  return pieces, kinds
