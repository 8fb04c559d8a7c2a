"""File sources whose records are validated before tf.data reads them.

Records used to be read and checked inside a `tf.data.Dataset.from_generator` pipeline:
a bad record surfaced as a py_func traceback, and tearing the failed pipeline down left
the process hanging. Here every input file is read and checked in plain Python when the
dataset is built (`seqio.get_dataset`), before any pipeline exists, so a bad record stops
the run with the `SourceError` that names file and record. The checked examples are
written once to a TFRecord file of `tf.train.Example`s in a cache and tf.data reads those
natively: no Python runs inside the input pipeline.

Cache layout: `<cache_dir>/validated/<key>.tfrecord` and `<key>.json` (the counts of
records kept and skipped), written to temporary names and renamed, so concurrent
processes agree on one. The key hashes the file's path, size and modification time, the
converter (fields, annotation format, and for SFT records whether every record must carry
an annotation: the anchored and the standard SFT tasks validate one file apart) and the
bad-record policy: an edited file or another setting is validated anew.

With `on_error="skip"` each bad record is logged once, when its file is validated, and
each file's skips are summed up in one line whenever a dataset is built from it.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from typing import Callable, ClassVar, Mapping, Optional, Sequence

import seqio
import tensorflow as tf

from annotanchor.atomic_files import write_json_atomic, write_with
from annotanchor.data import annotations as ann_lib
from annotanchor.data import sources
from annotanchor.data.chat_template import ChatTemplate
from annotanchor.data.prompts import PromptTemplate

# Bump when the cached layout or validation changes, so old caches are not reused.
CACHE_VERSION = 1

# A predicate over a parsed example, run inside tf.data (e.g. "is a story").
KeepFn = Callable[[Mapping[str, tf.Tensor]], tf.Tensor]


def default_cache_dir() -> str:
  """Root of annotanchor's caches: $ANNOTANCHOR_CACHE_DIR, else ~/.cache/annotanchor."""
  return os.environ.get("ANNOTANCHOR_CACHE_DIR") or os.path.expanduser("~/.cache/annotanchor")


@dataclasses.dataclass(frozen=True)
class Documents:
  """Annotated document records, their annotations in `fmt` (the corpus template's), ->
  `{"chunks": [...], "annotations": [...]}`."""
  fmt: ann_lib.AnnotationFormat
  fields: sources.DocumentFields = sources.DocumentFields()
  signature: ClassVar[dict[str, tf.TensorSpec]] = {
      "chunks": tf.TensorSpec([None], tf.string),
      "annotations": tf.TensorSpec([None], tf.string)}

  def __call__(self, record: sources.Record, where: str) -> dict:
    return sources.document_example(record, where, self.fmt, self.fields)


@dataclasses.dataclass(frozen=True)
class SftExamples:
  """SFT records, their annotations in `fmt`, -> `{"prompt", "response", "annotation"}`.

  `anchored`: every record must carry its annotation (the anchored tasks); False: a record
  may lack it (the standard task; its `annotation` is then ""). Left out of the repr, so
  the anchored validation keeps the cache key it always had (`_cache_key` keys the other).
  """
  fmt: ann_lib.AnnotationFormat
  fields: sources.SftFields = sources.SftFields()
  anchored: bool = dataclasses.field(default=True, repr=False)
  signature: ClassVar[dict[str, tf.TensorSpec]] = {
      k: tf.TensorSpec([], tf.string) for k in ("prompt", "response", "annotation")}

  def __call__(self, record: sources.Record, where: str) -> dict:
    return sources.sft_example(record, where, self.fmt, self.fields, anchored=self.anchored)


@dataclasses.dataclass(frozen=True)
class ChatExamples:
  """Chat SFT records (`messages`) -> `{"pieces", "kinds"}`, laid out in `template` or, when
  given, in a Hugging Face `chat_template` (annotations still in `template`'s format).

  `anchored`: every assistant message must carry its annotation; False: any may lack it
  (as `SftExamples.anchored`, out of the repr too).
  """
  template: PromptTemplate
  field: str = "messages"
  chat_template: Optional[ChatTemplate] = None
  anchored: bool = dataclasses.field(default=True, repr=False)
  signature: ClassVar[dict[str, tf.TensorSpec]] = {
      "pieces": tf.TensorSpec([None], tf.string), "kinds": tf.TensorSpec([None], tf.string)}

  def __call__(self, record: sources.Record, where: str) -> dict:
    return sources.chat_example(record, where, self.field, self.template, self.chat_template,
                                anchored=self.anchored)


Converter = Documents | SftExamples | ChatExamples


def expand_patterns(patterns: Sequence[str]) -> list[str]:
  """Files matching `patterns` (globs, any tf.io.gfile path; `tfds:` names as they are).

  Raises:
    SourceError: when nothing matches.
  """
  files = [f for p in patterns
           for f in ([p] if p.startswith("tfds:") else sorted(tf.io.gfile.glob(p)))]
  if not files:
    raise sources.SourceError(f"No input files match {list(patterns)}.")
  return files


