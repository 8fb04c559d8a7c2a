"""The annotation run: shards of documents through an annotator, concurrently, resumably.

  stats = annotate_corpus(["docs/*.jsonl"], "out", LLMAnnotator(Endpoint(...)), concurrency=8)

For each shard this process owns and has not finished (see `reader` and `shards`), every
chunk of every document goes to the annotator on a thread pool; a document whose chunks all
got tags is written as `{"id", "text", "annotations"}`, any other goes to the shard's
failures file with the cause of each failed chunk. Progress (chunks and chunks/s) goes to a
tqdm bar on terminals and to the log otherwise. The summary is written and returned, also
when the run stops (`EndpointError`) or ends with nothing written (`NothingAnnotatedError`);
a stopped run's summary counts the chunks it tried in its unfinished shard, their failures
by cause (the shard itself is redone by a rerun).
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import sys
import threading
import time
from typing import Any, Callable, Optional, Sequence

import tqdm

from annotanchor.annotation.annotators import Annotator, ChunkFailure, EndpointError
from annotanchor.annotation.reader import Document, input_files, read_shards
from annotanchor.annotation.record_kinds import RecordKind
from annotanchor.annotation.shards import ShardLayout
from annotanchor.annotation.summary import ShardStats, summarize
from annotanchor.data import annotations
from annotanchor.errors import SettingError, UserError

# Seconds between progress lines in the log (when there is no bar).
LOG_EVERY_S = 10.0


class NothingAnnotatedError(UserError):
  """A run whose output holds no document: every chunk failed, or the inputs held none."""


def _outcome(future: concurrent.futures.Future) -> Any:
  """A chunk's tags, or its ChunkFailure; other exceptions propagate."""
  try:
    return future.result()
  except ChunkFailure as e:
    return e


def _tried_chunks(futures: Sequence[concurrent.futures.Future]) -> ShardStats:
  """The chunks of a stopped shard that were tried (waiting for those in flight): annotated,
  or failed by cause, the failures that stopped the run included."""
  stats = ShardStats()
  for future in futures:
    if future.cancelled():  # Dropped before it was tried.
      continue
    error = future.exception()
    stats.chunks += 1
    if error is None:
      stats.chunks_annotated += 1
    else:  # A ChunkFailure or an EndpointError name their cause; anything else is a bug.
      stats.add_failure(getattr(error, "cause", type(error).__name__))
  return stats


class _ShardStopped(Exception):
  """A shard cut short by an EndpointError, with what it tried (`_tried_chunks`)."""

  def __init__(self, error: EndpointError, tried: ShardStats):
    super().__init__(str(error))
    self.error, self.tried = error, tried


def _annotate_shard(docs: Sequence[Document], annotator: Annotator,
                    pool: concurrent.futures.Executor, fmt: annotations.AnnotationFormat,
                    kind: RecordKind, on_chunk) -> tuple[list[dict], list[dict], ShardStats]:
  """(records, failures, stats) of one shard's documents.

  Raises:
    _ShardStopped: an EndpointError stopped the run (the queued chunks are dropped).
  """
  stats = ShardStats(documents=len(docs))
  jobs = {(d.number, i): pool.submit(annotator.annotate, chunk, d.record)
          for d in docs for i, chunk in enumerate(d.chunks)}
  for future in jobs.values():  # Chunks dropped when the run stops are not counted as done.
    future.add_done_callback(lambda f: f.cancelled() or on_chunk())
  try:
    outcomes = {key: _outcome(future) for key, future in jobs.items()}
  except BaseException as e:  # EndpointError (or a bug) stops the run: drop the queued chunks.
    for future in jobs.values():
      future.cancel()
    if isinstance(e, EndpointError):
      raise _ShardStopped(e, _tried_chunks(list(jobs.values()))) from None
    raise
  records, failures = [], []
  for d in docs:
    if d.error:
      stats.add_failure("bad_record")
      failures.append({"id": d.id, "where": d.where, "cause": "bad_record", "message": d.error})
      continue
    tags, failed = [], []
    for i in range(len(d.chunks)):
      outcome = outcomes[(d.number, i)]
      if isinstance(outcome, ChunkFailure):
        stats.add_failure(outcome.cause)
        failed.append({"id": d.id, "where": d.where, "chunk": i, "cause": outcome.cause,
                       "attempts": outcome.attempts, "message": str(outcome)})
      else:
        tags.append(outcome)
    stats.chunks += len(d.chunks)
    stats.chunks_annotated += len(tags)
    if failed:
      failures += failed
      continue
    for t in tags:
      stats.add_tags(t)
    records.append(kind.written(d.record, d.id, d.chunks, tags, fmt))
    stats.documents_written += 1
    stats.chunks_written += len(d.chunks)
  return records, failures, stats


