"""Token accounting: how much of a task is annotation, and token-matched budgets.

Annotated and plain pretraining runs are matched on total tokens, so the
annotated run sees fewer document tokens; `token_report` measures by how much.
SFT arms are matched on examples: `examples_trained_on` counts what a run's
batches hold.
"""
import itertools
from typing import Optional

import numpy as np

from annotanchor.data import pipeline
from annotanchor.data.registration import mixture_or_task
from annotanchor.data.segments import ANNOTATION_MASK


def token_report(task_name: str, split: str = "validation", max_examples: Optional[int] = None,
                 sequence_length: Optional[dict[str, int]] = None) -> dict:
  """Counts tokens of a task's examples (in order, unshuffled).

  Args:
    task_name: a task whose preprocessors emit `targets_annotation_mask`.
    split: dataset split.
    max_examples: stop after this many examples (None: the whole split).
    sequence_length: trim as in training (None: whole sequences).

  Returns:
    `{"examples", "tokens", "annotation_tokens", "document_tokens",
    "annotation_fraction", "tokens_per_example"}`.
  """
  task = mixture_or_task(task_name, setting="task_name")
  ds = task.get_dataset(sequence_length, split=split, shuffle=False, seed=0)
  examples = tokens = annotation = 0
  for ex in itertools.islice(ds.as_numpy_iterator(), max_examples):
    mask = ex[ANNOTATION_MASK][:len(ex["targets"])]
    examples += 1
    tokens += len(ex["targets"])
    annotation += int(np.sum(mask))
  if not examples:
    raise ValueError(f"Task '{task_name}' has no examples in split '{split}'.")
  return {"task": task_name, "split": split, "examples": examples, "tokens": tokens,
          "annotation_tokens": annotation, "document_tokens": tokens - annotation,
          "annotation_fraction": annotation / tokens, "tokens_per_example": tokens / examples}


def document_tokens_seen(report: dict, token_budget: int) -> float:
  """Document (non-annotation) tokens a run of `token_budget` total tokens sees."""
  return token_budget * (1.0 - report["annotation_fraction"])


def examples_trained_on(mixture_or_task_name: str, task_feature_lengths: dict[str, int],
                        batch_size: int, steps: int) -> int:
  """Examples whose EOS is in the loss in a run's first `steps` training batches.

  Counts the batches `pipeline.get_dataset` gives training (packed, shuffled,
  seed 0). Every SFT response and pretraining document ends with a weighted EOS;
  annotation-only sequences have none, so an anchored SFT mixture counts only
  its SFT examples. E.g. a packed row
    targets  [p p a a r r 1 | a a a | 0 0]   (1 = EOS, 0 = padding)
    weights  [0 0 0 0 1 1 1 | 1 1 1 | 0 0]
  holds one SFT example (and one annotation-only sequence): it counts 1.
  """
  batches = pipeline.get_dataset(mixture_or_task_name, task_feature_lengths, batch_size)
  eos_id = mixture_or_task(mixture_or_task_name).output_features["targets"].vocabulary.eos_id
  count = 0
  for batch in itertools.islice(batches, steps):
    count += int(np.sum((batch["decoder_target_tokens"] == eos_id)
                        & (batch["decoder_loss_weights"] > 0)))
  return count
