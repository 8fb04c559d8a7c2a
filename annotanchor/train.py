"""`annotanchor train` / `python -m annotanchor.train`: a gin-configured training run.

  annotanchor train --gin_file=gin/models/tiny.gin --gin_file=gin/runs/pretrain.gin \
      --gin.MODEL_DIR="'runs/tiny'" --gin.TRAIN_STEPS=20

The run files in gin/runs/ bind this module's `train` function; see their headers for the
knobs. The operative config is written to MODEL_DIR/config.gin.
"""
from __future__ import annotations

if __name__ == "__main__":
  from annotanchor.gin_utils import run_module_main
  run_module_main("annotanchor.train")

import inspect
from typing import Any, Callable, Mapping

import gin

from annotanchor import gin_utils
from annotanchor.data.prompts import PromptTemplate
from annotanchor.data.registration import register_configured_corpora
from annotanchor.errors import SettingError, is_count, require
from annotanchor.model.config import TransformerConfig
from annotanchor.model.model import DecoderOnlyModel
from annotanchor.training import loop, metadata, multihost, partitioning
from annotanchor.training.optim import OptimizerConfig, make_optimizer


@gin.configurable
def train(*, model_dir: str = gin.REQUIRED, train_steps: int = gin.REQUIRED,
          batch_size: int = gin.REQUIRED, task_feature_lengths: Mapping[str, int] = gin.REQUIRED,
          mixture_or_task_name: str = gin.REQUIRED, model_config: TransformerConfig = gin.REQUIRED,
          dataset_fn: Callable = gin.REQUIRED, mesh: Mapping[str, int] | None = None,
          optimizer: OptimizerConfig | None = None, z_loss: float = 1e-4,
          loss_normalization: str = "weights", microbatches: int = 1, nan_policy: str = "skip",
          initial_checkpoint_path: str | None = None, seed: int = 0, data_seed: int = 0,
          pack: bool = True, checkpoint_every: int = 1000, keep_checkpoints: int = 3,
          log_every: int = 10, peak_flops: float | None = None,
          distributed: bool | None = None) -> loop.TrainResult:
  """Trains a decoder-only model on a SeqIO task or mixture.

  Args:
    model_dir: run directory: checkpoints, train_metrics.jsonl, tensorboard/, config.gin.
    train_steps: total optimizer steps (a resumed run continues to this number).
    batch_size: global batch, in sequences (packed rows when pack=True).
    task_feature_lengths: e.g. {"targets": 512}.
    mixture_or_task_name: a registered SeqIO task or mixture.
    model_config: the network's shape.
    dataset_fn: the input pipeline, annotanchor.data.pipeline.get_dataset's signature.
    mesh: degrees per mesh axis, e.g. {"data": -1, "fsdp": 1, "model": 1}.
    optimizer: AdamW and schedule settings.
    z_loss, loss_normalization: see annotanchor.model.losses.
    microbatches: gradient accumulation steps per update.
    nan_policy: "skip", "stop" or "off"; see annotanchor.training.step.
    initial_checkpoint_path: fine-tune from these parameters (fresh optimizer state); ignored
      when MODEL_DIR already has a checkpoint (the run resumes from it).
    seed: parameter initialisation seed.
    data_seed: shuffling seed of the input pipeline.
    pack: pack several examples per row.
    checkpoint_every, keep_checkpoints: checkpoint cadence and retention.
    log_every: metrics cadence in steps.
    peak_flops: per-device peak FLOP/s for MFU (default: spec sheet, or measured on CPU).
    distributed: call jax.distributed.initialize() (None: when the environment asks).
  """
  check_numbers(train_steps=train_steps, batch_size=batch_size,
                task_feature_lengths=task_feature_lengths, microbatches=microbatches,
                checkpoint_every=checkpoint_every, keep_checkpoints=keep_checkpoints,
                log_every=log_every, z_loss=z_loss, peak_flops=peak_flops)
  register_configured_corpora()  # JsonlCorpus tasks bound in gin exist before the lookup.
  check_vocabulary_fits(mixture_or_task_name, model_config.vocab_size)
  multihost.maybe_initialize_distributed(initialize=distributed)
  import jax  # After distributed initialisation, which must precede backend use.

  device_mesh = partitioning.make_mesh(mesh or {"data": -1})
  model, tx, schedule = model_and_optimizer(model_config, optimizer, train_steps, z_loss=z_loss,
                                            loss_normalization=loss_normalization)
  def data_from(start_step: int):
    batches = iter(dataset_fn(mixture_or_task_name, task_feature_lengths, batch_size,
                              seed=data_seed, pack=pack, shard_index=jax.process_index(),
                              num_shards=jax.process_count(), start_step=start_step))
    if jax.process_index() == 0:  # Now every configurable of the run has been called.
      gin_utils.write_operative_config(model_dir)
    return batches

  return loop.train_loop(
      model=model, optimizer=tx, schedule=schedule, mesh=device_mesh, dataset_fn=data_from,
      model_dir=model_dir, train_steps=train_steps, batch_size=batch_size, microbatches=microbatches, nan_policy=nan_policy,
      seed=seed, initial_checkpoint_path=initial_checkpoint_path,
      checkpoint_every=checkpoint_every, keep_checkpoints=keep_checkpoints, log_every=log_every,
      peak_flops=peak_flops,
      metadata=run_metadata(model_config, mixture_or_task_name, model_dir,
                            copy_vocabulary=jax.process_index() == 0))