class _Progress:
  """Counts annotated chunks (from worker threads) and shows chunks/s."""

  def __init__(self, progress_bar: Optional[bool]):
    self.start, self.count, self._logged = time.perf_counter(), 0, time.perf_counter()
    self._lock = threading.Lock()
    self.bar = tqdm.tqdm(unit="chunk", dynamic_ncols=True, disable=not (
        sys.stderr.isatty() if progress_bar is None else progress_bar))

  def chunk_done(self) -> None:
    with self._lock:  # Called from the worker threads.
      self.count += 1
      self.bar.update(1)

  def shard_done(self, shard: int) -> None:
    rate = self.count / max(time.perf_counter() - self.start, 1e-9)
    self.bar.set_postfix(chunks_per_s=f"{rate:.2f}", shard=shard)
    now = time.perf_counter()
    if self.bar.disable and now - self._logged >= LOG_EVERY_S:
      self._logged = now
      logging.info("shard %d done: %d chunks this run, %.2f chunks/s", shard, self.count, rate)


def annotate_corpus(inputs: Sequence[str], output_dir: str, annotator: Annotator, *,
                    docs_per_shard: int = 1000, shard_index: int = 0, shard_count: int = 1,
                    concurrency: int = 8, output_format: str = "jsonl",
                    kind: RecordKind = RecordKind(), id_field: str = "id",
                    fmt: annotations.AnnotationFormat,
                    progress_bar: Optional[bool] = None,
                    report: Optional[Callable[[dict[str, Any]], None]] = None
                    ) -> dict[str, Any]:
  """Annotates the documents of `inputs` into shards in `output_dir`; returns the summary.

  Args:
    inputs: file patterns (JSONL, .txt, TFRecord; any tf.io.gfile path) or `tfds:NAME:SPLIT`.
    output_dir: gets the shards, their markers and failures, the manifest and the summary.
    annotator: gives each chunk its tags.
    docs_per_shard: documents per output shard (the unit of resumption).
    shard_index, shard_count: this process annotates shards j with j % shard_count ==
      shard_index (several processes or machines share one output_dir).
    concurrency: chunks annotated at once (threads).
    output_format: "jsonl" or "tfrecord".
    kind: what is annotated in a record and what is written (`record_kinds`: documents,
      SFT pairs, chat conversations) and the record fields holding it.
    id_field: the record field of the id.
    fmt: the annotation delimiters written.
    progress_bar: a tqdm bar (default: on terminals).
    report: called with the summary once it is written, before any error below.

  Returns:
    The summary over this process's finished shards (see `summary.summarize`), also
    written to output_dir as summary.json (summary-I-of-N.json with several processes).

  Raises:
    SettingError: bad settings; ShardError: output_dir holds another run;
    sources.SourceError: an input pattern matches nothing;
    EndpointError: the annotator's endpoint refuses every request or cannot be reached;
    NothingAnnotatedError: the output holds no document (a process that owns no shard of
      several is not at fault).
  """
  if not 0 <= shard_index < shard_count or concurrency < 1:
    raise SettingError(f"need 0 <= shard_index={shard_index} < shard_count={shard_count} and "
                       f"concurrency={concurrency} >= 1")
  layout = ShardLayout(output_dir, output_format)
  files = input_files(inputs)
  manifest = {"inputs": list(inputs), "files": files, "docs_per_shard": docs_per_shard,
              "output_format": output_format, "text_field": kind.text_field,
              "id_field": id_field, "shard_count": shard_count}
  if kind.kind != "documents":  # Document runs keep the manifest they always had.
    manifest["record_kind"] = dataclasses.asdict(kind)
  layout.check_manifest(manifest)
  done = {j for j in layout.finished_shards() if j % shard_count == shard_index}
  if done:
    logging.info("resuming: %d finished shards of this process are skipped", len(done))
  wanted = lambda j: j % shard_count == shard_index and j not in done
  progress = _Progress(progress_bar)
  stopped = None
  try:
    with concurrent.futures.ThreadPoolExecutor(concurrency, "annotate") as pool:
      for shard, docs in read_shards(files, docs_per_shard, wanted, kind, id_field):
        records, failures, stats = _annotate_shard(docs, annotator, pool, fmt, kind,
                                                   progress.chunk_done)
        layout.write(shard, records, failures, stats)
        progress.shard_done(shard)
  except _ShardStopped as e:  # The run stops; the summary says what it finished and tried.
    stopped = e
  progress.bar.close()
  seconds = time.perf_counter() - progress.start
  total = ShardStats()
  mine = {j: s for j, s in layout.finished_shards().items() if j % shard_count == shard_index}
  for stats in mine.values():
    total.merge(stats)
  if stopped is not None:
    total.merge(stopped.tried)
  summary = summarize(total, shards=len(mine), chunks_this_run=progress.count, seconds=seconds,
                      stopped=None if stopped is None else str(stopped.error))
  name = "summary.json" if shard_count == 1 else f"summary-{shard_index}-of-{shard_count}.json"
  logging.info("summary written to %s", layout.write_summary(name, summary))
  if report is not None:
    report(summary)
  if stopped is not None:
    raise stopped.error
  if not summary["chunks_written"] and (summary["documents"] or shard_count == 1):
    causes = ", ".join(f"{c} {n}" for c, n in summary["failures"].items()) or "none"
    raise NothingAnnotatedError(
        f"nothing annotated: of {summary['documents']} documents ({summary['chunks']} "
        f"chunks) in INPUTS none was written to {output_dir}; failures: {causes} "
        "(see failures-*.jsonl)")
  return summary