def _cache_key(path: str, convert: Converter, on_error: str) -> str:
  identity = {"path": path, "convert": repr(convert), "on_error": on_error,
              "version": CACHE_VERSION}
  if not getattr(convert, "anchored", True):
    # The standard SFT validation (annotations optional) keeps apart from the anchored one,
    # whose key (and existing caches) are as they were before it existed.
    identity["annotations"] = "optional"
  if not path.startswith("tfds:"):  # A TFDS name is versioned by itself.
    stat = tf.io.gfile.stat(path)
    identity.update(length=stat.length, mtime_nsec=stat.mtime_nsec)
  return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:24]


def _to_example(example: Mapping[str, str | Sequence[str]]) -> bytes:
  feature = {}
  for key, value in example.items():
    values = [value] if isinstance(value, str) else list(value)
    feature[key] = tf.train.Feature(
        bytes_list=tf.train.BytesList(value=[v.encode("utf-8") for v in values]))
  return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def validated_file(path: str, convert: Converter, *, on_error: str = "raise",
                   cache_dir: Optional[str] = None) -> tuple[str, dict[str, int]]:
  """The TFRecord of `path`'s validated examples, written on first use.

  Args:
    path: a JSONL, text or TFRecord file, or `tfds:NAME:SPLIT`.
    convert: checks a record and returns its example (`Documents`, `SftExamples`).
    on_error: "raise" (the first bad record stops with its SourceError) or "skip".
    cache_dir: root of the cache (default `default_cache_dir()`).

  Returns:
    (the TFRecord path, {"kept": N, "skipped": M}).

  Raises:
    SourceError: a bad record (on_error="raise"), or a file with no good record left.
  """
  directory = os.path.join(cache_dir or default_cache_dir(), "validated")
  base = os.path.join(directory, _cache_key(path, convert, on_error))
  output, counts_path = base + ".tfrecord", base + ".json"
  if tf.io.gfile.exists(counts_path):
    with tf.io.gfile.GFile(counts_path) as f:
      counts = json.load(f)
    if counts["skipped"]:  # read_examples logged each of them when the file was validated.
      logging.warning("%s: skipped %d bad records, kept %d (validated earlier: %s).", path,
                      counts["skipped"], counts["kept"], output)
  else:
    report = sources.SkipReport()

    def write(tmp):
      with tf.io.TFRecordWriter(tmp) as writer:
        for example in sources.read_examples([path], convert, on_error, report):
          writer.write(_to_example({k: example[k] for k in convert.signature}))
      if not report.read[path]:
        raise sources.SourceError(f"{path}: no valid record ({report.skipped[path]} skipped).")
    write_with(output, write)
    counts = {"kept": report.read[path], "skipped": report.skipped[path]}
    write_json_atomic(counts_path, counts)
  return output, counts


def _parse_fn(signature: Mapping[str, tf.TensorSpec]):
  spec = {k: tf.io.FixedLenFeature([], tf.string) if s.shape.rank == 0
          else tf.io.VarLenFeature(tf.string) for k, s in signature.items()}

  def parse(serialized):
    parsed = tf.io.parse_single_example(serialized, spec)
    return {k: tf.sparse.to_dense(v) if isinstance(v, tf.sparse.SparseTensor) else v
            for k, v in parsed.items()}
  return parse


def file_source(splits: Sequence[str], patterns: Callable[[str], str | Sequence[str]],
                convert: Converter, *, on_error: str = "raise",
                cache_dir: Callable[[], Optional[str]] | Optional[str] = None,
                keep: Optional[KeepFn] = None) -> seqio.DataSource:
  """A SeqIO source over record files, validated (once, cached) when a dataset is built.

  Args:
    splits: the source's splits.
    patterns: split -> file pattern(s), called when a dataset of that split is built (so
      a generated corpus need not exist before it is read).
    convert: `Documents(...)` or `SftExamples(...)`.
    on_error: "raise" or "skip" (see `validated_file`).
    cache_dir: root of the cache, or a function returning it when a dataset is built
      (default `default_cache_dir()`).
    keep: optional predicate over parsed examples; only those it keeps are read.
  """
  sources.check_on_error(on_error)  # At registration, not at the first dataset.

  def dataset_fn(split: str, shuffle_files: bool, seed: Optional[int] = None) -> tf.data.Dataset:
    del shuffle_files, seed  # The Task shuffles examples.
    split_patterns = patterns(split)
    split_patterns = [split_patterns] if isinstance(split_patterns, str) else split_patterns
    root = cache_dir() if callable(cache_dir) else cache_dir
    files = [validated_file(path, convert, on_error=on_error, cache_dir=root)[0]
             for path in expand_patterns(split_patterns)]
    ds = tf.data.TFRecordDataset(files).map(_parse_fn(convert.signature),
                                            num_parallel_calls=tf.data.AUTOTUNE)
    return ds.filter(keep) if keep else ds
  return seqio.FunctionDataSource(dataset_fn, splits=list(splits))
