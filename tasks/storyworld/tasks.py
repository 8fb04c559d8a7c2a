"""The storyworld corpus as a typed object, and its SeqIO tasks and mixture."""
import dataclasses
import json
import os
from typing import Optional

import gin
import seqio
import tensorflow as tf

from annotanchor.data import preprocessors, registration, validated
from annotanchor.data.feature_converter import LOSS_WEIGHTS
from annotanchor.data.vocabulary import LazySentencePieceVocabulary
from annotanchor.errors import SettingError, is_count, require
from tasks.storyworld import corpus, generate, templates
from tasks.storyworld.generate import TEMPLATE

PREFIX = "storyworld"
# A story's first paragraph annotation opens with this tag (generate._story).
STORY_TAG = "kind:story"


def _is_story(doc) -> tf.Tensor:
  """The pretraining stories (not places, characters, dialogues): what story prompts ask for."""
  return tf.strings.substr(doc["annotations"][0], 0, len(STORY_TAG)) == STORY_TAG


def _eval_targets(dataset: tf.data.Dataset, output_features) -> tf.data.Dataset:
  vocab = output_features["targets"].vocabulary

  def convert(ex):
    targets = tf.cast(vocab.encode_tf(ex["model_prompt"]), tf.int32)
    return {**ex, "targets": targets, LOSS_WEIGHTS: tf.zeros_like(targets, tf.float32)}
  return dataset.map(convert, num_parallel_calls=tf.data.AUTOTUNE)


@gin.configurable
@dataclasses.dataclass(frozen=True)
class Storyworld:
  """The storyworld corpus of a run: registered from gin, generated on first use.

  In a gin file (gin/experiments/storyworld_data.gin), its draw and its mixture's shares
  bound where a reader sees them:

    import tasks.storyworld
    configured_corpora.corpora = [@Storyworld()]
    Storyworld.config = @StoryworldConfig()
    Storyworld.mixture_rates = @AnchoredMixtureRates()
    StoryworldConfig.seed = 0

  Attributes:
    config: the world's draw.
    mixture_rates: the shares of storyworld_anchored_sft_mixture.
    vocab_size: target size of its SentencePiece vocabulary.
    cache_dir: root of the corpus cache (default `validated.default_cache_dir()`).
    dropout_rate, key_only_rate, mask_annotation: how its annotations are weighted
      (annotanchor/data/preprocessors.py): the share of chunk annotations left out of
      pretraining, the share of anchored SFT examples with their keys in the loss, and
      False for the ablation that puts whole annotations in the loss.
  """
  # Given, never defaulted: a default built here would read `StoryworldConfig.*` and
  # `AnchoredMixtureRates.*` bindings that no gin file shows reaching the corpus.
  config: Optional[generate.StoryworldConfig] = None
  mixture_rates: Optional[registration.AnchoredMixtureRates] = None
  vocab_size: int = 1024
  cache_dir: Optional[str] = None
  dropout_rate: float = 0.0
  key_only_rate: float = 0.003
  mask_annotation: bool = True

  def __post_init__(self):
    preprocessors.check_annotation_knobs("Storyworld", self.dropout_rate, self.key_only_rate,
                                         self.mask_annotation)
    require(isinstance(self.config, generate.StoryworldConfig), "Storyworld.config",
            self.config, "a StoryworldConfig (in gin: Storyworld.config = @StoryworldConfig())")
    require(isinstance(self.mixture_rates, registration.AnchoredMixtureRates),
            "Storyworld.mixture_rates", self.mixture_rates,
            "AnchoredMixtureRates (in gin: Storyworld.mixture_rates = @AnchoredMixtureRates())")
    require(is_count(self.vocab_size), "Storyworld.vocab_size", self.vocab_size,
            "a positive int")

  def directory(self) -> str:
    """The corpus's directory, generated (once per settings) when first asked for."""
    return corpus.corpus_dir(self.config, self.vocab_size, self.cache_dir)

  def register(self) -> list[str]:
    """Registers every storyworld task and the anchored SFT mixture (see the package)."""
    vocabulary = LazySentencePieceVocabulary(lambda: os.path.join(self.directory(), "spm.model"))
    fmt = TEMPLATE.annotation_format
    docs = self._source("pretrain", validated.Documents(fmt))
    stories = self._source("pretrain", validated.Documents(fmt), keep=_is_story)
    names = registration.register_document_tasks(
        PREFIX, docs, vocabulary, TEMPLATE, templates.OPEN_PROMPTS, sft_context_source=stories,
        dropout_rate=self.dropout_rate)
    names += registration.register_sft_tasks(
        PREFIX, self._source("sft", validated.SftExamples(fmt)), vocabulary, TEMPLATE,
        key_only_rate=self.key_only_rate, mask_annotation=self.mask_annotation)
    names.append(registration.register_anchored_mixture(PREFIX, self.mixture_rates))
    name = f"{PREFIX}_eval_prompts"
    if name in seqio.TaskRegistry.names():
      seqio.TaskRegistry.remove(name)
    seqio.TaskRegistry.add(
        name, source=seqio.FunctionDataSource(self._eval_dataset, splits=["test"]),
        output_features=registration.output_features(vocabulary),
        preprocessors=[_eval_targets], shuffle_buffer_size=None)
    return names + [name]

  def _source(self, kind: str, convert, keep=None) -> seqio.DataSource:
    """The corpus file `kind`_SPLIT.jsonl ("pretrain" or "sft"), generated when first read."""
    return validated.file_source(
        corpus.SPLITS, lambda split: os.path.join(self.directory(), f"{kind}_{split}.jsonl"),
        convert, keep=keep, cache_dir=self.cache_dir)

  def _eval_dataset(self, split: str, shuffle_files: bool, seed=None) -> tf.data.Dataset:
    del split, shuffle_files, seed
    prompts = corpus.read_eval_prompts(self.directory())
    return tf.data.Dataset.from_tensor_slices({
        "id": [p["id"] for p in prompts],
        "prompt": [p["prompt"] for p in prompts],
        "model_prompt": [TEMPLATE.build(p["prompt"]) for p in prompts],
        "constraints": [json.dumps(p["constraints"], sort_keys=True) for p in prompts]})


def configured() -> Storyworld:
  """The Storyworld bound in gin's `configured_corpora.corpora` (what the run registers):
  the corpus that `build` generates and the probes are drawn for.

  Raises:
    SettingError: none or several are bound.
  """
  worlds = [c for c in registration.configured_corpora() if isinstance(c, Storyworld)]
  if len(worlds) != 1:
    raise SettingError(f"configured_corpora.corpora holds {len(worlds)} Storyworld corpora; "
                       "expected one (give gin/experiments/storyworld_data.gin, or bind "
                       "configured_corpora.corpora = [@Storyworld()])")
  return worlds[0]
