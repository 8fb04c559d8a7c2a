"""What a run produced: per-shard counts, and the summary over shards.

Each finished shard's marker holds its `ShardStats`; the summary merges them, so a resumed
run reports on every shard, not only those it annotated itself. The tag distribution is
over the chunks written; per key it gives the Shannon entropy in bits of its values (0: the
key always has the same value; log2(k): k values, evenly used), the number of distinct
values, coverage (the share of written chunks that carry the key) and the commonest values.
"""
from __future__ import annotations

import collections
import dataclasses
from typing import Any, Iterable, Mapping

from annotanchor.evaluation.diversity import entropy_bits


@dataclasses.dataclass
class ShardStats:
  """Counts of one shard (or of several, merged).

  Attributes:
    documents: input documents.
    documents_written: documents written (every chunk annotated).
    chunks: chunks of all documents.
    chunks_annotated: chunks that got tags (written or not).
    chunks_written: chunks written.
    failures: cause -> failed chunks ("bad_record" counts documents).
    tags: key -> value -> count, over the written chunks.
  """
  documents: int = 0
  documents_written: int = 0
  chunks: int = 0
  chunks_annotated: int = 0
  chunks_written: int = 0
  failures: dict[str, int] = dataclasses.field(default_factory=dict)
  tags: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)

  def add_failure(self, cause: str) -> None:
    self.failures[cause] = self.failures.get(cause, 0) + 1

  def add_tags(self, tags: Iterable[tuple[str, str]]) -> None:
    for key, value in tags:
      values = self.tags.setdefault(key, {})
      values[value] = values.get(value, 0) + 1

  def merge(self, other: "ShardStats") -> None:
    for name in ("documents", "documents_written", "chunks", "chunks_annotated",
                 "chunks_written"):
      setattr(self, name, getattr(self, name) + getattr(other, name))
    for cause, count in other.failures.items():
      self.failures[cause] = self.failures.get(cause, 0) + count
    for key, values in other.tags.items():
      mine = self.tags.setdefault(key, {})
      for value, count in values.items():
        mine[value] = mine.get(value, 0) + count

  def to_json(self) -> dict[str, Any]:
    return dataclasses.asdict(self)

  @classmethod
  def from_json(cls, data: Mapping[str, Any]) -> "ShardStats":
    return cls(**data)


def tag_distribution(stats: ShardStats, top: int = 5) -> dict[str, dict[str, Any]]:
  """Per key: entropy_bits, distinct, count, coverage, top values.

  Example: keys over 4 written chunks, topic: {sea: 2, war: 2}, genre: {myth: 1} ->
  topic: entropy 1.0, distinct 2, coverage 1.0; genre: entropy 0.0, coverage 0.25.
  """
  out = {}
  for key in sorted(stats.tags):
    values = collections.Counter(stats.tags[key])
    count = sum(values.values())
    out[key] = {"entropy_bits": round(entropy_bits(list(values.elements())), 4),
                "distinct": len(values), "count": count,
                "coverage": round(count / stats.chunks_written, 4) if stats.chunks_written else 0.0,
                "top": values.most_common(top)}
  return out


def summarize(stats: ShardStats, *, shards: int, chunks_this_run: int, seconds: float,
              stopped: str | None = None) -> dict[str, Any]:
  """The run's summary (written as summary JSON and printed by `format_summary`).

  `stopped`: why the run stopped before its end (None: it ran to the end), e.g. the
  endpoint could not be reached; `stats` then include the chunks of the unfinished shard.
  """
  failed = sum(stats.failures.values())
  return {"shards": shards, "documents": stats.documents,
          "documents_written": stats.documents_written, "chunks": stats.chunks,
          "chunks_annotated": stats.chunks_annotated, "chunks_written": stats.chunks_written,
          "failures": dict(sorted(stats.failures.items())), "failed": failed, "stopped": stopped,
          "chunks_this_run": chunks_this_run, "seconds_this_run": round(seconds, 3),
          "chunks_per_s": round(chunks_this_run / seconds, 3) if seconds > 0 else 0.0,
          "tags": tag_distribution(stats)}


def format_summary(summary: Mapping[str, Any]) -> str:
  """The summary as a few lines of text."""
  lines = [f"shards {summary['shards']}, documents {summary['documents']} "
           f"({summary['documents_written']} written), chunks {summary['chunks']} "
           f"({summary['chunks_annotated']} annotated, {summary['chunks_written']} written)",
           f"this run: {summary['chunks_this_run']} chunks in {summary['seconds_this_run']}s "
           f"({summary['chunks_per_s']} chunks/s)",
           "failures: " + (", ".join(f"{c} {n}" for c, n in summary["failures"].items())
                           or "none")]
  for key, d in summary["tags"].items():
    top = " ".join(f"{v}({n})" for v, n in d["top"])
    lines.append(f"  {key:<12} entropy {d['entropy_bits']:.2f} bits, {d['distinct']} values, "
                 f"coverage {d['coverage']:.2f}: {top}")
  return "\n".join(lines)
