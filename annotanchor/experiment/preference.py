"""The on-policy preference stage: DPO of a fine-tuned run on pairs of its own samples.

A PreferenceRun adds three steps after the run it tunes (docs/training.md, "DPO"):

  infer  K samples per SFT prompt from the run (the anchored mode for an anchored run, so
         every answer keeps the annotation it was sampled after);
  pair   `annotanchor pair` (gin/runs/pair.gin) with the corpus's quality function: per
         prompt, a passing sample against a failing one;
  train  gin/runs/dpo.gin from the run (INITIAL_CHECKPOINT_PATH, also the frozen reference)
         on those pairs, with the anchored or the standard preference task.

The SFT prompts and the vocabulary come from the corpus's `sft_prompts` step, written once
for every preference run (OUTPUT_DIR/sft_prompts).
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Mapping

from annotanchor.errors import SettingError, is_count, require
from annotanchor.experiment.corpus import Corpus
from annotanchor.experiment.plan import Step, check_bindings, merged

DPO_GIN, PAIR_GIN = "gin/runs/dpo.gin", "gin/runs/pair.gin"
# gin/runs/dpo.gin's tasks (its PreferenceCorpus 'prefs'): anchored DPO scores each answer
# after its own annotation, which is never scored; standard DPO has no annotation.
TASKS = {"anchored": "prefs_preference_anchored", "direct": "prefs_preference"}
# What the corpus's sft_prompts step writes (tasks/storyworld/sft_prompts.py).
PROMPTS_FILE, VOCABULARY_FILE = "prompts.jsonl", "spm.model"


@dataclasses.dataclass(frozen=True)
class PreferenceRun:
  """DPO of a fine-tuned run on pairs of its own samples.

  Attributes:
    name: its directory under OUTPUT_DIR (MODEL_DIR of the DPO run); its samples and pairs
      go under OUTPUT_DIR/on_policy/NAME/.
    init: the fine-tuned run it tunes, which is also the frozen reference.
    mode: 'anchored' (sampled in infer's anchored mode; pairs of answers whose annotation
      parses; the anchored preference task) or 'direct' (standard DPO).
    steps: the DPO run's TRAIN_STEPS.
    num_samples: K, samples per SFT prompt (a prompt gives a pair only when some of its K
      samples pass the quality check and some fail).
    sample_bindings: gin name -> value for its infer step, e.g. {'TEMPERATURE': 1.0}.
    pair_bindings: for its pair step, e.g. {'pair.pairs_per_prompt': 2}.
    bindings: for its DPO run, e.g. {'PreferenceConfig.beta': 0.1}.
  """
  name: str
  init: str
  mode: str = "direct"
  steps: int = 200
  num_samples: int = 8
  sample_bindings: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  pair_bindings: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  bindings: Mapping[str, Any] = dataclasses.field(default_factory=dict)

  def check(self, setting: str) -> None:
    for field in ("name", "init"):
      value = getattr(self, field)
      require(isinstance(value, str) and bool(value), f"{setting}.{field}", value,
              "a non-empty string")
    require(self.mode in TASKS, f"{setting}.mode", self.mode, f"one of {sorted(TASKS)}")
    require(is_count(self.steps), f"{setting}.steps", self.steps, "a positive int")
    require(is_count(self.num_samples) and self.num_samples >= 2, f"{setting}.num_samples",
            self.num_samples, "an int >= 2 (a pair needs two samples of a prompt)")
    for field in ("sample_bindings", "pair_bindings", "bindings"):
      check_bindings(f"{setting}.{field}", getattr(self, field))


def prompts_step(output_dir: str, corpus: Corpus, shared: Mapping[str, Any], count: int,
                 needs: tuple[str, ...]) -> Step:
  """The corpus's step that writes `count` SFT prompts and its vocabulary.

  Raises:
    SettingError: the corpus has no sft_prompts step, or `count` is not a positive int.
  """
  if corpus.sft_prompts is None:
    raise SettingError("demo.plan.preference_runs need SFT prompts to sample: "
                       "demo.plan.corpus.sft_prompts is None (storyworld's is "
                       "'tasks.storyworld.sft_prompts')")
  require(is_count(count), "demo.plan.preference_prompts", count, "a positive int")
  directory = os.path.join(output_dir, "sft_prompts")
  return Step(f"write {count} SFT prompts to sample on-policy", corpus.sft_prompts, directory,
              tuple(corpus.data_gins),
              merged(shared, {"sft_prompts.output_dir": directory, "sft_prompts.count": count}),
              needs)


def preference_steps(run: PreferenceRun, output_dir: str, corpus: Corpus, model_gin: str,
                     shared: Mapping[str, Any], *, init_dir: str, prompts_dir: str,
                     max_new_tokens: int, needs: tuple[str, ...]) -> list[Step]:
  """The infer, pair and DPO train steps of `run` (module docstring); `init_dir` is the
  tuned run's MODEL_DIR, `needs` the directories every step reads besides (the corpus).

  Raises:
    SettingError: the corpus has no quality function to label the samples with.
  """
  if corpus.quality_fn is None:
    raise SettingError(f"preference run {run.name!r} pairs passing with failing samples: "
                       "demo.plan.corpus.quality_fn is None")
  base = os.path.join(output_dir, "on_policy", run.name)
  samples_dir, pairs_dir = os.path.join(base, "samples"), os.path.join(base, "pairs")
  data_gins = tuple(corpus.data_gins)
  prompts = os.path.join(prompts_dir, PROMPTS_FILE)
  sample = Step(
      f"sample {run.name}'s pairs from {os.path.basename(init_dir)} "
      f"({run.mode}, {run.num_samples} per SFT prompt)", "infer", samples_dir,
      (model_gin, "gin/runs/infer.gin", *data_gins),
      merged(shared, {"CHECKPOINT_PATH": init_dir, "OUTPUT_DIR": samples_dir,
                      "PROMPTS_FILE": prompts, "ARM": f"{run.name}_on_policy",
                      "MODE": run.mode, "NUM_SAMPLES": run.num_samples,
                      "MAX_NEW_TOKENS": max_new_tokens}, run.sample_bindings),
      needs + (init_dir, prompts_dir))
  pairs = os.path.join(pairs_dir, "pairs.jsonl")
  pair_bindings = {"SAMPLES": os.path.join(samples_dir, "samples.jsonl"), "OUTPUT": pairs,
                   "QUALITY_FN": corpus.quality_fn,
                   # An anchored answer is its annotation and its text: one whose annotation
                   # does not parse cannot be one.
                   "pair.require_annotations": run.mode == "anchored"}
  if corpus.quality_inputs is not None:
    pair_bindings["QUALITY_INPUTS"] = tuple(corpus.quality_inputs)
  # With the corpus's data gins: they import its modules, and `pair` imports the quality
  # function only after gin locks its configuration, too late for a module (storyworld's
  # `tasks`) that registers configurables when imported.
  pair = Step(f"pair {run.name}'s samples by quality", "pair", pairs_dir,
              (*data_gins, PAIR_GIN), merged(shared, pair_bindings, run.pair_bindings),
              (samples_dir,))
  # The data gins before dpo.gin: it registers the pairs ('prefs') in their place, while the
  # corpus's sizes (VOCAB_SIZE, the shared bindings) still reach the model.
  model_dir = os.path.join(output_dir, run.name)
  train = Step(
      f"DPO {run.name} from {os.path.basename(init_dir)} ({TASKS[run.mode]}, {run.steps} steps)",
      "train", model_dir, (model_gin, *data_gins, DPO_GIN),
      merged(shared, {"MODEL_DIR": model_dir, "MIXTURE_OR_TASK_NAME": TASKS[run.mode],
                      "TRAIN_STEPS": run.steps, "INITIAL_CHECKPOINT_PATH": init_dir,
                      "VOCABULARY": os.path.join(prompts_dir, VOCABULARY_FILE),
                      "PAIRS": pairs}, run.bindings),
      needs + (init_dir, prompts_dir, pairs_dir))
  return [sample, pair, train]
