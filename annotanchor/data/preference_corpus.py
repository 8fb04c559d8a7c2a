"""Preference pairs from JSONL/TFRecord files, registered as the tasks of a DPO stage.

In a gin file (gin/runs/dpo.gin shows the run):

  from annotanchor.data import preference_corpus
  configured_corpora.corpora = [@prefs/preference_corpus.PreferenceCorpus()]
  prefs/preference_corpus.PreferenceCorpus.name = "prefs"
  prefs/preference_corpus.PreferenceCorpus.vocabulary_path = "/path/spm.model"
  prefs/preference_corpus.PreferenceCorpus.pairs = {"train": "/data/pairs-*.jsonl"}

registers

  P_preference            standard DPO: answers without their annotations
  P_preference_anchored   anchored DPO: each answer after its own annotation (weight 0)

Records: `preference_records.py`; sequences: `preference_sequences.py`. The standard task
reads records with or without annotations, the anchored one needs every answer's and
refuses a record without one, naming it, when its dataset is first built (as the SFT
tasks do). The corpus may sit in `configured_corpora` beside a `JsonlCorpus` of the same
vocabulary and template, whose SFT tasks trained the model being tuned.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Mapping, Optional, Sequence

import gin
import seqio

from annotanchor.data import preference_sequences, registration, validated
from annotanchor.data.chat_template import load_chat_template
from annotanchor.data.preference_records import PreferenceExamples
from annotanchor.data.prompts import PromptTemplate
from annotanchor.data.vocabulary import load_vocabulary
from annotanchor.errors import require


@gin.configurable
@dataclasses.dataclass(frozen=True)
class PreferenceCorpus:
  """Preference pair files, registered as `P_preference` and `P_preference_anchored`.

  Attributes:
    name: the task prefix P.
    vocabulary_path: the vocabulary (as `JsonlCorpus.vocabulary_path`): the model's.
    pairs: split -> file pattern(s) of preference records.
    template: the prompt template the answers are laid out in (the SFT corpus's).
    chat_template_path: lay the conversations out in this Hugging Face tokenizer's chat
      template instead (its end-of-turn text closes each answer: no EOS is added).
    on_error: "raise" or "skip" (see `validated.validated_file`).
    cache_dir: where validated copies of the files are kept.
    shuffle_buffer_size: the tasks' example shuffle buffer.
  """
  name: str
  vocabulary_path: str
  pairs: Mapping[str, str | Sequence[str]]
  template: PromptTemplate = PromptTemplate()
  chat_template_path: Optional[str] = None
  on_error: str = "raise"
  cache_dir: Optional[str] = None
  shuffle_buffer_size: int = 10_000

  def __post_init__(self):
    require(isinstance(self.name, str) and bool(self.name), "PreferenceCorpus.name", self.name,
            "a task prefix")
    require(isinstance(self.pairs, Mapping) and bool(self.pairs), "PreferenceCorpus.pairs",
            self.pairs, "a mapping like {'train': '/data/pairs-*.jsonl'}")

  def register(self) -> list[str]:
    """Registers the two preference tasks; returns their names."""
    vocabulary = load_vocabulary(self.vocabulary_path)
    jinja = load_chat_template(self.chat_template_path) if self.chat_template_path else None
    names = []
    for suffix, anchored in (("preference", False), ("preference_anchored", True)):
      source = validated.file_source(
          list(self.pairs), self.pairs.__getitem__,
          PreferenceExamples(self.template, jinja, anchored=anchored), on_error=self.on_error,
          cache_dir=self.cache_dir)
      name = f"{self.name}_{suffix}"
      if name in seqio.TaskRegistry.names():
        seqio.TaskRegistry.remove(name)
      seqio.TaskRegistry.add(
          name, source=source, output_features=preference_sequences.preference_features(vocabulary),
          preprocessors=[seqio.CacheDatasetPlaceholder(), functools.partial(
              preference_sequences.preference_pairs, anchored=anchored,
              append_eos=jinja is None)],
          shuffle_buffer_size=self.shuffle_buffer_size)
      registration.record_task_template(name, self.template)
      names.append(name)
    return names
