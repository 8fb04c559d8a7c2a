"""The sample-file schema shared by `infer` (writer) and `evaluate` (reader).

A sample file is JSONL, one object per sample:

  {"prompt_id": "p0", "prompt": "Tell a story.", "annotation": "<ann> genre:mystery </ann>",
   "response": "...", "sample_index": 0, "arm": "anchored",
   "decoding": {"temperature": 1.0, "top_k": 0, "top_p": 1.0, "max_new_tokens": 256,
                "mode": "anchored", "seed": 0}}

`annotation` may be empty (direct decoding). `decoding` may carry more keys than the
required ones (e.g. an annotation temperature); they are kept as they are. One of them,
`annotation_format` ({"open": "[[", "close": "]]"}), names the delimiters the checkpoint
was trained with where they are not the standard `<ann>`/`</ann>`; evaluation parses
the annotations with it (`annotation_format`).
"""
import dataclasses
import json
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

from annotanchor.atomic_files import write_atomic
from annotanchor.data.annotations import AnnotationError, AnnotationFormat
from annotanchor.errors import UserError

DECODING_KEYS = ("temperature", "top_k", "top_p", "max_new_tokens", "mode", "seed")
FORMAT_KEY = "annotation_format"


class SampleFileError(UserError, ValueError):
  """A sample file is malformed, or the files of several arms do not fit together."""


@dataclasses.dataclass(frozen=True)
class Sample:
  """One sampled response to one prompt.

  Attributes:
    prompt_id: stable id of the prompt; the key that pairs samples across arms.
    prompt: the prompt text.
    annotation: the sampled (or given) annotation, `<ann> tags </ann>`; "" when none.
    response: the response text with the annotation stripped.
    sample_index: 0..N-1 among the samples of this prompt.
    arm: the model or arm name (base, sft, anchored, an ablation).
    decoding: the decoding settings (at least DECODING_KEYS).
  """
  prompt_id: str
  prompt: str
  annotation: str
  response: str
  sample_index: int
  arm: str
  decoding: Mapping[str, Any]

  def to_json(self) -> str:
    """Returns the sample as one JSON line (no trailing newline)."""
    return json.dumps(dataclasses.asdict(self), ensure_ascii=False, sort_keys=True)

  @classmethod
  def from_json(cls, line: str, where: str = "<string>") -> "Sample":
    """Parses and validates one JSON line.

    Args:
      line: the JSON text of one sample.
      where: named in errors, e.g. "samples.jsonl:12".

    Returns:
      The sample.

    Raises:
      SampleFileError: bad JSON, a missing field or a field of the wrong type.
    """
    try:
      obj = json.loads(line)
    except json.JSONDecodeError as e:
      raise SampleFileError(f"{where}: not valid JSON ({e.msg} at column {e.colno})") from None
    return cls.from_dict(obj, where)

  @classmethod
  def from_dict(cls, obj: Any, where: str = "<dict>") -> "Sample":
    """Validates a decoded JSON object; see `from_json`."""
    if not isinstance(obj, dict):
      raise SampleFileError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    types = {"prompt_id": str, "prompt": str, "annotation": str, "response": str,
             "sample_index": int, "arm": str, "decoding": dict}
    missing = [k for k in types if k not in obj]
    if missing:
      raise SampleFileError(f"{where}: missing field(s) {', '.join(missing)}")
    for key, typ in types.items():
      value = obj[key]
      # bool is an int in Python; a sample index of `true` is still a mistake.
      if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
        raise SampleFileError(
            f"{where}: field {key!r} should be {typ.__name__}, got {type(value).__name__}")
    if obj["sample_index"] < 0:
      raise SampleFileError(f"{where}: sample_index is negative ({obj['sample_index']})")
    missing_dec = [k for k in DECODING_KEYS if k not in obj["decoding"]]
    if missing_dec:
      raise SampleFileError(f"{where}: decoding lacks {', '.join(missing_dec)}")
    return cls(**{k: obj[k] for k in types})


def decoding_record(settings: Mapping[str, Any], fmt: AnnotationFormat) -> dict[str, Any]:
  """The `decoding` field of samples drawn with `settings` from a checkpoint whose
  annotations are in `fmt` (recorded where it is not the standard format, so records of
  standard runs stay as they were)."""
  if fmt == AnnotationFormat():
    return dict(settings)
  return {**settings, FORMAT_KEY: dataclasses.asdict(fmt)}


def annotation_format(samples: Sequence[Sample]) -> AnnotationFormat:
  """The one annotation format the samples were drawn in (see `decoding_record`).

  Raises:
    SampleFileError: samples in different formats, or a malformed format record.
  """
  first = {}  # Each distinct record (as JSON; "null" when absent) -> its first sample.
  for sample in samples:
    first.setdefault(json.dumps(sample.decoding.get(FORMAT_KEY), sort_keys=True), sample)
  if len(first) > 1:
    (a, one), (b, other) = list(first.items())[:2]
    raise SampleFileError(f"samples drawn in different annotation formats (arm {one.arm!r}: "
                          f"{a}, arm {other.arm!r}: {b}): evaluate checkpoints of one corpus "
                          "together")
  record, sample = next(iter(first.items()), ("null", None))
  if record == "null":
    return AnnotationFormat()
  try:
    return AnnotationFormat(**json.loads(record))
  except (TypeError, AnnotationError) as e:
    raise SampleFileError(f"arm {sample.arm!r}: decoding.{FORMAT_KEY} {record} is not an "
                          f"annotation format: {e}") from None


