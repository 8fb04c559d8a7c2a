"""Multiple-choice capability: task files, accuracy from choice log-likelihoods, result files.

A task file is JSONL, one question per line (the lm-eval-harness / OLMES shape):

  {"id": "tone-3", "context": "Grey clouds hung low over every", "choices": ["roof.",
   "night.", "door."], "gold": 0}

`id` is optional (default the record's number). A task can also be a function returning
such records, named by its import path (`read_choice_task`). The model scores each choice by the summed
log-probability of its tokens after the context (annotanchor/decoding/choice_scoring.py);
this module turns those scores into the two accuracies lm-eval-harness reports:

  acc       argmax of the log-likelihoods is gold;
  acc_norm  argmax of log-likelihood / len(choice) in characters is gold (lm-eval's
            length normalisation, so long choices are not penalised for their length);

each with its standard error sqrt(p (1 - p) / (n - 1)), as lm-eval-harness prints it.
A capability run writes capability.json (see `CapabilityResult`), which `evaluate` reads
next to the sample files: it knows no model.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Any, Mapping, Sequence

import numpy as np

from annotanchor.errors import UserError
from annotanchor.evaluation.hooks import import_callable


class CapabilityFileError(UserError, ValueError):
  """A malformed task file or capability result, naming the file and line."""


@dataclasses.dataclass(frozen=True)
class ChoiceExample:
  """One multiple-choice question: the context, its choices and the index of the right one."""
  id: str
  context: str
  choices: tuple[str, ...]
  gold: int


def read_choice_file(path: str) -> list[ChoiceExample]:
  """The questions of a task file.

  Raises:
    CapabilityFileError: a missing file, bad JSON or a bad record (see `choice_examples`).
  """
  try:
    with open(path, encoding="utf-8") as f:
      lines = list(f)
  except FileNotFoundError:
    raise CapabilityFileError(f"task file {path!r} does not exist") from None
  records = []
  for lineno, line in enumerate(lines, 1):
    if line.strip():
      try:
        records.append((f"{path}:{lineno}", json.loads(line)))
      except json.JSONDecodeError as e:
        raise CapabilityFileError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
  return choice_examples(records, f"task file {path!r}")


def is_import_path(source: str) -> bool:
  """Whether a task source names a function ("pkg.module:function") rather than a file."""
  return ":" in source and not os.path.exists(source)


def read_choice_task(source: str) -> list[ChoiceExample]:
  """The questions of a task: a JSONL path, or "pkg.module:function" returning the records
  (e.g. the storyworld probes, `tasks.storyworld.probes:probe_records`)."""
  if is_import_path(source):
    records = import_callable(source)()
    return choice_examples([(f"{source} record {i}", r) for i, r in enumerate(records, 1)],
                           source)
  return read_choice_file(source)


def choice_examples(records: Sequence[tuple[str, Any]], source: str) -> list[ChoiceExample]:
  """Checked questions from (where, record) pairs.

  Raises:
    CapabilityFileError: naming `where` for a record that is not an object with a string
      `context`, a list of at least two distinct non-empty string `choices` and an int
      `gold` indexing them, or a repeated id; naming `source` when there are no records.
  """
  examples, seen = [], set()
  for i, (where, record) in enumerate(records, 1):
    if not isinstance(record, dict):
      raise CapabilityFileError(f"{where}: expected a JSON object")
    context, choices, gold = record.get("context"), record.get("choices"), record.get("gold")
    if not isinstance(context, str):
      raise CapabilityFileError(f"{where}: 'context' must be a string")
    if (not isinstance(choices, list) or len(choices) < 2
        or not all(isinstance(c, str) and c for c in choices)):
      raise CapabilityFileError(f"{where}: 'choices' must be a list of at least two non-empty "
                                "strings")
    if len(set(choices)) != len(choices):
      raise CapabilityFileError(f"{where}: 'choices' repeats a choice")
    if isinstance(gold, bool) or not isinstance(gold, int) or not 0 <= gold < len(choices):
      raise CapabilityFileError(f"{where}: 'gold' must be an index into the {len(choices)} "
                                f"choices, got {gold!r}")
    example_id = str(record.get("id", i))
    if example_id in seen:
      raise CapabilityFileError(f"{where}: id {example_id!r} occurs twice")
    seen.add(example_id)
    examples.append(ChoiceExample(example_id, context, tuple(choices), gold))
  if not examples:
    raise CapabilityFileError(f"{source} holds no questions")
  return examples


def fewshot_context(example: ChoiceExample, shots: Sequence[ChoiceExample],
                    delimiter: str, separator: str) -> str:
  """The example's context after `shots` solved examples, lm-eval-harness style.

  A shot with context "The sky is" and gold choice "blue.", delimiter " ", separator
  "\\n\\n", before the question "Grass is": "The sky is blue.\\n\\nGrass is".
  """
  solved = [s.context + delimiter + s.choices[s.gold] for s in shots]
  return separator.join(solved + [example.context])


def pick_shots(examples: Sequence[ChoiceExample], index: int, k: int,
               seed: int) -> list[ChoiceExample]:
  """`k` other examples of the same task as shots for examples[index], fixed by the seed."""
  if k == 0:
    return []
  if k >= len(examples):
    raise UserError(f"num_fewshot={k} needs more than {k} questions in the task; it has "
                    f"{len(examples)}")
  rng = np.random.default_rng([seed, index])
  others = [i for i in range(len(examples)) if i != index]
  return [examples[i] for i in rng.choice(others, size=k, replace=False)]


def _proportion(hits: np.ndarray) -> dict[str, float]:
  n = hits.size
  p = float(hits.mean())
  stderr = math.sqrt(p * (1 - p) / (n - 1)) if n > 1 else float("nan")
  return {"value": p, "stderr": None if math.isnan(stderr) else stderr}


def accuracy(examples: Sequence[ChoiceExample],
             logliks: Sequence[Sequence[float]]) -> dict[str, Any]:
  """acc and acc_norm (with standard errors) of a task from each choice's log-likelihood.

  Ties go to the first choice (numpy's argmax), as in lm-eval-harness.

  Returns:
    {"acc": {"value", "stderr"}, "acc_norm": {...}, "num_examples": n}.
  """
  acc, acc_norm = [], []
  for example, scores in zip(examples, logliks, strict=True):
    scores = np.asarray(scores, np.float64)
    lengths = np.array([len(c) for c in example.choices], np.float64)
    acc.append(int(np.argmax(scores)) == example.gold)
    acc_norm.append(int(np.argmax(scores / lengths)) == example.gold)
  return {"acc": _proportion(np.array(acc)), "acc_norm": _proportion(np.array(acc_norm)),
          "num_examples": len(acc)}


RESULT_FILE = "capability.json"


@dataclasses.dataclass(frozen=True)
class CapabilityResult:
  """What capability.json holds: one arm's accuracy per task, and how it was measured.

  Attributes:
    arm: a label: the arm or run that was scored.
    run: what was scored and how (checkpoint, task files, formatting); a rerun with the
      same run finds the result done.
    tasks: task name -> the `accuracy` dict.
  """
  arm: str
  run: Mapping[str, Any]
  tasks: Mapping[str, Mapping[str, Any]]

  def to_json(self) -> str:
    return json.dumps({"arm": self.arm, "run": self.run, "tasks": self.tasks}, indent=1,
                      sort_keys=True, allow_nan=False) + "\n"

  @classmethod
  def read(cls, path: str) -> CapabilityResult:
    """Raises CapabilityFileError for a missing or malformed file."""
    try:
      with open(path, encoding="utf-8") as f:
        data = json.load(f)
      return cls(arm=data["arm"], run=data["run"], tasks=data["tasks"])
    except FileNotFoundError:
      raise CapabilityFileError(f"capability result {path!r} does not exist (run "
                                "`annotanchor capability` for that arm)") from None
    except (json.JSONDecodeError, KeyError, TypeError) as e:
      raise CapabilityFileError(f"{path}: not a capability result ({e})") from None


def capability_by_arm(files: Mapping[str, str], arms: Sequence[str]) -> dict[str, dict]:
  """{arm: {task: accuracy}} from capability.json files keyed by arm.

  Capability belongs to a checkpoint, so arms that sample the same one (an ablation of
  the decoding) may share a file; the result's own `arm` is its label, not checked.

  Raises:
    CapabilityFileError: a file for an arm the report does not have, or arms measured on
      different tasks.
  """
  out = {}
  for arm, path in files.items():
    if arm not in arms:
      raise CapabilityFileError(f"CAPABILITY_FILES names arm {arm!r}, which no sample file "
                                f"holds (arms: {list(arms)})")
    out[arm] = dict(CapabilityResult.read(path).tasks)
  task_sets = {tuple(sorted(t)) for t in out.values()}
  if len(task_sets) > 1:
    raise CapabilityFileError(f"the capability files measure different tasks: "
                              f"{sorted(task_sets)}")
  return {a: out[a] for a in arms if a in out}