def model_and_optimizer(model_config: TransformerConfig, optimizer: OptimizerConfig | None,
                        train_steps: int, *, z_loss: float, loss_normalization: str):
  """(model, optax transformation, learning-rate schedule) of a run, as `train` builds them."""
  tx, schedule = make_optimizer(optimizer or OptimizerConfig(), train_steps)
  model = DecoderOnlyModel(model_config, z_loss=z_loss, loss_normalization=loss_normalization)
  return model, tx, schedule


def run_metadata(model_config: TransformerConfig, mixture_or_task_name: str, model_dir: str,
                 *, copy_vocabulary: bool) -> dict[str, Any]:
  """What every checkpoint of the run records: the network, the task's vocabulary (its file
  copied into MODEL_DIR when `copy_vocabulary`) and the prompt template."""
  import seqio  # The task registry; imported here to keep `--help` fast.

  vocabulary = seqio.get_mixture_or_task(mixture_or_task_name).output_features["targets"].vocabulary
  return metadata.RunMetadata(
      model_config, metadata.describe_vocabulary(vocabulary, model_dir, copy=copy_vocabulary),
      PromptTemplate()).to_json()


def configured_arguments() -> dict[str, Any]:
  """`train`'s arguments as the parsed gin files bind them, defaults filled in.

  References are evaluated (model_config is a TransformerConfig); unbound required
  arguments come back as gin.REQUIRED. Used by `annotanchor compile`, which compiles the
  step a run's gin files describe without running it.
  """
  bound = gin.get_bindings(train)
  return {name: bound.get(name, parameter.default)
          for name, parameter in inspect.signature(train).parameters.items()}


def check_numbers(*, train_steps, batch_size, task_feature_lengths, microbatches,
                  checkpoint_every, keep_checkpoints, log_every, z_loss, peak_flops) -> None:
  """Refuses, at start-up and with one line naming it, a number a run cannot use."""
  require(is_count(train_steps), "TRAIN_STEPS", train_steps, "a positive integer")
  require(is_count(batch_size), "BATCH_SIZE", batch_size, "a positive integer")
  require(isinstance(task_feature_lengths, Mapping) and "targets" in task_feature_lengths
          and all(is_count(v, 2) for v in task_feature_lengths.values()),
          "TASK_FEATURE_LENGTHS", task_feature_lengths,
          "a mapping like {'targets': 512} of lengths >= 2")
  require(is_count(microbatches) and batch_size % microbatches == 0, "train.microbatches",
          microbatches, f"a positive integer that divides BATCH_SIZE={batch_size}")
  for name, value in (("checkpoint_every", checkpoint_every),
                      ("keep_checkpoints", keep_checkpoints), ("log_every", log_every)):
    require(is_count(value), f"train.{name}", value, "a positive integer")
  require(isinstance(z_loss, (int, float)) and z_loss >= 0, "train.z_loss", z_loss,
          "a number >= 0")
  require(peak_flops is None or (isinstance(peak_flops, (int, float)) and peak_flops > 0),
          "train.peak_flops", peak_flops, "None or a positive number of FLOP/s")


def check_vocabulary_fits(mixture_or_task_name: str, vocab_size: int) -> None:
  """Refuses a model whose embedding has fewer rows than the task's vocabulary has ids.

  (An out-of-range id would silently read a clamped embedding row.)
  """
  import seqio  # The task registry; imported here to keep `--help` fast.

  task = seqio.get_mixture_or_task(mixture_or_task_name)
  for name, feature in task.output_features.items():
    if feature.vocabulary.vocab_size > vocab_size:
      raise SettingError(
          f"the model's vocab_size={vocab_size} is smaller than the {feature.vocabulary.vocab_size}"
          f" ids of {mixture_or_task_name!r} feature {name!r}: set --gin.VOCAB_SIZE to at least "
          f"{feature.vocabulary.vocab_size}")


def main(argv: list[str] | None = None) -> int:
  """Exit status: 0 done, 2 bad configuration or input, 3 stopped by SIGTERM (resumable)."""
  return gin_utils.run_main(
      "train", train, argv, doc=__doc__,
      exit_code=lambda result: 3 if result.preempted else 0)