def write_samples(path: str, samples: Sequence[Sample]) -> None:
  """Writes samples as JSONL, atomically."""
  write_atomic(path, "".join(s.to_json() + "\n" for s in samples))


def read_samples(path: str) -> List[Sample]:
  """Reads and validates a JSONL sample file; blank lines are skipped.

  Raises:
    SampleFileError: naming the file and line of the first bad record, or an empty file.
  """
  return [s for _, s in _read_numbered(path)]


def _read_numbered(path: str) -> List[tuple]:
  """Like `read_samples`, as (line number, sample) pairs."""
  samples = []
  try:
    with open(path, encoding="utf-8") as f:
      for lineno, line in enumerate(f, 1):
        if line.strip():
          samples.append((lineno, Sample.from_json(line, f"{path}:{lineno}")))
  except FileNotFoundError:
    raise SampleFileError(f"{path}: no such sample file") from None
  except UnicodeDecodeError as e:
    raise SampleFileError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
  if not samples:
    raise SampleFileError(f"{path}: holds no samples")
  return samples


@dataclasses.dataclass(frozen=True)
class ArmSamples:
  """The validated samples of several arms, aligned by prompt.

  Attributes:
    prompt_ids: the prompt ids, sorted; the same for every arm.
    prompts: prompt id -> prompt text.
    num_samples: N, the samples per prompt (the same for every prompt and arm).
    by_arm: arm -> one list per prompt (in `prompt_ids` order) of N samples ordered
      by sample_index.
  """
  prompt_ids: List[str]
  prompts: Dict[str, str]
  num_samples: int
  by_arm: Dict[str, List[List[Sample]]]

  @property
  def arms(self) -> List[str]:
    return list(self.by_arm)


def load_arms(files: Union[Sequence[str], Mapping[str, str]],
              required_arms: Sequence[str] = ()) -> ArmSamples:
  """Reads sample files and checks that the arms fit together.

  Args:
    files: either a list of paths (arms are taken from each record's `arm` field; one
      file may hold several arms, one arm may span several files) or a mapping
      arm -> path (each file must hold exactly one arm value; the mapping's key names
      it in the report, so a run called "sft-v3" can be reported as "sft").
    required_arms: arms that must be present.

  Returns:
    The aligned samples.

  Raises:
    SampleFileError: an arm missing, a duplicate (arm, prompt, sample_index), gaps in
      sample indices, prompts that differ between arms (ids or texts), or differing
      sample counts; the message names the file and line or the arm and prompt.
  """
  # arm -> prompt_id -> sample_index -> (sample, "file:line")
  table: Dict[str, Dict[str, Dict[int, tuple]]] = {}
  pairs = list(files.items()) if isinstance(files, Mapping) else [(None, p) for p in files]
  if not pairs:
    raise SampleFileError("no sample files given")
  for arm_name, path in pairs:
    numbered = _read_numbered(path)
    if arm_name is not None:
      found = sorted({s.arm for _, s in numbered})
      if len(found) != 1:
        raise SampleFileError(
            f"{path}: given as arm {arm_name!r} but holds several arms {found}")
    for lineno, s in numbered:
      arm = arm_name if arm_name is not None else s.arm
      slot = table.setdefault(arm, {}).setdefault(s.prompt_id, {})
      where = f"{path}:{lineno}"
      if s.sample_index in slot:
        raise SampleFileError(
            f"{where}: duplicate sample_index {s.sample_index} for arm {arm!r}, prompt "
            f"{s.prompt_id!r} (first seen in {slot[s.sample_index][1]})")
      slot[s.sample_index] = (s, where)

  missing = [a for a in required_arms if a not in table]
  if missing:
    raise SampleFileError(
        f"arm(s) {', '.join(map(repr, missing))} missing; the files hold {sorted(table)}")

  arms = list(table)
  ref_arm = arms[0]
  ref_ids = set(table[ref_arm])
  for arm in arms[1:]:
    ids = set(table[arm])
    if ids != ref_ids:
      only_ref, only_arm = sorted(ref_ids - ids)[:5], sorted(ids - ref_ids)[:5]
      raise SampleFileError(
          f"prompts differ between arms {ref_arm!r} and {arm!r}: only in {ref_arm!r}: "
          f"{only_ref}; only in {arm!r}: {only_arm}")

  prompt_ids = sorted(ref_ids)
  prompts: Dict[str, str] = {}
  num_samples: Optional[int] = None
  by_arm: Dict[str, List[List[Sample]]] = {}
  for arm in arms:
    rows = []
    for pid in prompt_ids:
      slot = table[arm][pid]
      n = len(slot)
      if sorted(slot) != list(range(n)):
        raise SampleFileError(
            f"arm {arm!r}, prompt {pid!r}: sample indices {sorted(slot)} are not 0..{n - 1}")
      if num_samples is None:
        num_samples, first = n, (arm, pid)
      elif n != num_samples:
        raise SampleFileError(
            f"different sample counts: arm {arm!r}, prompt {pid!r} has {n}, arm "
            f"{first[0]!r}, prompt {first[1]!r} has {num_samples}")
      row = [slot[i][0] for i in range(n)]
      for s, where in (slot[i] for i in range(n)):
        if pid not in prompts:
          prompts[pid], prompt_where = s.prompt, where
        elif s.prompt != prompts[pid]:
          raise SampleFileError(
              f"{where}: prompt text of {pid!r} differs from the one in {prompt_where}")
      rows.append(row)
    by_arm[arm] = rows
  return ArmSamples(prompt_ids=prompt_ids, prompts=prompts, num_samples=num_samples,
                    by_arm=by_arm)
