"""Prompt files: JSONL records `{"prompt": ..., "id": ...}`, one per line, `id` optional.

The one reader of the prompts a user brings: `annotanchor infer`'s PROMPTS_FILE and a
user corpus's held-out evaluation prompts (JsonlCorpus.eval_prompts). Files are named by
paths or globs, local or any tf.io.gfile path (GCS on pods). A record without an id gets
"p<n>", n counting the prompts of all the files in order, so ids stay distinct across
files:

  a.jsonl  {"prompt": "Tell me a story."}           -> ("p1", "Tell me a story.")
           (blank line: skipped)
           {"prompt": "A poem.", "id": "poem"}       -> ("poem", "A poem.")
  b.jsonl  {"prompt": "A riddle."}                  -> ("p3", "A riddle.")
"""
from __future__ import annotations

import json
from typing import Sequence

import tensorflow as tf

from annotanchor.data import validated
from annotanchor.errors import UserError


class PromptsError(UserError, ValueError):
  """Prompts that cannot be sampled: a bad record in a prompt file, an id that occurs
  twice, or no prompt at all (in files or in a task's examples)."""


def read_prompts(patterns: str | Sequence[str], *, allow_empty: bool = True
                 ) -> list[tuple[str, str]]:
  """(id, prompt) of every record of the files `patterns` match, in order.

  Args:
    patterns: a path or glob, or several.
    allow_empty: whether a prompt may be "" or blank (sampling with no prompt at all);
      held-out evaluation prompts may not.

  Raises:
    PromptsError: naming the file and line of a bad record, or a duplicate id, or
      saying the files hold no prompt.
    SourceError: no file matches.
  """
  patterns = [patterns] if isinstance(patterns, str) else list(patterns)
  prompts: list[tuple[str, str]] = []
  for path in validated.expand_patterns(patterns):
    with tf.io.gfile.GFile(path, "rb") as f:
      for lineno, line in enumerate(f, 1):
        if not line.strip():
          continue
        prompts.append(_parse(line, f"{path}:{lineno}", len(prompts) + 1, allow_empty))
  return checked(prompts, f"prompt files {patterns}")


def checked(prompts: list[tuple[str, str]], where: str) -> list[tuple[str, str]]:
  """`prompts`, once every id is known to occur once and there is at least one prompt.

  Raises:
    PromptsError: naming `where` and the first id that occurs twice, or saying that
      `where` holds no prompts.
  """
  seen = set()
  for pid, _ in prompts:
    if pid in seen:
      raise PromptsError(f"{where}: prompt id {pid!r} occurs twice")
    seen.add(pid)
  if not prompts:
    raise PromptsError(f"{where}: holds no prompts")
  return prompts


def _parse(line: bytes, where: str, number: int, allow_empty: bool) -> tuple[str, str]:
  try:
    record = json.loads(line.decode("utf-8"))
  except (UnicodeDecodeError, json.JSONDecodeError) as e:
    raise PromptsError(f"{where}: not a JSON record ({e})") from None
  prompt = record.get("prompt") if isinstance(record, dict) else None
  if not isinstance(prompt, str) or not (allow_empty or prompt.strip()):
    kind = "a string" if allow_empty else "a non-empty string"
    raise PromptsError(f'{where}: expected an object with {kind} field "prompt" (and '
                           'optionally "id")')
  return str(record.get("id", f"p{number}")), prompt
