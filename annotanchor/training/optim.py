"""AdamW with warmup and cosine/linear decay, global-norm clipping."""
from __future__ import annotations

import dataclasses

import jax
import optax

from annotanchor.errors import SettingError

DECAYS = ("cosine", "linear", "constant")


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
  """Attributes:
    learning_rate: peak learning rate, reached after warmup.
    warmup_steps: linear warmup from 0.
    decay: "cosine", "linear" or "constant" after warmup.
    decay_steps: steps over which to decay (warmup included); None: the run's TRAIN_STEPS.
    final_lr_ratio: the decayed learning rate as a fraction of the peak.
    b1, b2, eps: Adam moments.
    weight_decay: decoupled decay, applied to matrices only (not norms).
    clip_norm: global-norm clipping threshold; None disables clipping.
  """

  learning_rate: float = 3e-4
  warmup_steps: int = 100
  decay: str = "cosine"
  decay_steps: int | None = None
  final_lr_ratio: float = 0.1
  b1: float = 0.9
  b2: float = 0.95
  eps: float = 1e-8
  weight_decay: float = 0.1
  clip_norm: float | None = 1.0

  def __post_init__(self):
    if self.decay not in DECAYS:
      raise SettingError(f"decay={self.decay!r}; expected one of {DECAYS}")


def make_schedule(cfg: OptimizerConfig, train_steps: int) -> optax.Schedule:
  total = cfg.decay_steps or train_steps
  warmup = min(cfg.warmup_steps, total)
  end = cfg.learning_rate * cfg.final_lr_ratio
  if cfg.decay == "constant":
    after = optax.constant_schedule(cfg.learning_rate)
  elif cfg.decay == "linear":
    after = optax.linear_schedule(cfg.learning_rate, end, max(total - warmup, 1))
  else:
    after = optax.cosine_decay_schedule(cfg.learning_rate, max(total - warmup, 1),
                                        alpha=cfg.final_lr_ratio)
  return optax.join_schedules(
      [optax.linear_schedule(0.0, cfg.learning_rate, warmup), after], [warmup])


def _decay_mask(params):
  return jax.tree.map(lambda p: p.ndim >= 2, params)


def make_optimizer(cfg: OptimizerConfig, train_steps: int):
  """Returns (optax transformation, learning-rate schedule)."""
  schedule = make_schedule(cfg, train_steps)
  adamw = optax.adamw(schedule, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps,
                      weight_decay=cfg.weight_decay, mask=_decay_mask)
  if cfg.clip_norm is None:
    return adamw, schedule
  return optax.chain(optax.clip_by_global_norm(cfg.clip_norm), adamw), schedule
