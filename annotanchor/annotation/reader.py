"""Raw documents, numbered, chunked and grouped into the output shards of a run.

Inputs are read with `annotanchor.data.sources.read_records` (JSONL, `.txt` files holding
one document each, TFRecord, `tfds:NAME:SPLIT`; local or `tf.io.gfile` paths) and split into
chunks on blank lines with `annotanchor.data.annotations.split_chunks`.

Documents are numbered 0, 1, 2, ... in input order (files sorted within a pattern); shard j
holds documents [j * docs_per_shard, (j + 1) * docs_per_shard). With 5 documents and
docs_per_shard 2 the shards are [0 1] [2 3] [4]; process i of n annotates the shards j with
j % n == i, and records of other shards are passed over without being decoded.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence

import tensorflow as tf

from annotanchor.annotation.record_kinds import RecordKind
from annotanchor.data import sources
from annotanchor.errors import SettingError


@dataclasses.dataclass(frozen=True)
class Document:
  """One input document.

  Attributes:
    number: its position in the input stream (0-based).
    id: the record's id field, or "FILE, record N".
    where: "FILE, record N", for messages.
    record: the decoded record (field -> value; TFRecord features are lists).
    chunks: the units to annotate (`RecordKind.units`: a document's blank-line-separated
      chunks, an SFT response, a conversation's assistant turns); empty for a bad record.
    error: why the record is bad ("" for a good one).
  """
  number: int
  id: str
  where: str
  record: Mapping[str, Any]
  chunks: tuple[str, ...]
  error: str = ""


def input_files(patterns: Sequence[str]) -> list[str]:
  """The files matched by `patterns` (each sorted), `tfds:` names kept as they are.

  Raises:
    sources.SourceError: a pattern matches nothing.
  """
  files = []
  for pattern in patterns:
    matched = [pattern] if pattern.startswith("tfds:") else sorted(tf.io.gfile.glob(pattern))
    if not matched:
      raise sources.SourceError(f"INPUTS pattern {pattern!r} matches no file")
    files += matched
  return files


def _document(number: int, where: str, decode: Callable[[], Mapping[str, Any]],
              kind: RecordKind, id_field: str) -> Document:
  try:
    record = decode()
    chunks = kind.units(record, where)
  except sources.SourceError as e:
    return Document(number, where, where, {}, (), str(e))
  doc_id = sources.record_field(record, id_field, where, scalar=True) if id_field in record else where
  return Document(number, str(doc_id), where, record, chunks)


def read_shards(files: Sequence[str], docs_per_shard: int, wanted: Callable[[int], bool],
                kind: RecordKind = RecordKind(), id_field: str = "id"
                ) -> Iterator[tuple[int, list[Document]]]:
  """Yields (shard number, its documents) for the shards that `wanted` accepts, in order.

  Args:
    files: from `input_files`.
    docs_per_shard: documents per output shard.
    wanted: shard number -> whether to read it (owned by this process and not finished).
    kind: what a record's units are (document chunks, an SFT response, assistant turns).
    id_field: the record field holding a document id (records without it are named by
      position).
  """
  if docs_per_shard < 1:
    raise SettingError(f"docs_per_shard={docs_per_shard} must be at least 1")
  shard: Optional[int] = None
  docs: list[Document] = []
  number = 0
  for path in files:
    for where, decode in sources.read_records(path):
      j = number // docs_per_shard
      if j != shard:
        if docs:
          yield shard, docs
        shard, docs = j, []
      if wanted(j):
        docs.append(_document(number, where, decode, kind, id_field))
      number += 1
  if docs:
    yield shard, docs
