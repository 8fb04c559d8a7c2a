"""Diversity and quality metrics over sample files; knows no model.

  config.py     evaluate's typed settings (`EvaluateConfig`: arms, labeller, quality, ...)
  samples.py    the JSONL sample schema (`Sample`), reading and cross-arm checks
  labels.py     label sources for semantic entropy (annotation tags, user functions)
  clusters.py   label-free labels: per-prompt clusters of every arm's response embeddings
  diversity.py  per-prompt metrics: semantic entropy, distinct_k, distinct-n, cosine distance
  embedding/    all-MiniLM-L6-v2 in numpy (the optional `embeddings` extra)
  quality.py    quality functions and per-prompt scores; judge.py: an HTTP LLM judge
  compare.py    paired bootstrap over prompts; collapse, gap closed, collapse ratio
  report.py     report.json / report.md; plots.py: PNG plots
  caveats.py    what a report's figures cannot say (degenerate samples, unknown labels, ...)
  preference_pairs.py  on-policy preference pairs: a passing sample against a failing one
"""
from annotanchor.evaluation.labels import UNKNOWN, AnnotationTagLabeller, FunctionLabeller, Labeller
from annotanchor.evaluation.samples import (DECODING_KEYS, ArmSamples, Sample, SampleFileError,
                                            load_arms, read_samples, write_samples)

__all__ = ["UNKNOWN", "AnnotationTagLabeller", "FunctionLabeller", "Labeller", "DECODING_KEYS",
           "ArmSamples", "Sample", "SampleFileError", "load_arms", "read_samples",
           "write_samples"]
