"""`annotanchor train` / `python -m annotanchor.train`: a gin-configured training run.

  annotanchor train --gin_file=gin/models/tiny.gin --gin_file=gin/runs/pretrain.gin \
      --gin.MODEL_DIR="'runs/tiny'" --gin.TRAIN_STEPS=20

The run files in gin/runs/ bind a `TrainConfig` (annotanchor/training/run_config.py), built
and validated once at start-up; see their headers for the knobs. The operative config is
written to MODEL_DIR/config.gin.
"""
from __future__ import annotations

if __name__ == "__main__":
  from annotanchor.gin_utils import run_module_main
  run_module_main("annotanchor.train")

import dataclasses
from typing import Any

import gin

from annotanchor import gin_utils
from annotanchor.data import pipeline
from annotanchor.data.preference_sequences import is_preference_task
from annotanchor.data.registration import (configured_corpora, mixture_or_task,
                                           register_configured_corpora, task_template)
from annotanchor.errors import SettingError
from annotanchor.model.config import TransformerConfig
from annotanchor.model.model import DecoderOnlyModel
from annotanchor.model.preference_model import REHEARSAL, PreferenceModel
from annotanchor.training import loop, metadata, multihost, partitioning
from annotanchor.training.optim import make_optimizer
from annotanchor.training.run_config import DataConfig, TrainConfig


def train(config: TrainConfig) -> loop.TrainResult:
  """Trains a decoder-only model on a SeqIO task or mixture, as `config` says.

  `annotanchor train` calls this with `configured_run()`; Python callers build the
  TrainConfig themselves.
  """
  register_configured_corpora()  # The corpora bound in gin exist before the lookup.
  check_vocabulary_fits(config.data.mixture_or_task_name, config.model.vocab_size)
  check_objective_fits_task(config)
  multihost.maybe_initialize_distributed(initialize=config.distributed)
  import jax  # After distributed initialisation, which must precede backend use.

  data = config.data
  device_mesh = partitioning.make_mesh(config.mesh or {"data": -1})
  model, tx, schedule = model_and_optimizer(config)
  def data_from(start_step: int):
    stream = lambda name, pack: iter(pipeline.get_dataset(
        name, data.task_feature_lengths, data.batch_size, seed=data.seed, pack=pack,
        shard_index=jax.process_index(), num_shards=jax.process_count(),
        start_step=start_step))
    batches = stream(data.mixture_or_task_name, data.pack)
    rehearsal = config.preference and config.preference.rehearsal_task
    if rehearsal:  # One row per pair, from a stream that resumes at the same step.
      batches = (
          {**pairs, **{f"{REHEARSAL}_{k}": v for k, v in rows.items()}}
          for pairs, rows in zip(batches, stream(rehearsal, False)))
    if jax.process_index() == 0:  # Now every configurable of the run has been called.
      gin_utils.write_operative_config(config.model_dir)
    return batches

  return loop.train_loop(
      config, model=model, optimizer=tx, schedule=schedule, mesh=device_mesh,
      dataset_fn=data_from,
      metadata=run_metadata(config.model, data.mixture_or_task_name, config.model_dir,
                            copy_vocabulary=jax.process_index() == 0))


def model_and_optimizer(config: TrainConfig):
  """(model, optax transformation, learning-rate schedule) of a run, as `train` builds them."""
  tx, schedule = make_optimizer(config.optimizer, config.train_steps)
  if config.preference is not None:
    preference = config.preference
    model = PreferenceModel(config.model, beta=preference.beta,
                            label_smoothing=preference.label_smoothing,
                            loss_type=preference.loss_type,
                            rehearsal_weight=preference.rehearsal_weight)
  else:
    model = DecoderOnlyModel(config.model, z_loss=config.step.z_loss,
                             loss_normalization=config.step.loss_normalization)
  return model, tx, schedule


def run_metadata(model_config: TransformerConfig, mixture_or_task_name: str, model_dir: str,
                 *, copy_vocabulary: bool) -> dict[str, Any]:
  """What every checkpoint of the run records: the network, the task's vocabulary (its file
  copied into MODEL_DIR when `copy_vocabulary`) and the template the task was registered
  with."""
  vocabulary = pipeline.task_vocabulary(mixture_or_task(mixture_or_task_name))
  return metadata.RunMetadata(
      model_config, metadata.describe_vocabulary(vocabulary, model_dir, copy=copy_vocabulary),
      task_template(mixture_or_task_name)).to_json()


