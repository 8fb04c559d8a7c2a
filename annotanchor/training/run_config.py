"""The typed configuration of a training run: one frozen object, validated when it is built.

`annotanchor train` builds a `TrainConfig` from the gin files once, at start-up, and runs
it; `annotanchor compile` builds the same object from the same files and compiles its step.
The groups follow t5x's split (its DatasetConfig, CheckpointConfig, ...):

  TrainConfig(model_dir, train_steps, model=TransformerConfig, data=DataConfig,
              optimizer=OptimizerConfig, step=StepConfig, checkpoint=CheckpointConfig,
              mesh, seed, log_every, peak_flops, distributed,
              preference=PreferenceConfig or None)

gin/runs/pretrain.gin binds each group; a flag sets one field, e.g.
`--gin.StepConfig.microbatches=4` or `--gin.CheckpointConfig.every=200`. A value a run
cannot use is refused as the object is built, with one line naming the setting (the macro,
where the run files bind one: TRAIN_STEPS, BATCH_SIZE, TASK_FEATURE_LENGTHS).
"""
from __future__ import annotations

import dataclasses
from typing import Mapping

from annotanchor.errors import is_count, require
from annotanchor.model.config import TransformerConfig
from annotanchor.model.losses import NORMALIZATIONS
from annotanchor.model.preference_losses import LOSS_TYPES
from annotanchor.training.optim import OptimizerConfig
from annotanchor.training.step import NAN_POLICIES


@dataclasses.dataclass(frozen=True, kw_only=True)
class DataConfig:
  """What the run reads (annotanchor.data.pipeline.get_dataset's settings).

  Attributes:
    mixture_or_task_name: a registered SeqIO task or mixture.
    task_feature_lengths: e.g. {"targets": 512}.
    batch_size: global batch, in sequences (packed rows when `pack`).
    pack: pack several examples per row.
    seed: the pipeline's shuffling seed.
  """
  mixture_or_task_name: str
  task_feature_lengths: Mapping[str, int]
  batch_size: int
  pack: bool = True
  seed: int = 0

  def __post_init__(self):
    require(isinstance(self.mixture_or_task_name, str) and bool(self.mixture_or_task_name),
            "MIXTURE_OR_TASK_NAME", self.mixture_or_task_name, "a registered task or mixture")
    require(is_count(self.batch_size), "BATCH_SIZE", self.batch_size, "a positive integer")
    lengths = self.task_feature_lengths
    require(isinstance(lengths, Mapping) and "targets" in lengths
            and all(is_count(v, 2) for v in lengths.values()),
            "TASK_FEATURE_LENGTHS", lengths, "a mapping like {'targets': 512} of lengths >= 2")
    require(isinstance(self.pack, bool), "DataConfig.pack", self.pack, "True or False")
    require(is_count(self.seed, 0), "DataConfig.seed", self.seed, "an integer >= 0")

  @property
  def length(self) -> int:
    """The row length, `task_feature_lengths["targets"]`."""
    return int(self.task_feature_lengths["targets"])


@dataclasses.dataclass(frozen=True, kw_only=True)
class StepConfig:
  """What one optimizer step computes.

  Attributes:
    microbatches: gradient accumulation steps per update (must divide the batch).
    nan_policy: "skip", "stop" or "off"; see annotanchor.training.step.
    z_loss: coefficient of the z-loss.
    loss_normalization: see annotanchor.model.losses.NORMALIZATIONS.
  """
  microbatches: int = 1
  nan_policy: str = "skip"
  z_loss: float = 1e-4
  loss_normalization: str = "weights"

  def __post_init__(self):
    require(is_count(self.microbatches), "StepConfig.microbatches", self.microbatches,
            "a positive integer")
    require(self.nan_policy in NAN_POLICIES, "StepConfig.nan_policy", self.nan_policy,
            f"one of {NAN_POLICIES}")
    require(isinstance(self.z_loss, (int, float)) and not isinstance(self.z_loss, bool)
            and self.z_loss >= 0, "StepConfig.z_loss", self.z_loss, "a number >= 0")
    require(self.loss_normalization in NORMALIZATIONS, "StepConfig.loss_normalization",
            self.loss_normalization, f"one of {NORMALIZATIONS}")


@dataclasses.dataclass(frozen=True, kw_only=True)
class CheckpointConfig:
  """When checkpoints are written and what the run starts from.

  Attributes:
    every: checkpoint cadence in steps (the last step is always saved).
    keep: how many of the newest checkpoints are kept.
    initial_checkpoint_path: fine-tune from these parameters (fresh optimizer state);
      ignored when MODEL_DIR already has a checkpoint (the run resumes from it).
  """
  every: int = 1000
  keep: int = 3
  initial_checkpoint_path: str | None = None

  def __post_init__(self):
    require(is_count(self.every), "CheckpointConfig.every", self.every, "a positive integer")
    require(is_count(self.keep), "CheckpointConfig.keep", self.keep, "a positive integer")
    path = self.initial_checkpoint_path
    require(path is None or (isinstance(path, str) and bool(path)), "INITIAL_CHECKPOINT_PATH",
            path, "None or a MODEL_DIR, checkpoints/ directory or step directory")


