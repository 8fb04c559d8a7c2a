"""The typed configuration of `annotanchor capability`: one frozen object, validated once,
when it is built.

  CapabilityConfig(output_dir, arm, probes=ProbeConfig, checkpoint=ScoredCheckpoint,
                   rows_per_call, progress_bar)

Users bind the settings by their flat names, `capability.capability.delimiter` (gin/runs/
capability.gin binds the required ones through its macros); annotanchor/capability.py's
`capability` builds this object from them and `score(config)` reads each group where it
uses it. A bad value is one SettingError naming the setting (the macro where
capability.gin binds one).
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Mapping

from annotanchor.errors import is_count, require
from annotanchor.evaluation import capability as capability_lib
from annotanchor.training.given_model import GivenModel


@dataclasses.dataclass(frozen=True, kw_only=True)
class ProbeConfig:
  """The questions and how each is laid out (evaluation/capability.py).

  Attributes:
    task_files: task name -> JSONL of {"id", "context", "choices", "gold"}, or the import
      path "pkg.module:function" of a function returning such records.
    num_fewshot: solved questions of the same task put before each context.
    delimiter: joins a context and a choice (lm-eval-harness: " ").
    fewshot_separator: joins the shots and the question.
    seed: picks the shots.
    limit: score only the first `limit` questions of each task (a quick look).
  """
  task_files: Mapping[str, str]
  num_fewshot: int = 0
  delimiter: str = " "
  fewshot_separator: str = "\n\n"
  seed: int = 1234
  limit: int | None = None

  def __post_init__(self):
    require(isinstance(self.task_files, Mapping) and bool(self.task_files)
            and all(isinstance(k, str) and isinstance(v, str)
                    for k, v in self.task_files.items()),
            "TASK_FILES", self.task_files, "a dict task name -> JSONL path or 'module:function'")
    require(is_count(self.num_fewshot, 0), "NUM_FEWSHOT", self.num_fewshot, "an int >= 0")
    for name in ("delimiter", "fewshot_separator"):
      require(isinstance(getattr(self, name), str), f"capability.{name}", getattr(self, name),
              "a string")
    require(isinstance(self.seed, int) and not isinstance(self.seed, bool),
            "capability.seed", self.seed, "an int")
    require(self.limit is None or is_count(self.limit), "capability.limit", self.limit,
            "a positive int or None")

  def record(self, checkpoint_path: str) -> dict[str, Any]:
    """What capability.json records as its run: a rerun with the same is a no-op."""
    return {"checkpoint_path": checkpoint_path,
            "task_files": {k: v if capability_lib.is_import_path(v) else os.path.abspath(v)
                           for k, v in sorted(self.task_files.items())},
            "num_fewshot": self.num_fewshot, "delimiter": self.delimiter,
            "fewshot_separator": self.fewshot_separator, "seed": self.seed,
            "limit": self.limit}


@dataclasses.dataclass(frozen=True, kw_only=True)
class ScoredCheckpoint:
  """The checkpoint scored and what the user says about it (decoding/from_checkpoint.py
  checks each against the checkpoint's metadata).

  Attributes:
    path: a MODEL_DIR, its checkpoints/ directory or a step directory.
    model: a model gin file's network and MODEL_OVERRIDES (a GivenModel,
      annotanchor/training/given_model.py), checked against the checkpoint's; default
      nothing given: the checkpoint's network.
    vocabulary: default the checkpoint's (it must be the one trained with).
    template: checked against the checkpoint's like infer's (raw text is scored, so it
      changes nothing here).
    mesh: degrees per mesh axis; default every device on `data`.
  """
  path: str
  model: GivenModel = GivenModel()
  vocabulary: Any = None
  template: Any = None
  mesh: Mapping[str, int] | None = None

  def __post_init__(self):
    require(isinstance(self.path, str) and bool(self.path), "CHECKPOINT_PATH", self.path,
            "a MODEL_DIR, its checkpoints/ directory or a step directory")
    require(isinstance(self.model, GivenModel), "capability.model", self.model,
            "a GivenModel (capability.gin binds @given_model.GivenModel())")
    require(self.mesh is None or isinstance(self.mesh, Mapping), "MESH", self.mesh,
            "None or {axis: degree}")


@dataclasses.dataclass(frozen=True, kw_only=True)
class CapabilityConfig:
  """A capability run.

  Attributes:
    output_dir: where capability.json, capability_scores.jsonl and config.gin go.
    arm: the arm name recorded in the result (the report row it joins).
    probes: the questions.
    checkpoint: the checkpoint scored.
    rows_per_call: (context, choice) rows per forward pass.
    progress_bar: a tqdm bar (None: on interactive terminals).
  """
  output_dir: str
  arm: str
  probes: ProbeConfig
  checkpoint: ScoredCheckpoint
  rows_per_call: int = 32
  progress_bar: bool | None = None

  def __post_init__(self):
    require(isinstance(self.output_dir, str) and bool(self.output_dir), "OUTPUT_DIR",
            self.output_dir, "a directory path")
    require(isinstance(self.arm, str) and bool(self.arm), "ARM", self.arm, "an arm name")
    require(is_count(self.rows_per_call), "capability.rows_per_call", self.rows_per_call,
            "a positive int")
