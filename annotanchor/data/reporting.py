"""Token accounting: how much of a task is annotation, and token-matched budgets.

Annotated and plain pretraining runs are matched on total tokens, so the
annotated run sees fewer document tokens; `token_report` measures by how much.
"""
import itertools
from typing import Optional

import numpy as np
import seqio

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
  task = seqio.get_mixture_or_task(task_name)
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