@dataclasses.dataclass(frozen=True, kw_only=True)
class PreferenceConfig:
  """A preference stage (DPO and relatives; annotanchor/model/preference_losses.py).

  Its data is a preference task (`data/preference_corpus.py`), its reference policy the
  run's INITIAL_CHECKPOINT_PATH, frozen.

  Attributes:
    beta: the KL strength (IPO's tau).
    label_smoothing: conservative DPO's label-noise rate, in [0, 0.5) (sigmoid only).
    loss_type: "sigmoid" (DPO) or "ipo".
    rehearsal_task: a task of annotation-only sequences (e.g. P_annotation_only) rehearsed
      beside the pairs, one unpacked row per pair, as the anchored SFT mixture rehearses
      them (None: no rehearsal).
    rehearsal_weight: the weight of the rehearsed rows' mean cross-entropy in each pair's
      loss (> 0 with a rehearsal_task).
  """
  beta: float = 0.1
  label_smoothing: float = 0.0
  loss_type: str = "sigmoid"
  rehearsal_task: str | None = None
  rehearsal_weight: float = 0.0

  def __post_init__(self):
    number = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)
    require(number(self.beta) and self.beta > 0, "PreferenceConfig.beta", self.beta,
            "a number > 0")
    require(self.loss_type in LOSS_TYPES, "PreferenceConfig.loss_type", self.loss_type,
            f"one of {LOSS_TYPES}")
    require(number(self.label_smoothing) and 0 <= self.label_smoothing < 0.5
            and (self.label_smoothing == 0 or self.loss_type == "sigmoid"),
            "PreferenceConfig.label_smoothing", self.label_smoothing,
            "a number in [0, 0.5), and 0 unless loss_type='sigmoid'")
    require(self.rehearsal_task is None or (isinstance(self.rehearsal_task, str)
                                            and bool(self.rehearsal_task)),
            "PreferenceConfig.rehearsal_task", self.rehearsal_task, "None or a task name")
    require(number(self.rehearsal_weight) and self.rehearsal_weight >= 0
            and (self.rehearsal_weight > 0) == (self.rehearsal_task is not None),
            "PreferenceConfig.rehearsal_weight", self.rehearsal_weight,
            "a number > 0 with a rehearsal_task, 0 without")


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainConfig:
  """A training run.

  Attributes:
    model_dir: run directory: checkpoints, train_metrics.jsonl, tensorboard/, config.gin.
    train_steps: total optimizer steps (a resumed run continues to this number).
    model: the network's shape.
    data: the input pipeline's settings.
    optimizer: AdamW and schedule settings.
    step: microbatching, the NaN policy and the loss.
    checkpoint: checkpoint cadence and retention, and the initial checkpoint.
    mesh: degrees per mesh axis, e.g. {"data": -1, "fsdp": 1, "model": 1}; None: all data
      (checked against the devices by `partitioning.mesh_shape` when the mesh is made).
    seed: parameter initialisation seed.
    log_every: metrics cadence in steps.
    peak_flops: per-device peak FLOP/s for MFU (default: spec sheet, or measured on CPU).
    distributed: call jax.distributed.initialize() (None: when the environment asks).
    preference: train on preference pairs against the initial checkpoint, frozen (None:
      the weighted language-model loss).
  """
  model_dir: str
  train_steps: int
  model: TransformerConfig
  data: DataConfig
  optimizer: OptimizerConfig = OptimizerConfig()
  step: StepConfig = StepConfig()
  checkpoint: CheckpointConfig = CheckpointConfig()
  mesh: Mapping[str, int] | None = None
  seed: int = 0
  log_every: int = 10
  peak_flops: float | None = None
  distributed: bool | None = None
  preference: PreferenceConfig | None = None

  def __post_init__(self):
    require(isinstance(self.model_dir, str) and bool(self.model_dir), "MODEL_DIR",
            self.model_dir, "a directory path")
    require(is_count(self.train_steps), "TRAIN_STEPS", self.train_steps, "a positive integer")
    for name, kind in (("model", TransformerConfig), ("data", DataConfig),
                       ("optimizer", OptimizerConfig), ("step", StepConfig),
                       ("checkpoint", CheckpointConfig)):
      value = getattr(self, name)
      require(isinstance(value, kind), f"TrainConfig.{name}", value,
              f"a {kind.__name__} (e.g. @{kind.__name__}() in a gin file)")
    require(self.data.batch_size % self.step.microbatches == 0, "StepConfig.microbatches",
            self.step.microbatches, f"a positive integer that divides BATCH_SIZE="
            f"{self.data.batch_size}")
    require(is_count(self.seed, 0), "TrainConfig.seed", self.seed, "an integer >= 0")
    require(is_count(self.log_every), "TrainConfig.log_every", self.log_every,
            "a positive integer")
    require(self.peak_flops is None or (isinstance(self.peak_flops, (int, float))
                                        and self.peak_flops > 0), "TrainConfig.peak_flops",
            self.peak_flops, "None or a positive number of FLOP/s")
    require(self.distributed in (None, True, False), "TrainConfig.distributed",
            self.distributed, "None, True or False")
    require(self.preference is None or isinstance(self.preference, PreferenceConfig),
            "TrainConfig.preference", self.preference, "None or a PreferenceConfig")
    if self.preference is not None:
      require(self.checkpoint.initial_checkpoint_path is not None, "INITIAL_CHECKPOINT_PATH",
              None, "the checkpoint to tune, which is also the frozen reference policy of "
              "TrainConfig.preference")
      require(not self.data.pack, "DataConfig.pack", self.data.pack,
              "False: preference pairs are not packed")
