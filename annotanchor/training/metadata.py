"""What a checkpoint says about itself: the network, the vocabulary and the prompt template.

`train` writes a `RunMetadata` into the `meta` item of every checkpoint it saves, and
copies a SentencePiece vocabulary's file into MODEL_DIR/vocabulary/<sha256>.model (a
Hugging Face tokenizer's files into MODEL_DIR/vocabulary/<sha256>/), so `infer` and
`serve` need only CHECKPOINT_PATH. A setting given with it (a model gin file, a
MODEL_OVERRIDES field: training/given_model.py) that contradicts the checkpoint is refused
with a message naming it, except for the settings that only change how the same weights
are run (`OVERRIDABLE`), which are applied and logged.
Checkpoints written before this metadata existed still load when the settings are given.

The `meta` item of a checkpoint, e.g.:

  {"step": 300, "metadata_version": 1,
   "model": {"vocab_size": 1024, "d_model": 128, ...},
   "vocabulary": {"kind": "sentencepiece", "file": "vocabulary/3f2a....model",
                  "source": "/cache/storyworld/afe8/spm.model", "sha256": "3f2a..."},
   "template": {"user_marker": "<user>", "assistant_marker": "<assistant>",
                "annotation_format": {"open": "<ann>", "close": "</ann>"}}}

A Hugging Face vocabulary is described by its files and settings (the sha256 covers both):

   "vocabulary": {"kind": "huggingface", "dir": "vocabulary/9c1e...",
                  "files": ["tokenizer.json", "tokenizer_config.json"],
                  "source": "/models/olmo2", "sha256": "9c1e...", "size": 100282,
                  "settings": {"markers": "special", "marker_strings": ["<ann>", ...],
                               "pad_token": "<|pad|>", "bos_token": ..., "eos_token": ...}}
"""
from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
from typing import Any, Mapping

import orbax.checkpoint as ocp
import seqio
import tensorflow as tf

from annotanchor.atomic_files import copy_atomic
from annotanchor.data.annotations import AnnotationFormat
from annotanchor.data.hf_vocabulary import HuggingFaceVocabulary
from annotanchor.data.prompts import PromptTemplate
from annotanchor.data.vocabulary import load_vocabulary
from annotanchor.errors import SettingError, UserError
from annotanchor.model.config import TransformerConfig
from annotanchor.training import checkpoints
from annotanchor.training.given_model import GivenModel

METADATA_VERSION = 1
# TransformerConfig fields that change how the same weights run, not what they compute.
OVERRIDABLE = frozenset({"max_len", "dtype", "remat_policy", "attention", "init_std"})


class CheckpointSettingsError(UserError, ValueError):
  """A setting that contradicts what the checkpoint was trained with, or one it lacks."""


@dataclasses.dataclass(frozen=True)
class RunMetadata:
  """The settings a checkpoint was trained with.

  Attributes:
    model: the network's shape.
    vocabulary: a description of the vocabulary (see `describe_vocabulary`).
    template: the prompt template (it holds the annotation format).
  """
  model: TransformerConfig
  vocabulary: Mapping[str, Any]
  template: PromptTemplate

  def to_json(self) -> dict[str, Any]:
    return {"metadata_version": METADATA_VERSION, "model": dataclasses.asdict(self.model),
            "vocabulary": dict(self.vocabulary), "template": dataclasses.asdict(self.template)}

  @classmethod
  def from_json(cls, meta: Mapping[str, Any]) -> RunMetadata | None:
    """The metadata in a checkpoint's `meta` item; None for a checkpoint without any."""
    if "metadata_version" not in meta:
      return None
    template = dict(meta["template"])
    template["annotation_format"] = AnnotationFormat(**template["annotation_format"])
    return cls(model=TransformerConfig(**meta["model"]), vocabulary=meta["vocabulary"],
               template=PromptTemplate(**template))


