"""Annotating raw corpora with `key:value` tags (`annotanchor annotate`).

Modules (one job each):
  schema      TagSchema: allowed keys, value length, tag count; normalises raw tags
  parse       parse_response: tags out of an annotator's free-text answer
  prompt      AnnotationPrompt: the instruct-LLM prompt template (paper's keys by default)
  client      Endpoint: where annotate's requests go and what they hold (sent by the shared
              annotanchor.openai_client: timeouts, retries, rate limit, failures by cause)
  annotators  LLMAnnotator (answers that do not parse asked again), MetadataAnnotator
              (record fields -> tags)
  reader      input files -> numbered, chunked documents grouped into shards
  shards      ShardLayout: shard files, atomic writes, markers, failures, the run manifest
  summary     ShardStats and the run summary (failures by cause, entropy per key)
  runner      annotate_corpus: the resumable, sharded, concurrent run

The `annotanchor annotate` entry point (annotanchor/annotate.py) wires them from gin.
"""
