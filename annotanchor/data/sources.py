"""Reading annotated documents and SFT examples from JSONL, text, TFRecord or TFDS sources.

Record layouts (field names configurable):

* document: `{"text": "chunk\\n\\nchunk", "annotations": [ann, ann]}` with one
  annotation per blank-line-separated chunk, each either the annotation text
  `"<ann> k:v ... </ann>"` or a `{key: value}` object;
* SFT example: `{"prompt": ..., "response": ..., "annotation": ann}`, or a chat record
  `{"messages": [...]}` whose assistant messages carry their `annotation`. The anchored SFT
  tasks need the annotation on every record (assistant message); the standard SFT task
  reads records with or without it (`anchored=False`), and checks one that is there.

Bad records stop reading with a `SourceError` that names the file and the
record, or, with `on_error="skip"`, are logged, counted and summed up per file
(`SkipReport`); nothing vanishes silently.
"""
import dataclasses
import json
import logging
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence

import gin
import tensorflow as tf

from annotanchor.data import annotations as ann_lib
from annotanchor.data import chat_template as chat_lib
from annotanchor.data import conversations
from annotanchor.data.chat_template import ChatTemplate
from annotanchor.data.prompts import PromptTemplate
from annotanchor.errors import SettingError, UserError

Record = Mapping[str, Any]


class SourceError(UserError, ValueError):
  """A bad input record; the message names file and record."""


@gin.configurable
@dataclasses.dataclass(frozen=True)
class DocumentFields:
  """Field names of document records."""
  text: str = "text"
  annotations: str = "annotations"


@gin.configurable
@dataclasses.dataclass(frozen=True)
class SftFields:
  """Field names of SFT records."""
  prompt: str = "prompt"
  response: str = "response"
  annotation: str = "annotation"


@dataclasses.dataclass
class SkipReport:
  """Counts of records read and skipped, per file, for `on_error="skip"`."""
  read: dict[str, int] = dataclasses.field(default_factory=dict)
  skipped: dict[str, int] = dataclasses.field(default_factory=dict)


def _decode_json(line: bytes, where: str) -> Record:
  try:
    text = line.decode("utf-8")
  except UnicodeDecodeError as e:
    raise SourceError(f"{where}: not UTF-8 text ({e.reason} at byte {e.start}).") from None
  try:
    record = json.loads(text)
  except json.JSONDecodeError as e:
    raise SourceError(f"{where}: malformed JSON ({e.msg}).") from None
  if not isinstance(record, dict):
    raise SourceError(f"{where}: expected a JSON object.")
  return record


def _decode_example(raw: bytes, where: str) -> Record:
  """A serialized `tf.train.Example` as a dict of lists of strings."""
  try:
    example = tf.train.Example.FromString(raw)
  except Exception as e:  # protobuf raises its own DecodeError
    raise SourceError(f"{where}: not a tf.train.Example ({e}).") from None
  record = {}
  for key, feature in example.features.feature.items():
    record[key] = [v.decode("utf-8") for v in feature.bytes_list.value]
  return record


def _read_text(path: str, where: str) -> str:
  try:
    with tf.io.gfile.GFile(path, "rb") as f:
      return f.read().decode("utf-8")
  except UnicodeDecodeError as e:
    raise SourceError(f"{where}: not UTF-8 text ({e.reason} at byte {e.start}).") from None


def _decode_tfds(example: Mapping[str, Any]) -> Record:
  decode = lambda v: v.decode("utf-8") if isinstance(v, bytes) else v
  return {k: [decode(x) for x in v] if hasattr(v, "__len__") and not isinstance(v, (bytes, str))
          else decode(v) for k, v in example.items()}