def read_metadata(checkpoint_path: str,
                  setting: str = "CHECKPOINT_PATH") -> tuple[RunMetadata | None, str]:
  """(the metadata of the checkpoint at a path, its MODEL_DIR).

  Args:
    checkpoint_path: a step directory (`checkpoints.resolve_step_dir`: a caller that also
      reads the weights resolves the path once and passes the step directory to both), or
      a MODEL_DIR or its checkpoints/ directory (their latest step).
    setting: names the path in errors.
  """
  step_dir = checkpoints.resolve_step_dir(checkpoint_path, setting)
  model_dir = os.path.dirname(os.path.dirname(step_dir))
  meta_dir = os.path.join(step_dir, "meta")
  if not tf.io.gfile.isdir(meta_dir):  # A bare parameters checkpoint (tests, conversions).
    return None, model_dir
  with ocp.Checkpointer(ocp.JsonCheckpointHandler()) as checkpointer:
    meta = checkpointer.restore(meta_dir)
  return RunMetadata.from_json(meta), model_dir


def _sha256(path: str) -> str:
  with tf.io.gfile.GFile(path, "rb") as f:
    return hashlib.sha256(f.read()).hexdigest()


def _copy_once(source: str, target: str) -> None:
  """Copies a file unless the target exists (atomically: a reader never sees half of it)."""
  if not tf.io.gfile.exists(target):
    copy_atomic(source, target)


def describe_vocabulary(vocabulary: seqio.Vocabulary, model_dir: str, *,
                        copy: bool = True) -> dict[str, Any]:
  """A JSON description of `vocabulary`; its file(s) are copied into model_dir.

  The copy is named by its content hash and written once, atomically;
  `copy=False` describes it without writing (every process but one of a multi-host run).
  A Hugging Face tokenizer's files land in one directory, tokenizer.json last, so a
  directory holding tokenizer.json holds the others too.
  """
  if isinstance(vocabulary, seqio.SentencePieceVocabulary):
    source = vocabulary.sentencepiece_model_file
    digest = _sha256(source)
    relative = os.path.join("vocabulary", f"{digest}.model")
    if copy:
      _copy_once(source, os.path.join(model_dir, relative))
    return {"kind": "sentencepiece", "file": relative, "source": source, "sha256": digest}
  if isinstance(vocabulary, HuggingFaceVocabulary):
    relative = os.path.join("vocabulary", vocabulary.sha256)
    if copy:
      for path, name in list(zip(vocabulary.files(), vocabulary.file_names()))[::-1]:
        _copy_once(path, os.path.join(model_dir, relative, name))
    return {"kind": "huggingface", "dir": relative, "files": vocabulary.file_names(),
            "source": vocabulary.path, "sha256": vocabulary.sha256,
            "size": vocabulary.vocab_size, "settings": vocabulary.settings()}
  if isinstance(vocabulary, seqio.ByteVocabulary):
    return {"kind": "byte", "extra_ids": vocabulary.extra_ids}
  if isinstance(vocabulary, seqio.PassThroughVocabulary):
    return {"kind": "pass_through", "size": vocabulary.vocab_size, "eos_id": vocabulary.eos_id}
  return {"kind": "other", "class": type(vocabulary).__name__}


def vocabulary_from(description: Mapping[str, Any], model_dir: str) -> seqio.Vocabulary | None:
  """The vocabulary a checkpoint describes (None when it cannot be rebuilt from it).

  Raises:
    CheckpointSettingsError: the copied SentencePiece file is missing or altered.
  """
  kind = description["kind"]
  if kind == "byte":
    return seqio.ByteVocabulary(extra_ids=description["extra_ids"])
  if kind == "pass_through":
    return seqio.PassThroughVocabulary(description["size"], eos_id=description["eos_id"])
  if kind == "huggingface":
    return _huggingface_from(description, model_dir)
  if kind != "sentencepiece":
    return None
  for path in (os.path.join(model_dir, description["file"]), description["source"]):
    if tf.io.gfile.exists(path) and _sha256(path) == description["sha256"]:
      return load_vocabulary(path)
  raise CheckpointSettingsError(
      f"the vocabulary of the checkpoint in {model_dir} (sha256 {description['sha256'][:12]}) "
      f"is neither at {os.path.join(model_dir, description['file'])} nor unchanged at "
      f"{description['source']}; set VOCABULARY_PATH to a copy of it")