# What a required TrainConfig field means when no gin file binds it.
_REQUIRED_HINTS = {
    "model": "pass a gin/models/ file",
    "data": "pass a gin/runs/ file (it binds TrainConfig.data = @run_config.DataConfig())",
    "model_dir": "set --gin.MODEL_DIR", "train_steps": "set --gin.TRAIN_STEPS",
    "mixture_or_task_name": "set --gin.MIXTURE_OR_TASK_NAME",
    "task_feature_lengths": "set --gin.TASK_FEATURE_LENGTHS",
    "batch_size": "set --gin.BATCH_SIZE",
}


def configured_run(**overrides) -> TrainConfig:
  """The TrainConfig the parsed gin files describe, validated.

  Args:
    **overrides: TrainConfig fields given here instead of by gin (`annotanchor compile`
      passes a model_dir, which compiling does not use).

  Raises:
    SettingError: a required field no gin file binds (named, with what to pass), or a value
      a run cannot use.
  """
  for cls, given in ((TrainConfig, overrides), (DataConfig, {})):
    for field in dataclasses.fields(cls):
      if (field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
          and field.name not in given and not _is_bound(cls, field.name)):
        hint = _REQUIRED_HINTS.get(field.name, f"bind {cls.__name__}.{field.name} in a gin file")
        raise SettingError(f"{cls.__name__}.{field.name} is not bound: {hint}")
  return gin.get_configurable(TrainConfig)(**overrides)


def _is_bound(cls: type, parameter: str) -> bool:
  """Whether gin binds `cls`'s `parameter` (without evaluating the binding)."""
  try:
    gin.query_parameter(f"{cls.__module__}.{cls.__name__}.{parameter}")
  except ValueError:  # Not bound, or `cls` unregistered: no gin file names it.
    return False
  return True


def check_settings() -> None:
  """Builds the run's TrainConfig and its corpora (not registering them, which may read
  files), so that `annotanchor.gin_check` (the demo, before its first step) refuses a
  number the run cannot use."""
  configured_run()
  configured_corpora()


def check_vocabulary_fits(mixture_or_task_name: str, vocab_size: int) -> None:
  """Refuses a model whose embedding has fewer rows than the task's vocabulary has ids.

  (An out-of-range id would silently read a clamped embedding row.)
  """
  task = mixture_or_task(mixture_or_task_name)
  for name, feature in task.output_features.items():
    if feature.vocabulary.vocab_size > vocab_size:
      raise SettingError(
          f"the model's vocab_size={vocab_size} is smaller than the {feature.vocabulary.vocab_size}"
          f" ids of {mixture_or_task_name!r} feature {name!r}: set --gin.VOCAB_SIZE to at least "
          f"{feature.vocabulary.vocab_size}")


def check_objective_fits_task(config: TrainConfig) -> None:
  """Refuses preference pairs without a preference objective, and the reverse."""
  name = config.data.mixture_or_task_name
  pairs = is_preference_task(mixture_or_task(name))
  if pairs and config.preference is None:
    raise SettingError(f"MIXTURE_OR_TASK_NAME={name!r} yields preference pairs: train them "
                       "with gin/runs/dpo.gin (it binds TrainConfig.preference)")
  if config.preference is not None and not pairs:
    raise SettingError(f"MIXTURE_OR_TASK_NAME={name!r} is not a preference task, and "
                       "TrainConfig.preference trains on pairs: give a P_preference or "
                       "P_preference_anchored task (data/preference_corpus.py)")
  rehearsal = config.preference and config.preference.rehearsal_task
  setting = "PreferenceConfig.rehearsal_task"
  if rehearsal and is_preference_task(mixture_or_task(rehearsal, setting)):
    raise SettingError(f"PreferenceConfig.rehearsal_task={rehearsal!r} yields pairs: give a "
                       "task of single sequences (e.g. P_annotation_only)")


def main(argv: list[str] | None = None) -> int:
  """Exit status: 0 done, 2 bad configuration or input, 3 stopped by SIGTERM (resumable)."""
  return gin_utils.run_main(
      "train", lambda: train(configured_run()), argv, doc=__doc__,
      exit_code=lambda result: 3 if result.preempted else 0)
