"""The storyworld capability probes: facts of the world as multiple-choice questions.

The pretraining corpus states the same facts over and over: every attribute value's
phrases ("a dragon no bigger than a cat", "Grey clouds hung low over every roof.") and the
fixed sentences between story parts. A probe gives such a fact without its last word and
asks which word ends it; the wrong choices are last words of other facts that never follow
that context anywhere in the world's text. It measures what fine-tuning keeps of what
pretraining taught (the capability column of the paper's table), not story-telling:

  {"id": "companion-tiny_dragon-1", "context": "a dragon no bigger than a",
   "choices": ["gears", "cat", "sword", "seaman"], "gold": 1}

Probes depend on the world's phrases and the seed of its draw (which draws the wrong
choices and their order) only, so every arm of a run is asked the same questions.
`annotanchor capability` takes them as TASK_FILES={'storyworld_facts':
'tasks.storyworld.probes:probe_records'}.
"""
import random
import re

from tasks.storyworld import generate, templates
from tasks.storyworld.tasks import configured
from tasks.storyworld.world import ATTRIBUTES

NUM_CHOICES = 4
# A fact needs this many words of context before its last word, so the context pins it.
MIN_CONTEXT_WORDS = 2


def _facts() -> list[tuple[str, str]]:
  """(id prefix, text) of every fixed phrase or sentence of the world."""
  facts = []
  for attribute, values in ATTRIBUTES.items():
    for value in values:
      for j, phrase in enumerate(value.phrases):
        facts.append((f"{attribute}-{value.tag}-{j}", phrase))
  for event, sentences in templates.INTERLUDES.items():
    for j, sentence in enumerate(sentences):
      facts.append((f"event-{event}-{j}", sentence))
  return facts


def _split(text: str) -> tuple[str, str]:
  """(the text before its last word, the last word without trailing punctuation)."""
  context, _, last = text.rstrip().rpartition(" ")
  return context, re.sub(r"[.,!?]+$", "", last)


def _world_texts() -> list[str]:
  """Every phrase and template sentence, lowercased: where a distractor must not follow."""
  texts = [t.lower() for _, t in _facts()]
  for group in (templates.OPENINGS, templates.OBSTACLES, templates.ENDINGS):
    texts += [t.lower() for t in group]
  for parts in (templates.PLACE, templates.CHARACTER, templates.DIALOGUE):
    texts += [t.lower() for options in parts for t in options]
  return texts


def _attested(context: str, word: str, texts: list[str]) -> bool:
  needle = re.compile(r"(^|\W)" + re.escape(f"{context} {word}".lower()) + r"($|\W)")
  return any(needle.search(t) for t in texts)


def probe_records(config: generate.StoryworldConfig | None = None) -> list[dict]:
  """The probes, `{"id", "context", "choices", "gold"}`, in a fixed order.

  Args:
    config: the world's draw; default the configured Storyworld's (`tasks.configured`),
      as `annotanchor capability` calls it.
  """
  config = config or configured().config
  rng = random.Random(f"{config.seed}/probes")
  texts = _world_texts()
  split = [(fid, *_split(text)) for fid, text in _facts()]
  split = [(fid, c, w) for fid, c, w in split if len(c.split()) >= MIN_CONTEXT_WORDS]
  endings = sorted({w for _, _, w in split})
  records = []
  for fid, context, gold in split:
    # Another fact with this context and another last word: the question has two answers.
    if any(c.lower() == context.lower() and w != gold for _, c, w in split):
      continue
    wrong = [w for w in endings if w != gold and not _attested(context, w, texts)]
    choices = rng.sample(wrong, NUM_CHOICES - 1) + [gold]
    rng.shuffle(choices)
    records.append({"id": fid, "context": context, "choices": choices,
                    "gold": choices.index(gold)})
  return records
