"""Chat conversations (OpenAI/Tulu `messages`) in our prompt template, as text pieces.

One rule renders a conversation for training (chat SFT sources) and for serving
(`/v1/chat/completions`), so a served model reads the layout it was fine-tuned on. The
SFT template has no system turn: system (and developer) text opens the first user turn.

A conversation [system S, user U1, assistant A1 (annotation X1), user U2, assistant A2
(annotation X2)] renders as these pieces, each with a kind that decides its loss weight
(`preprocessors.chat_sft`):

  piece                          kind
  "<user> S\\n\\nU1\\n<assistant>"  context
  "<ann>" " k:" "v" " </ann>"    annotation (delimiters and keys) / annotation_value
  " A1"                          response        (an earlier assistant turn)
  "\\n<user>"                     response        (the turn's end: handing back)
  " U2\\n<assistant>"             context
  <X2's pieces>                  annotation / annotation_value
  " A2"                          last_response   (EOS follows, with its weight)

A one-turn conversation gives exactly the pieces of a prompt/response SFT pair.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

from annotanchor.data import annotations
from annotanchor.data.prompts import PromptTemplate

ROLES = ("system", "developer", "user", "assistant")
KINDS = ("context", "annotation", "annotation_value", "response", "last_response")


class ConversationError(ValueError):
  """A `messages` list that is not a conversation; `param` names the offending field."""

  def __init__(self, message: str, param: str = "messages"):
    super().__init__(message)
    self.param = param


def message_text(message: Any, index: int) -> str:
  """The text of `messages[index]`: a string, or a list of `{"type": "text"}` parts."""
  content = message.get("content") if isinstance(message, dict) else None
  if isinstance(content, list) and all(
      isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
      for p in content):
    return "".join(p["text"] for p in content)
  if isinstance(content, str):
    return content
  raise ConversationError(f"messages[{index}].content must be a string or a list of text "
                          "parts", f"messages[{index}].content")


def conversation_turns(messages: Any) -> list[tuple[str, str, int]]:
  """(role, text, index in messages) of the user and assistant turns, system text merged
  into the first user turn.

  Raises:
    ConversationError: not a non-empty list, an unknown role, or no user/assistant turn.
  """
  if not isinstance(messages, list) or not messages:
    raise ConversationError("'messages' must be a non-empty list")
  system, turns = [], []
  for i, message in enumerate(messages):
    role = message.get("role") if isinstance(message, dict) else None
    if role not in ROLES:
      raise ConversationError(f"messages[{i}].role must be system, user or assistant, got "
                              f"{role!r}", f"messages[{i}].role")
    text = message_text(message, i).strip()
    if role in ("system", "developer"):
      system.append(text)
    else:
      turns.append((role, text, i))
  if not turns:
    raise ConversationError("'messages' holds no user or assistant turn")
  first_user = next((j for j, (role, _, _) in enumerate(turns) if role == "user"), None)
  if first_user is not None and system:
    role, text, i = turns[first_user]
    turns[first_user] = (role, "\n\n".join(system + [text]), i)
  return turns


def render_prompt(turns: Sequence[tuple[str, str, int]], template: PromptTemplate) -> str:
  """The model prompt of a conversation that ends with the user's turn (serving)."""
  lines = [f"{template.prompt_prefix if role == 'user' else template.assistant_marker + ' '}"
           f"{text}" for role, text, _ in turns]
  return "\n".join(lines) + template.prompt_suffix


def training_pieces(turns: Sequence[tuple[str, str, int]], template: PromptTemplate,
                    annotation_bodies: Optional[Sequence[str]] = None
                    ) -> tuple[list[str], list[str]]:
  """(pieces, kinds) of a conversation that starts with the user and alternates, ending
  with the assistant (see the module docstring).

  Args:
    turns: from `conversation_turns`.
    template: the prompt template.
    annotation_bodies: per turn, the annotation body (`"k:v k:v"`) placed before an
      assistant turn's content ("" or None for none); None for no annotations at all.

  Raises:
    ConversationError: the turns do not alternate user, assistant, ..., assistant.
  """
  for j, (role, _, i) in enumerate(turns):
    if role != ("user" if j % 2 == 0 else "assistant"):
      raise ConversationError(f"messages[{i}] is a {role} turn; an SFT conversation "
                              "alternates user and assistant, from a user turn", f"messages[{i}]")
  if turns[-1][0] != "assistant":
    raise ConversationError("the last message of an SFT conversation must be the assistant's")
  pieces, kinds = [], []
  for j, (role, text, _) in enumerate(turns):
    if role == "user":
      # After an assistant turn the newline and user marker are that turn's end.
      pieces.append(f"{template.user_marker} {text}{template.prompt_suffix}" if j == 0
                    else f" {text}{template.prompt_suffix}")
      kinds.append("context")
      continue
    body = annotation_bodies[j] if annotation_bodies else ""
    if body:
      tags = annotations.parse_body(body)
      for piece, is_value in annotations.annotation_pieces(tags, template.annotation_format):
        pieces.append(piece)
        kinds.append("annotation_value" if is_value else "annotation")
    last = j == len(turns) - 1
    pieces.append(f"{template.response_prefix}{text}")
    kinds.append("last_response" if last else "response")
    if not last:
      pieces.append(f"\n{template.user_marker}")
      kinds.append("response")
  return pieces, kinds
