"""What a corpus gives the experiment pipeline: one interface for storyworld and a user's files.

A corpus names its five tasks (the annotated and the plain pretraining task, the standard and
the anchored SFT task, the held-out prompts every arm samples), the gin files and bindings
that register them in every step that reads data, and optionally a command that builds it
first, the labeller and quality function `annotanchor evaluate` uses on its samples, and
capability probes, and a command that writes a share of its SFT prompts (and its vocabulary)
for the preference stage to sample (annotanchor/experiment/preference.py). Storyworld supplies
all of it (gin/experiments/storyworld_demo.gin); a
corpus of JSONL files (`jsonl_corpus`, registration.JsonlCorpus) supplies the tasks and
leaves the rest to the generic defaults unless given: nothing to build, evaluate's
label-free labels, no quality function, no probes.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

from annotanchor.errors import require
from annotanchor.experiment.plan import check_bindings

# The evaluate parameters a corpus may set, and the Corpus fields that hold them.
EVALUATE_FIELDS = ("labeller", "labeller_inputs", "quality_fn", "quality_inputs",
                   "prompt_constraints")


@dataclasses.dataclass(frozen=True)
class Corpus:
  """A corpus as the pipeline uses it.

  Attributes:
    pretrain_task: annotated documents (pretraining of the anchored arm's base).
    plain_pretrain_task: the same documents without annotations (the other base).
    sft_task: standard SFT.
    anchored_sft_task: anchored SFT (its mixture, annotation-only sequences included).
    eval_prompts_task: the held-out prompts every arm samples.
    data_gins: gin files given to every step that reads data (all but evaluate): they
      register the tasks and set the vocabulary and lengths.
    bindings: gin name -> value given to those steps after data_gins (e.g. the user's
      file macros).
    build: a module run first as `python -m BUILD` with data_gins and bindings (a generated
      corpus and its vocabulary); None: nothing to build.
    labeller, labeller_inputs, quality_fn, quality_inputs, prompt_constraints:
      `evaluate.*` of the same names ("module:function" and input fields); None: evaluate's
      default (docs/evaluation.md: label-free labels, no quality).
    capability_tasks: `annotanchor capability`'s TASK_FILES (task -> JSONL or
      "module:function"); None: no capability probes.
    sft_prompts: a module run as `python -m SFT_PROMPTS` with data_gins, bindings and
      `sft_prompts.output_dir` and `sft_prompts.count`, writing there prompts.jsonl (`{"id",
      "prompt"}`, for infer's PROMPTS_FILE) and spm.model (the corpus's vocabulary, for
      dpo.gin's VOCABULARY); None: no preference runs.
  """
  pretrain_task: str
  plain_pretrain_task: str
  sft_task: str
  anchored_sft_task: str
  eval_prompts_task: str
  data_gins: Sequence[str] = ()
  bindings: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  build: str | None = None
  labeller: str | None = None
  labeller_inputs: Sequence[str] | None = None
  quality_fn: str | None = None
  quality_inputs: Sequence[str] | None = None
  prompt_constraints: str | None = None
  capability_tasks: Mapping[str, str] | None = None
  sft_prompts: str | None = None

  def check(self, setting: str = "demo.corpus") -> None:
    """Raises SettingError naming `setting.FIELD` for a field of the wrong kind."""
    for field in ("pretrain_task", "plain_pretrain_task", "sft_task", "anchored_sft_task",
                  "eval_prompts_task"):
      value = getattr(self, field)
      require(isinstance(value, str) and bool(value), f"{setting}.{field}", value,
              "a task name")
    require(isinstance(self.data_gins, (list, tuple))
            and all(isinstance(f, str) and f for f in self.data_gins),
            f"{setting}.data_gins", self.data_gins, "a list of gin file paths")
    check_bindings(f"{setting}.bindings", self.bindings)
    for field in ("build", "labeller", "quality_fn", "prompt_constraints", "sft_prompts"):
      value = getattr(self, field)
      require(value is None or (isinstance(value, str) and bool(value)),
              f"{setting}.{field}", value, "None or a name")
    require(self.capability_tasks is None or (
        isinstance(self.capability_tasks, Mapping)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in
                self.capability_tasks.items())), f"{setting}.capability_tasks",
            self.capability_tasks, "None or a dict of task names to files or 'module:function'")

  def evaluate_bindings(self) -> dict[str, Any]:
    """The `evaluate.*` bindings of the corpus's own labeller and quality function."""
    return {f"evaluate.{field}": getattr(self, field) for field in EVALUATE_FIELDS
            if getattr(self, field) is not None}


def jsonl_corpus(name: str = "user", *, data_gins: Sequence[str] = (),
                 bindings: Mapping[str, Any] | None = None, labeller: str | None = None,
                 labeller_inputs: Sequence[str] | None = None, quality_fn: str | None = None,
                 quality_inputs: Sequence[str] | None = None,
                 prompt_constraints: str | None = None,
                 capability_tasks: Mapping[str, str] | None = None) -> Corpus:
  """A corpus of the user's files: the tasks registration.JsonlCorpus(name=NAME) registers
  (NAME_pretrain, NAME_pretrain_plain, NAME_sft, NAME_anchored_sft_mixture,
  NAME_eval_prompts), nothing to build, and the Corpus fields of the same names (None:
  evaluate's defaults, no probes)."""
  return Corpus(pretrain_task=f"{name}_pretrain", plain_pretrain_task=f"{name}_pretrain_plain",
                sft_task=f"{name}_sft", anchored_sft_task=f"{name}_anchored_sft_mixture",
                eval_prompts_task=f"{name}_eval_prompts", data_gins=tuple(data_gins),
                bindings=dict(bindings or {}), labeller=labeller,
                labeller_inputs=labeller_inputs, quality_fn=quality_fn,
                quality_inputs=quality_inputs, prompt_constraints=prompt_constraints,
                capability_tasks=capability_tasks)
