"""Output shards of an annotation run: names, atomic writes, markers, the run manifest.

In OUTPUT_DIR, shard j of a JSONL run is

  annotated-0000j.jsonl         the annotated documents, in input order (what the data
                                tasks read: `JsonlCorpus.documents = {"train": ".../annotated-*.jsonl"}`)
  annotated-0000j.jsonl.done    its marker: the shard's ShardStats as JSON
  failures-0000j.jsonl          its failed chunks and bad records, one JSON object a line

Each file is written atomically (`annotanchor.atomic_files`: local disks and object stores);
the marker comes last. A shard with a marker is finished; one without is redone
from scratch, so a killed run loses no document and writes none twice. `annotate_run.json`
records the inputs and layout, and a rerun with other ones is refused.

A document record: {"id": ..., "text": "chunk\\n\\nchunk", "annotations": ["<ann> k:v </ann>", ...]}
(`annotanchor.data.sources.document_example` reads it back into the same chunks); in a
TFRecord shard the same three fields are bytes features of a tf.train.Example.
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Mapping, Optional, Sequence

import tensorflow as tf

from annotanchor.annotation.summary import ShardStats
from annotanchor.atomic_files import write_atomic, write_with
from annotanchor.errors import SettingError, UserError

FORMATS = {"jsonl": "jsonl", "tfrecord": "tfrecord"}
MANIFEST = "annotate_run.json"


class ShardError(UserError, ValueError):
  """The output directory holds another run's shards."""


def _example(record: Mapping[str, Any]) -> bytes:
  feature = lambda values: tf.train.Feature(
      bytes_list=tf.train.BytesList(value=[v.encode("utf-8") for v in values]))
  features = {k: feature(v if isinstance(v, list) else [v]) for k, v in record.items()}
  return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()


@dataclasses.dataclass(frozen=True)
class ShardLayout:
  """Where shard j's files go.

  Attributes:
    output_dir: the run's directory (any tf.io.gfile path).
    output_format: "jsonl" or "tfrecord".
    prefix: the shard files' prefix.
  """
  output_dir: str
  output_format: str = "jsonl"
  prefix: str = "annotated"

  def __post_init__(self):
    if self.output_format not in FORMATS:
      raise SettingError(f"output_format={self.output_format!r}; expected one of {list(FORMATS)}")

  def path(self, shard: int) -> str:
    return os.path.join(self.output_dir, f"{self.prefix}-{shard:05d}.{FORMATS[self.output_format]}")

  def marker(self, shard: int) -> str:
    return self.path(shard) + ".done"

  def failures(self, shard: int) -> str:
    return os.path.join(self.output_dir, f"failures-{shard:05d}.jsonl")

  def pattern(self) -> str:
    """The glob of the finished shards, for a data task."""
    return os.path.join(self.output_dir, f"{self.prefix}-*.{FORMATS[self.output_format]}")

  def finished(self, shard: int) -> Optional[ShardStats]:
    """The stats of a finished shard, or None if it is not finished."""
    if not tf.io.gfile.exists(self.marker(shard)):
      return None
    with tf.io.gfile.GFile(self.marker(shard)) as f:
      return ShardStats.from_json(json.load(f))

  def finished_shards(self) -> dict[int, ShardStats]:
    """Every finished shard in output_dir, by number."""
    suffix = f".{FORMATS[self.output_format]}.done"
    found = {}
    for path in tf.io.gfile.glob(os.path.join(self.output_dir, f"{self.prefix}-*{suffix}")):
      number = os.path.basename(path)[len(self.prefix) + 1:-len(suffix)]
      if number.isdigit():
        found[int(number)] = self.finished(int(number))
    return found

  def write(self, shard: int, records: Sequence[Mapping[str, Any]],
            failures: Sequence[Mapping[str, Any]], stats: ShardStats) -> None:
    """Writes shard `shard`'s documents, its failures, then its marker, each atomically.

    Temporary files that a killed run left for this shard are removed first (a shard has
    one owner process, so none of them is still being written).
    """
    for path in (self.path(shard), self.failures(shard), self.marker(shard)):
      folder, name = os.path.split(path)
      for stale in tf.io.gfile.glob(os.path.join(folder, f".{name}.*.tmp")):
        tf.io.gfile.remove(stale)
    if self.output_format == "jsonl":
      write_atomic(self.path(shard),
                   "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    else:
      def write(tmp):
        with tf.io.TFRecordWriter(tmp) as writer:
          for r in records:
            writer.write(_example(r))
      write_with(self.path(shard), write)
    write_atomic(self.failures(shard),
                 "".join(json.dumps(f, ensure_ascii=False) + "\n" for f in failures))
    write_atomic(self.marker(shard), json.dumps(stats.to_json(), sort_keys=True))

  def check_manifest(self, run: Mapping[str, Any]) -> None:
    """Writes the run manifest, or checks that an existing one matches `run`.

    Raises:
      ShardError: output_dir holds a run with other inputs or layout.
    """
    path = os.path.join(self.output_dir, MANIFEST)
    run = json.loads(json.dumps(run))  # Tuples as lists, as read back.
    if tf.io.gfile.exists(path):
      with tf.io.gfile.GFile(path) as f:
        previous = json.load(f)
      if previous != run:
        changed = sorted(k for k in set(run) | set(previous) if run.get(k) != previous.get(k))
        raise ShardError(f"{path} records a run with other {', '.join(changed)} "
                         f"({ {k: previous.get(k) for k in changed} }); choose another "
                         "OUTPUT_DIR or delete it")
      return
    tf.io.gfile.makedirs(self.output_dir)
    write_atomic(path, json.dumps(run, indent=1, sort_keys=True))

  def write_summary(self, name: str, summary: Mapping[str, Any]) -> str:
    path = os.path.join(self.output_dir, name)
    write_atomic(path, json.dumps(summary, indent=1))
    return path