def read_records(path: str) -> Iterator[tuple[str, Callable[[], Record]]]:
  """Yields (where, decode) per record of a JSONL (`.jsonl`), text (`.txt`) or TFRecord file,
  or a TFDS split.

  A TFDS split is named `tfds:NAME:SPLIT` (e.g. `tfds:my_docs/1.0.0:train`),
  loaded with `tfds.load`. A text file is one record, `{"text": <the whole file>}`.
  `where` is "FILE, record N" (in a JSONL file N is the line number); `decode()`
  returns the record as a dict or raises SourceError, so a reader can skip a bad record
  and go on.
  """
  if path.startswith("tfds:"):
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
    _, name, split = path.split(":")
    for number, example in enumerate(tfds.as_numpy(tfds.load(name, split=split)), start=1):
      yield f"{path}, record {number}", lambda example=example: _decode_tfds(example)
    return
  if path.endswith(".txt"):
    where = f"{path}, record 1"
    yield where, lambda: {"text": _read_text(path, where)}
    return
  if path.endswith(".jsonl"):
    with tf.io.gfile.GFile(path, "rb") as f:  # Bytes: a line that is not UTF-8 is one bad record.
      for number, line in enumerate(f, start=1):
        if line.strip():
          where = f"{path}, record {number}"
          yield where, lambda line=line, where=where: _decode_json(line, where)
    return
  records = tf.data.TFRecordDataset(path).as_numpy_iterator()
  number = 0
  while True:
    try:
      raw = next(records)
    except StopIteration:
      return
    except tf.errors.DataLossError:  # Nothing after a damaged record can be read.
      raise SourceError(f"{path}, record {number + 1}: truncated or corrupt TFRecord file.") from None
    number += 1
    where = f"{path}, record {number}"
    yield where, lambda raw=raw, where=where: _decode_example(raw, where)


def record_field(record: Record, name: str, where: str, scalar: bool = False) -> Any:
  """A record's field; `scalar` unwraps a one-value list (TFRecord features are lists)."""
  if name not in record:
    raise SourceError(f"{where}: missing field '{name}' (has {sorted(record)}).")
  value = record[name]
  return value[0] if scalar and isinstance(value, list) and len(value) == 1 else value


def _body(annotation: Any, fmt: ann_lib.AnnotationFormat) -> str:
  tags = (ann_lib.make_tags(annotation) if isinstance(annotation, dict)
          else ann_lib.parse_annotation(str(annotation), fmt, strict=True))
  return ann_lib.format_body(tags)


def document_example(record: Record, where: str, fmt: ann_lib.AnnotationFormat,
                     fields: DocumentFields = DocumentFields()) -> dict[str, list[str]]:
  """Validates a document record, its annotations in `fmt`, into `{"chunks", "annotations"}`
  (bodies)."""
  text = record_field(record, fields.text, where, scalar=True)
  chunks = ann_lib.split_chunks(text) if isinstance(text, str) else []
  if not chunks:
    raise SourceError(f"{where}: empty document in field '{fields.text}'.")
  raw = record_field(record, fields.annotations, where)
  if not isinstance(raw, list) or len(raw) != len(chunks):
    count = len(raw) if isinstance(raw, list) else "not a list"
    raise SourceError(f"{where}: {len(chunks)} chunks but {count} annotations in "
                      f"'{fields.annotations}'.")
  bodies = []
  for i, annotation in enumerate(raw):
    try:
      bodies.append(_body(annotation, fmt))
    except ann_lib.AnnotationError as e:
      raise SourceError(f"{where}: annotation {i} does not parse: {e}") from None
  return {"chunks": chunks, "annotations": bodies}


# Why an anchored SFT source refuses a record with no annotation, and that the standard
# one would not.
_ANCHORED_NEEDS = ("the anchored SFT tasks (*_sft_anchored, *_anchored_sft_mixture) need one "
                   "on every {what}; the standard SFT task (*_sft) does not")


def _absent(value: Any) -> bool:
  """A missing annotation: JSON null or an empty TFRecord feature (no value)."""
  return value is None or (isinstance(value, list) and not value)


def sft_example(record: Record, where: str, fmt: ann_lib.AnnotationFormat,
                fields: SftFields = SftFields(), anchored: bool = True) -> dict[str, str]:
  """Validates an SFT record into `{"prompt", "response", "annotation"}` (the annotation's
  body, "" when the record has none).

  Args:
    record: the record.
    where: "FILE, record N", for messages.
    fmt: the annotation format of the corpus.
    fields: the field names.
    anchored: the record must carry an annotation (the anchored tasks); False: it may
      (the standard task), and one that is there must still parse.

  Raises:
    SourceError: naming `where` and the field.
  """
  example = {}
  for key, name in (("prompt", fields.prompt), ("response", fields.response)):
    value = record_field(record, name, where, scalar=True)
    if not isinstance(value, str) or not value.strip():
      raise SourceError(f"{where}: field '{name}' is empty or not a string.")
    example[key] = value
  raw = record.get(fields.annotation)
  raw = raw[0] if isinstance(raw, list) and len(raw) == 1 else raw
  if _absent(raw):
    if anchored:
      missing = "missing field" if fields.annotation not in record else "no value in field"
      raise SourceError(f"{where}: {missing} '{fields.annotation}' (has {sorted(record)}): "
                        + _ANCHORED_NEEDS.format(what="record") + ".")
    example["annotation"] = ""
    return example
  try:
    example["annotation"] = _body(raw, fmt)
  except ann_lib.AnnotationError as e:
    raise SourceError(f"{where}: field '{fields.annotation}': annotation does not parse: "
                      f"{e}") from None
  return example


