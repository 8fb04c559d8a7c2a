"""SeqIO registration of the storyworld tasks and mixture."""
import json
import os

import seqio
import tensorflow as tf

from annotanchor.data import registration, validated
from annotanchor.data.feature_converter import LOSS_WEIGHTS
from annotanchor.data.vocabulary import LazySentencePieceVocabulary
from tasks.storyworld import corpus, templates
from tasks.storyworld.generate import TEMPLATE

PREFIX = "storyworld"
# A story's first paragraph annotation opens with this tag (generate._story).
STORY_TAG = "kind:story"


def vocabulary() -> seqio.SentencePieceVocabulary:
  """The storyworld vocabulary (trained with the corpus on first use)."""
  return _VOCABULARY


def _vocab_path() -> str:
  return os.path.join(corpus.corpus_dir(), "spm.model")


_VOCABULARY = LazySentencePieceVocabulary(_vocab_path)


def _source(kind: str, convert, keep=None) -> seqio.DataSource:
  """The corpus file `kind`_SPLIT.jsonl ("pretrain" or "sft"), generated when first read."""
  return validated.file_source(
      corpus.SPLITS, lambda split: os.path.join(corpus.corpus_dir(), f"{kind}_{split}.jsonl"),
      convert, keep=keep, cache_dir=corpus.cache_dir)


def _is_story(doc) -> tf.Tensor:
  """The pretraining stories (not places, characters, dialogues): what story prompts ask for."""
  return tf.strings.substr(doc["annotations"][0], 0, len(STORY_TAG)) == STORY_TAG


def _eval_dataset(split: str, shuffle_files: bool, seed=None) -> tf.data.Dataset:
  del split, shuffle_files, seed
  prompts = corpus.read_eval_prompts()
  return tf.data.Dataset.from_tensor_slices({
      "id": [p["id"] for p in prompts],
      "prompt": [p["prompt"] for p in prompts],
      "model_prompt": [TEMPLATE.build(p["prompt"]) for p in prompts],
      "constraints": [json.dumps(p["constraints"], sort_keys=True) for p in prompts]})


def _eval_targets(dataset: tf.data.Dataset, output_features) -> tf.data.Dataset:
  vocab = output_features["targets"].vocabulary

  def convert(ex):
    targets = tf.cast(vocab.encode_tf(ex["model_prompt"]), tf.int32)
    return {**ex, "targets": targets, LOSS_WEIGHTS: tf.zeros_like(targets, tf.float32)}
  return dataset.map(convert, num_parallel_calls=tf.data.AUTOTUNE)


def register() -> None:
  """Registers every storyworld task and the anchored SFT mixture."""
  fmt = TEMPLATE.annotation_format
  docs = _source("pretrain", validated.Documents(fmt))
  sft = _source("sft", validated.SftExamples(fmt))
  stories = _source("pretrain", validated.Documents(fmt), keep=_is_story)
  registration.register_document_tasks(PREFIX, docs, _VOCABULARY, TEMPLATE,
                                       templates.OPEN_PROMPTS, sft_context_source=stories)
  registration.register_sft_tasks(PREFIX, sft, _VOCABULARY, TEMPLATE)
  registration.register_anchored_mixture(PREFIX)
  name = f"{PREFIX}_eval_prompts"
  if name in seqio.TaskRegistry.names():
    seqio.TaskRegistry.remove(name)
  seqio.TaskRegistry.add(
      name, source=seqio.FunctionDataSource(_eval_dataset, splits=["test"]),
      output_features=registration.output_features(_VOCABULARY),
      preprocessors=[_eval_targets], shuffle_buffer_size=None)
