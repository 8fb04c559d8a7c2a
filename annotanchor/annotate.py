"""`annotanchor annotate` / `python -m annotanchor.annotate`: tag a raw corpus or an SFT set.

  annotanchor annotate --gin_file=gin/runs/annotate.gin \
      --gin.INPUTS="['raw/*.jsonl']" --gin.OUTPUT_DIR="'annotated'" \
      --gin.ENDPOINT_URL="'http://127.0.0.1:8000/v1'" --gin.ENDPOINT_MODEL="'Qwen3-30B-A3B'"

Splits every document into chunks on blank lines, asks the annotator (an LLM behind an
OpenAI-compatible endpoint, or the record's own metadata fields) for each chunk's tags and
writes OUTPUT_DIR/annotated-NNNNN.jsonl shards that `JsonlCorpus` tasks read directly; with
`annotate.record_kind='sft_pairs'` or `'sft_chat'` it annotates the responses of SFT
records (prompt/response pairs, or each assistant turn of `messages`) instead, and with
`'preference_pairs'` both answers of preference records (for anchored DPO). A
rerun skips finished shards and redoes unfinished ones; SHARD_INDEX/SHARD_COUNT split the
shards between processes. Ends with a summary (also OUTPUT_DIR/summary.json), also when it
fails. Exit status: 0 done (chunks that failed are counted in the summary), 2 bad
configuration or input, an endpoint that refuses every request or cannot be reached, or a
run that wrote no document. See gin/runs/annotate.gin.
"""
from __future__ import annotations

if __name__ == "__main__":
  from annotanchor.gin_utils import run_module_main
  run_module_main("annotanchor.annotate")

from typing import Any, Sequence

import gin

from annotanchor import gin_utils
from annotanchor.annotation.annotators import Annotator
from annotanchor.annotation.record_kinds import RecordKind
from annotanchor.annotation.runner import annotate_corpus
from annotanchor.annotation.summary import format_summary
from annotanchor.data.annotations import AnnotationFormat
from annotanchor.errors import SettingError


@gin.configurable
def annotate(*, inputs: Sequence[str] = gin.REQUIRED, output_dir: str = gin.REQUIRED,
             annotator: Annotator = gin.REQUIRED, docs_per_shard: int = 1000,
             shard_index: int = 0, shard_count: int = 1, concurrency: int = 8,
             output_format: str = "jsonl", record_kind: str = "documents",
             text_field: str = "text", prompt_field: str = "prompt",
             messages_field: str = "messages", show_prompt: bool = False,
             id_field: str = "id", progress_bar: bool | None = None,
             annotation_format: AnnotationFormat = AnnotationFormat()) -> dict[str, Any]:
  """Annotates a corpus; see `annotanchor.annotation.runner.annotate_corpus` for the args and
  `annotanchor.annotation.record_kinds` for `record_kind` ("documents", "sft_pairs",
  "sft_chat" or "preference_pairs") and its fields (for "sft_pairs" `text_field` is the response's).

  `annotation_format` is the format the files are written in: that of the template of the
  corpus that will read them (`JsonlCorpus.template`); an annotator's `TagSchema.fmt` must
  be the same."""
  schema_format = getattr(getattr(annotator, "schema", None), "fmt", annotation_format)
  if schema_format != annotation_format:
    raise SettingError(f"TagSchema.fmt={schema_format} differs from annotate.annotation_format="
                       f"{annotation_format}: the tags would be checked against other "
                       "delimiters than they are written in")
  kind = RecordKind(record_kind, text_field, prompt_field, messages_field, show_prompt)
  if isinstance(inputs, str):
    inputs = [inputs]
  def report(summary: dict[str, Any]) -> None:  # Also before the errors of a failed run.
    gin_utils.write_operative_config(output_dir)
    print(format_summary(summary), flush=True)
  return annotate_corpus(
      inputs, output_dir, annotator, docs_per_shard=docs_per_shard, shard_index=shard_index,
      shard_count=shard_count, concurrency=concurrency, output_format=output_format,
      kind=kind, id_field=id_field, fmt=annotation_format, progress_bar=progress_bar,
      report=report)


def main(argv: Sequence[str] | None = None) -> int:
  return gin_utils.run_main(
      "annotate", annotate, argv, doc=__doc__)
