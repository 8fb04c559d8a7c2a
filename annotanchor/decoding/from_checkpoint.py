"""Everything sampling needs, from a checkpoint path: network, parameters, vocabulary, template.

A checkpoint written by `train` describes itself (annotanchor/training/metadata.py), so
`infer` and `serve` need only CHECKPOINT_PATH; what the user does set is checked against
it. A checkpoint without metadata needs the settings given, as before. CHECKPOINT_PATH is
resolved to one step directory once, and both the metadata and the weights are read from it.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import seqio

from annotanchor.data.prompts import PromptTemplate
from annotanchor.decoding.model_sampler import DecoderSampler, restore_sampler
from annotanchor.training import checkpoints, metadata as metadata_lib
from annotanchor.training.given_model import GivenModel


@dataclasses.dataclass(frozen=True)
class SamplingSetup:
  sampler: DecoderSampler
  params: Any
  vocabulary: seqio.Vocabulary
  template: PromptTemplate


def restore_for_sampling(checkpoint_path: str, *, model: GivenModel,
                         vocabulary: seqio.Vocabulary | None, template: PromptTemplate | None,
                         mesh: Mapping[str, int] | None = None,
                         setting: str = "CHECKPOINT_PATH") -> SamplingSetup:
  """The sampler and parameters of a checkpoint, with its vocabulary and template.

  Args:
    checkpoint_path: a MODEL_DIR, its checkpoints/ directory or a step directory.
    model: what the user gave about the network: a model gin file's, MODEL_OVERRIDES (a
      checkpoint without metadata needs the former); each field must agree with the
      checkpoint but those that only change how it runs (see `metadata.resolve_model`).
    vocabulary: the vocabulary the user gave (a task's, or VOCABULARY_PATH), or None for
      the checkpoint's; a given SentencePiece vocabulary must be the checkpoint's.
    template: the prompt template the user gave, which must be the checkpoint's, or None
      for the checkpoint's.
    mesh: degrees per mesh axis; default every device on `data`.
    setting: names checkpoint_path in errors.

  Raises:
    metadata.CheckpointSettingsError: a setting that contradicts the checkpoint, or one
      that a checkpoint without metadata needs and did not get.
  """
  # Resolved once: metadata and weights come from this step directory, even if a run still
  # training saves a newer step meanwhile.
  step_dir = checkpoints.resolve_step_dir(checkpoint_path, setting)
  metadata, model_dir = metadata_lib.read_metadata(step_dir, setting)
  where = f"{setting}={checkpoint_path!r}"
  config = metadata_lib.resolve_model(metadata, model, where)
  template = metadata_lib.check_template(metadata, template, where)
  if metadata is not None:
    saved_digest = metadata.vocabulary.get("sha256")
    if vocabulary is not None and saved_digest is not None:
      digest = metadata_lib.vocabulary_digest(vocabulary)
      if digest != saved_digest:
        raise metadata_lib.CheckpointSettingsError(
            f"the vocabulary given ({metadata_lib.vocabulary_source(vocabulary)})"
            f" is not the one the checkpoint was trained with ({where}, "
            f"{metadata.vocabulary['source']}); leave it out to use the checkpoint's")
    vocabulary = vocabulary or metadata_lib.vocabulary_from(metadata.vocabulary, model_dir)
  if vocabulary is None:
    raise metadata_lib.CheckpointSettingsError(
        f"{where} records no vocabulary it can be rebuilt from: set VOCABULARY_PATH")
  if vocabulary.vocab_size > config.vocab_size:  # Its last ids would read no embedding row.
    raise metadata_lib.CheckpointSettingsError(
        f"the vocabulary ({vocabulary}) has {vocabulary.vocab_size} ids, more than the "
        f"model's embedding of vocab_size={config.vocab_size} ({where})")
  sampler, params = restore_sampler(config, step_dir, mesh)
  return SamplingSetup(sampler, params, vocabulary, template)