def chat_example(record: Record, where: str, field: str, template: PromptTemplate,
                 chat_template: Optional[ChatTemplate] = None,
                 anchored: bool = True) -> dict[str, list[str]]:
  """Validates a `messages` record into its training pieces and their kinds, laid out in
  our template (`conversations.training_pieces`) or in a Hugging Face chat template
  (`chat_template.training_pieces`).

  An assistant message's `annotation` (`"<ann> k:v </ann>"` or a {key: value} object) is
  placed before its content (the anchored tasks keep it, the standard ones leave it out).
  With `anchored` every assistant message must carry one; without, any may lack it (its
  turn then has no annotation pieces), and one that is there must still parse.

  Raises:
    SourceError: naming `where`, `field` and the message at fault.
  """
  messages = record_field(record, field, where)
  fmt = template.annotation_format
  try:
    turns = conversations.conversation_turns(messages)
    bodies = {}
    for role, text, i in turns:
      if not text:
        raise conversations.ConversationError(f"messages[{i}] ({role}) is empty")
      if role != "assistant":
        continue
      if _absent(messages[i].get("annotation")):
        if not anchored:
          continue
        raise conversations.ConversationError(
            f"messages[{i}] (assistant) has no 'annotation': "
            + _ANCHORED_NEEDS.format(what="assistant message"), f"messages[{i}].annotation")
      try:
        bodies[i] = _body(messages[i]["annotation"], fmt)
      except ann_lib.AnnotationError as e:
        raise conversations.ConversationError(
            f"messages[{i}].annotation does not parse: {e}") from None
    if chat_template is None:
      pieces, kinds = conversations.training_pieces(
          turns, template, [bodies.get(i, "") for _, _, i in turns])
    else:
      shown = [{"role": m["role"], "content": conversations.message_text(m, i)}
               for i, m in enumerate(messages)]
      pieces, kinds = chat_lib.training_pieces(
          shown, chat_template, fmt, [bodies.get(i, "") for i in range(len(messages))])
  except conversations.ConversationError as e:
    raise SourceError(f"{where}: field '{field}': {e}") from None
  return {"pieces": pieces, "kinds": kinds}


def check_on_error(on_error: str) -> None:
  """Refuses a bad-record policy other than "raise" and "skip"."""
  if on_error not in ("raise", "skip"):
    raise SettingError(f"on_error must be 'raise' or 'skip', got {on_error!r}.")


def read_examples(paths: Sequence[str], convert: Callable[[Record, str], dict],
                  on_error: str = "raise", report: Optional[SkipReport] = None) -> Iterator[dict]:
  """Reads and validates records from JSONL (`.jsonl`) or TFRecord files.

  Args:
    paths: files or glob patterns (any tf.io.gfile path), or `tfds:NAME:SPLIT`.
    convert: `(record, where) -> example`, raising SourceError on bad input.
    on_error: "raise" (stop at the first bad record) or "skip" (log, count).
    report: filled with per-file counts when given.

  Yields:
    Validated examples.
  """
  check_on_error(on_error)
  report = report if report is not None else SkipReport()
  files = [f for p in paths for f in ([p] if p.startswith("tfds:") else sorted(tf.io.gfile.glob(p)))]
  if not files:
    raise SourceError(f"No input files match {list(paths)}.")
  for path in files:
    report.read[path] = report.skipped[path] = 0
    for where, decode in read_records(path):
      try:
        example = convert(decode(), where)
      except SourceError as e:
        if on_error == "raise":
          raise
        report.skipped[path] += 1
        logging.warning("Skipping bad record: %s", e)
        continue
      report.read[path] += 1
      yield example
    if report.skipped[path]:
      logging.warning("%s: skipped %d bad records, kept %d.", path, report.skipped[path],
                      report.read[path])