def _huggingface_from(description: Mapping[str, Any], model_dir: str) -> HuggingFaceVocabulary:
  """The copied tokenizer (or, failing that, the unchanged source) with the recorded settings."""
  copied = os.path.join(model_dir, description["dir"])
  for path in (copied, description["source"]):
    if tf.io.gfile.exists(os.path.join(path, "tokenizer.json")) or (
        path.endswith(".json") and tf.io.gfile.exists(path)):
      vocabulary = HuggingFaceVocabulary(path, **description["settings"])
      if vocabulary.sha256 == description["sha256"]:
        return vocabulary
  raise CheckpointSettingsError(
      f"the Hugging Face tokenizer of the checkpoint in {model_dir} (sha256 "
      f"{description['sha256'][:12]}) is neither at {copied} nor unchanged at "
      f"{description['source']}; set VOCABULARY_PATH to a copy of it")


def vocabulary_digest(vocabulary: seqio.Vocabulary) -> str | None:
  """The content hash a SentencePiece or Hugging Face vocabulary is recorded under (None
  for others)."""
  if isinstance(vocabulary, seqio.SentencePieceVocabulary):
    return _sha256(vocabulary.sentencepiece_model_file)
  if isinstance(vocabulary, HuggingFaceVocabulary):
    return vocabulary.sha256
  return None


def vocabulary_source(vocabulary: seqio.Vocabulary) -> str:
  """Where a vocabulary was read from, for messages."""
  if isinstance(vocabulary, seqio.SentencePieceVocabulary):
    return vocabulary.sentencepiece_model_file
  return vocabulary.path if isinstance(vocabulary, HuggingFaceVocabulary) else str(vocabulary)


def resolve_model(metadata: RunMetadata | None, given: GivenModel,
                  where: str) -> TransformerConfig:
  """The network to run: the checkpoint's, with what the user gave checked against it.

  Args:
    metadata: the checkpoint's, or None for a checkpoint without metadata.
    given: the command's `model` argument: a model gin file's whole network and the
      MODEL_OVERRIDES fields (annotanchor/training/given_model.py).
    where: the checkpoint, for messages.

  Raises:
    CheckpointSettingsError: a given field that contradicts the checkpoint and is not in
      OVERRIDABLE, or a checkpoint without metadata and no model gin file.
    SettingError: an override the network cannot take (TransformerConfig's own check).
  """
  if metadata is None:
    if given.config is None:
      raise CheckpointSettingsError(
          f"{where} records no model settings (trained before checkpoints described "
          f"themselves): give its model gin file, e.g. --gin_file=gin/models/demo.gin")
    return _overridden(given.config, dict(given.overrides))
  overrides = {}
  for name, (setting, value) in sorted(given.requested().items()):
    saved = getattr(metadata.model, name)
    if value == saved:
      continue
    if name not in OVERRIDABLE:
      raise CheckpointSettingsError(
          f"{setting}={value!r} contradicts the checkpoint, trained with {name}={saved!r} "
          f"({where}); only {', '.join(sorted(OVERRIDABLE))} may differ: drop the binding "
          f"or the model gin file")
    logging.info("%s=%r overrides the checkpoint's %r", setting, value, saved)
    overrides[name] = value
  return _overridden(metadata.model, overrides)


def _overridden(config: TransformerConfig, overrides: dict[str, Any]) -> TransformerConfig:
  """`config` with `overrides`, an override it cannot take named as MODEL_OVERRIDES."""
  try:
    return dataclasses.replace(config, **overrides)
  except SettingError as e:  # TransformerConfig's own check names only the field.
    raise SettingError(f"MODEL_OVERRIDES={overrides!r}: {e}") from None


def check_template(metadata: RunMetadata | None, template: PromptTemplate | None,
                   where: str) -> PromptTemplate:
  """The template to sample with: the checkpoint's, or a given one that agrees with it.

  Args:
    metadata: the checkpoint's (None: no metadata, `template` is used as given, the
      standard PromptTemplate() when it is None too).
    template: the template the user gave (a gin binding or argument), or None.
    where: the checkpoint, for messages.

  Raises:
    CheckpointSettingsError: a given template other than the checkpoint's, naming the
      first field that differs.
  """
  if metadata is None:
    return template or PromptTemplate()
  if template is not None and template != metadata.template:
    saved, given = dataclasses.asdict(metadata.template), dataclasses.asdict(template)
    name = next(k for k in given if given[k] != saved[k])
    raise CheckpointSettingsError(
        f"PromptTemplate.{name}={given[name]!r} contradicts the checkpoint, trained with "
        f"{saved[name]!r} ({where})")
  return metadata.template
