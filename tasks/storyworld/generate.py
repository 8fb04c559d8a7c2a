"""Generating the storyworld corpora from a seed.

Three corpora, all deterministic functions of a `StoryworldConfig`:

* pretraining documents (stories, place descriptions, character sketches,
  dialogues) whose attributes are drawn uniformly from every value, each
  paragraph with its true annotation;
* the SFT set: prompts and assistant-style stories whose unconstrained
  attributes come from a narrow distribution (`sft_support` values per
  attribute, probabilities proportional to rank**-sft_skew), each with its
  story-level tags;
* held-out evaluation prompts, some constraining one attribute.
"""
import dataclasses
import math
import random
import re
from typing import Optional

import gin

from annotanchor.data.annotations import format_annotation
from annotanchor.data.prompts import PromptTemplate
from annotanchor.errors import SettingError
from tasks.storyworld import templates
from tasks.storyworld.world import ATTRIBUTES

# The storyworld's prompt template, holding its annotation format: the files are written in
# it, the tasks registered with it (tasks.py) and the vocabulary trained on it (corpus.py).
TEMPLATE = PromptTemplate()

_ARTICLE = re.compile(r"\ba (?=[aeiouAEIOU])")


@gin.configurable
@dataclasses.dataclass(frozen=True)
class StoryworldConfig:
  """Sizes and distributions of the generated world (every field a gin knob).

  Attributes:
    seed: seed of every random draw.
    num_pretrain_docs: pretraining documents in the train split (validation
      gets a tenth as many, drawn after them).
    story_fraction: share of pretraining documents that are stories; the rest
      are place descriptions, character sketches and dialogues.
    num_sft_examples: SFT examples in the train split (validation: a tenth).
    sft_support: number of values per attribute in the SFT distribution.
    sft_skew: the SFT probabilities are proportional to rank**-sft_skew
      (0: uniform over the support).
    sft_constrained_fraction: share of SFT prompts that constrain an attribute.
    num_eval_prompts: held-out evaluation prompts.
    eval_constrained_fraction: share of evaluation prompts with a constraint.
  """
  seed: int = 0
  num_pretrain_docs: int = 4000
  story_fraction: float = 0.7
  num_sft_examples: int = 1000
  sft_support: int = 2
  sft_skew: float = 0.0
  sft_constrained_fraction: float = 0.3
  num_eval_prompts: int = 64
  eval_constrained_fraction: float = 0.5

  def __post_init__(self):
    smallest = min(len(v) for v in ATTRIBUTES.values())
    if not 1 <= self.sft_support <= smallest:
      raise SettingError(f"sft_support={self.sft_support} must be in [1, {smallest}].")


def _fill(template: str, values: dict[str, str]) -> str:
  text = _ARTICLE.sub("an ", template.format(**values))
  return text[0].upper() + text[1:]


def _phrases(rng: random.Random, choice: dict[str, str]) -> dict[str, str]:
  """A surface phrase for each chosen value tag (paraphrases drawn at random)."""
  by_tag = {a: {v.tag: v for v in values} for a, values in ATTRIBUTES.items()}
  return {a: rng.choice(by_tag[a][tag].phrases) for a, tag in choice.items()}


def _tags(attributes, choice: dict[str, str], kind: Optional[str] = None) -> str:
  tags = ([("kind", kind)] if kind else []) + [(a, choice[a]) for a in attributes]
  return format_annotation(tags, TEMPLATE.annotation_format)


def _broad_choice(rng: random.Random) -> dict[str, str]:
  return {a: rng.choice(values).tag for a, values in ATTRIBUTES.items()}


def _story(rng: random.Random, choice: dict[str, str]) -> dict:
  phrases = _phrases(rng, choice)
  opening = ("genre", "tone", "hero", "companion", "location", "goal")
  paragraphs = [(_fill(rng.choice(templates.OPENINGS), phrases), _tags(opening, choice, "story"))]
  middle = [(_fill(rng.choice(templates.OBSTACLES), phrases), _tags(["obstacle"], choice))]
  for event in rng.sample(sorted(templates.INTERLUDES), rng.randint(0, 2)):
    middle.append((rng.choice(templates.INTERLUDES[event]), format_annotation([("event", event)], TEMPLATE.annotation_format)))
  rng.shuffle(middle)
  paragraphs += middle
  paragraphs.append((_fill(rng.choice(templates.ENDINGS), phrases), _tags(["ending"], choice)))
  return _document(paragraphs)


def _sketch(rng: random.Random, choice: dict[str, str], kind: str, parts) -> dict:
  phrases = _phrases(rng, choice)
  paragraphs = []
  for i, options in enumerate(parts):
    template = rng.choice(options)
    attributes = [a for a in ATTRIBUTES if "{" + a + "}" in template]
    paragraphs.append((_fill(template, phrases), _tags(attributes, choice, kind if i == 0 else None)))
  return _document(paragraphs)


def _document(paragraphs) -> dict:
  return {"text": "\n\n".join(p for p, _ in paragraphs), "annotations": [a for _, a in paragraphs]}


def pretraining_documents(config: StoryworldConfig, split: str) -> list[dict]:
  """Documents `{"text", "annotations"}` (one annotation per paragraph)."""
  count = config.num_pretrain_docs if split == "train" else max(1, config.num_pretrain_docs // 10)
  rng = random.Random(f"{config.seed}/pretrain/{split}")
  others = (("place", templates.PLACE), ("character", templates.CHARACTER),
            ("dialogue", templates.DIALOGUE))
  docs = []
  for _ in range(count):
    choice = _broad_choice(rng)
    if rng.random() < config.story_fraction:
      docs.append(_story(rng, choice))
    else:
      kind, parts = rng.choice(others)
      docs.append(_sketch(rng, choice, kind, parts))
  return docs


def sft_distribution(config: StoryworldConfig) -> dict[str, dict[str, float]]:
  """The narrow SFT distribution: attribute -> {value tag: probability}."""
  rng = random.Random(f"{config.seed}/sft_support")
  weights = [(rank + 1) ** -config.sft_skew for rank in range(config.sft_support)]
  total = sum(weights)
  return {a: dict(zip((v.tag for v in rng.sample(values, config.sft_support)),
                      (w / total for w in weights)))
          for a, values in ATTRIBUTES.items()}


def sft_entropy_bits(config: StoryworldConfig) -> float:
  """Shannon entropy (bits) of each unconstrained attribute in the SFT set."""
  probs = next(iter(sft_distribution(config).values())).values()
  return -sum(p * math.log2(p) for p in probs)


def _prompt(rng: random.Random, prompts, constrained_fraction: float,
            choice: dict[str, str]) -> tuple[str, dict[str, str]]:
  """A prompt and its constraint; a constrained attribute may take any value."""
  if rng.random() >= constrained_fraction:
    return rng.choice(prompts[None]), {}
  attribute = rng.choice(sorted(a for a in prompts if a))
  choice[attribute] = rng.choice(ATTRIBUTES[attribute]).tag
  return _fill(rng.choice(prompts[attribute]), _phrases(rng, choice)), {attribute: choice[attribute]}


def assistant_story(phrases: dict[str, str]) -> str:
  """The assistant-style rendering of a story (title, three paragraphs, closing)."""
  parts = (templates.SFT_TITLE, templates.SFT_OPENING, templates.SFT_OBSTACLE,
           templates.SFT_ENDING, templates.SFT_CLOSING)
  return "\n\n".join(_fill(p, phrases) for p in parts)


def sft_examples(config: StoryworldConfig, split: str) -> list[dict]:
  """SFT examples `{"prompt", "response", "annotation", "constraints"}`."""
  count = config.num_sft_examples if split == "train" else max(1, config.num_sft_examples // 10)
  rng = random.Random(f"{config.seed}/sft/{split}")
  distribution = sft_distribution(config)
  examples = []
  for _ in range(count):
    choice = {a: rng.choices(list(d), weights=list(d.values()))[0] for a, d in distribution.items()}
    prompt, constraints = _prompt(rng, templates.SFT_PROMPTS, config.sft_constrained_fraction,
                                  choice)
    examples.append({"prompt": prompt, "response": assistant_story(_phrases(rng, choice)),
                     "annotation": _tags(ATTRIBUTES, choice, "story"), "constraints": constraints})
  return examples


def eval_prompts(config: StoryworldConfig) -> list[dict]:
  """Held-out prompts `{"id", "prompt", "constraints"}` (wordings unseen in SFT)."""
  rng = random.Random(f"{config.seed}/eval")
  prompts = []
  for i in range(config.num_eval_prompts):
    prompt, constraints = _prompt(rng, templates.EVAL_PROMPTS, config.eval_constrained_fraction,
                                  _broad_choice(rng))
    prompts.append({"id": i, "prompt": prompt, "constraints": constraints})
  return prompts
