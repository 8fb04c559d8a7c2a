"""`annotanchor annotate` throughput against a served checkpoint: concurrency 1 vs 8.

Set-up (all through the real commands): a raw corpus of short two-chunk documents is
annotated from its `category` field (`annotanchor annotate`, metadata annotator), a
SentencePiece vocabulary is trained on it, a model (--model_gin, default gin/models/tiny.gin)
is pretrained on those shards for --train_steps (`annotanchor train`, JsonlCorpus task), and
`annotanchor serve` serves the checkpoint on a loopback port (anchored mode, a subprocess,
max_batch 8). The measured step annotates --docs new documents (2 chunks each) through the
server with the LLM annotator (chat API, sampled annotation returned, one attempt per chunk,
--max_tokens response tokens), at concurrency 1 and at concurrency 8.

chunks/s = chunks / wall seconds of one `annotate_corpus` run into a fresh output directory
(reading, requests, parsing and writing shards included). Untimed --warmup rounds at each
concurrency compile the sampler's shapes first. Runs are interleaved (c1, c8, c1, c8, ...)
over --repeats rounds so that load from other processes hits both alike; figures are medians.
The ratio c8/c1 is what batching concurrent requests buys on this machine.

  python benchmarks/annotate_throughput.py [--repeats 5] [--docs 128] [--model_gin gin/models/demo.gin]
  python benchmarks/annotate_throughput.py --quick     # smoke test of the script

Writes JSON to stdout and (not with --quick) to benchmarks/results/annotate_throughput.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
TOPICS = {"sea": "The waves rolled over the harbour", "forest": "Tall trees hid the old path",
          "city": "Trams crossed the busy square", "desert": "Dunes drifted under a pale sky"}
CONCURRENCY = (1, 8)


def write_corpus(path: str, count: int, offset: int = 0) -> str:
  names = sorted(TOPICS)
  with open(path, "w") as f:
    for i in range(offset, offset + count):
      topic = names[i % len(names)]
      f.write(json.dumps({"id": f"d{i}", "category": topic, "text": f"{TOPICS[topic]} on day "
                          f"{i}.\n\n{TOPICS[topic]} at night, {i % 7} hours."}) + "\n")
  return path


def cli(*args: str, env=None) -> None:
  done = subprocess.run([sys.executable, "-m", "annotanchor.cli", *args], cwd=REPO, env=env,
                        capture_output=True, text=True)
  if done.returncode:
    raise SystemExit(f"annotanchor {args[0]} failed:\n{done.stderr[-3000:]}")


def build_checkpoint(work: str, model_gin: str, steps: int, env) -> tuple[str, str]:
  """(model_dir, vocabulary path) of a model pretrained on metadata-annotated shards."""
  from annotanchor.data import sources, vocabulary
  from annotanchor.data.annotations import AnnotationFormat
  from annotanchor.data.validated import Documents
  meta = os.path.join(work, "meta")
  cli("annotate", "--gin_file=gin/runs/annotate.gin",
      f"--gin.INPUTS=['{write_corpus(os.path.join(work, 'raw.jsonl'), 64)}']",
      f"--gin.OUTPUT_DIR='{meta}'", "--gin.ANNOTATOR=@annotators.MetadataAnnotator()",
      "--gin.annotators.MetadataAnnotator.fields={'category': 'topic'}", env=env)
  pattern = os.path.join(meta, "annotated-*.jsonl")
  docs = list(sources.read_examples([pattern], Documents(AnnotationFormat())))
  texts = [f"<ann> {a} </ann> {c}" for d in docs for a, c in zip(d["annotations"], d["chunks"])]
  vocab = vocabulary.train_sentencepiece(texts * 4, os.path.join(work, "spm.model"), 400)
  corpus_gin = os.path.join(work, "corpus.gin")
  with open(corpus_gin, "w") as f:
    f.write("from __gin__ import dynamic_registration\n"
            "from annotanchor.data import registration\n"
            "registration.configured_corpora.corpora = [@b/registration.JsonlCorpus()]\n"
            "b/registration.JsonlCorpus.name = 'bench'\n"
            f"b/registration.JsonlCorpus.vocabulary_path = '{vocab}'\n"
            f"b/registration.JsonlCorpus.documents = {{'train': '{pattern}'}}\n")
  model_dir = os.path.join(work, "model")
  cli("train", f"--gin_file={model_gin}", "--gin_file=gin/runs/pretrain.gin",
      f"--gin_file={corpus_gin}", f"--gin.MODEL_DIR='{model_dir}'", f"--gin.TRAIN_STEPS={steps}",
      "--gin.BATCH_SIZE=8", "--gin.TASK_FEATURE_LENGTHS={'targets': 64}",
      "--gin.MIXTURE_OR_TASK_NAME='bench_pretrain'", "--gin.VOCAB_SIZE=512",
      "--gin.optim.OptimizerConfig.learning_rate=1e-2", "--gin.optim.OptimizerConfig.warmup_steps=5",
      env=env)
  return model_dir, vocab


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--docs", type=int, default=128, help="documents per run (2 chunks each)")
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--warmup", type=int, default=2, help="untimed rounds first")
  parser.add_argument("--train_steps", type=int, default=80)
  parser.add_argument("--max_tokens", type=int, default=16)
  parser.add_argument("--model_gin", default="gin/models/tiny.gin")
  parser.add_argument("--quick", action="store_true", help="8 documents, 1 round, 20 steps")
  parser.add_argument("--output", default=None)
  args = parser.parse_args(argv)
  if args.quick:
    args.docs, args.repeats, args.warmup, args.train_steps = 8, 1, 1, 20
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": REPO}
  from annotanchor.annotation.annotators import LLMAnnotator, RetryPolicy
  from annotanchor.annotation.client import Endpoint
  from annotanchor.annotation.prompt import AnnotationPrompt
  from annotanchor.annotation.runner import annotate_corpus
  from annotanchor.annotation.schema import TagSchema
  from annotanchor.data.annotations import AnnotationFormat

  with tempfile.TemporaryDirectory() as work:
    model_dir, vocab = build_checkpoint(work, args.model_gin, args.train_steps, env)
    server = subprocess.Popen(
        [sys.executable, "-m", "annotanchor.cli", "serve", f"--gin_file={args.model_gin}",
         "--gin_file=gin/runs/serve.gin", f"--gin.CHECKPOINT_PATH='{model_dir}'",
         f"--gin.VOCABULARY_PATH='{vocab}'", "--gin.VOCAB_SIZE=512", "--gin.PORT=0",
         "--gin.MAX_BATCH=8", "--gin.serve.max_annotation_tokens=12"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
      line = server.stdout.readline()
      if not line.startswith("serving"):
        raise SystemExit(f"annotanchor serve did not start: {line!r}")
      url = line.split()[-1]
      inputs = [write_corpus(os.path.join(work, "new.jsonl"), args.docs, offset=1000)]
      annotator = LLMAnnotator(
          Endpoint(base_url=url, max_tokens=args.max_tokens, temperature=1.0,
                   extra_body={"annotation": "return"}),
          prompt=AnnotationPrompt(template="{chunk}", system=""),
          schema=TagSchema(allowed_keys=None), retry=RetryPolicy(max_attempts=1))
      runs = iter(range(10**6))
      def measure(concurrency):
        start = time.perf_counter()
        summary = annotate_corpus(inputs, os.path.join(work, f"run{next(runs)}"), annotator,
                                  docs_per_shard=max(args.docs // 4, 1), concurrency=concurrency,
                                  progress_bar=False, fmt=AnnotationFormat())
        return summary["chunks"] / (time.perf_counter() - start), summary
      for _ in range(args.warmup):  # The sampler compiles each batch and length shape once.
        for c in CONCURRENCY:
          measure(c)
      rates = {c: [] for c in CONCURRENCY}
      last = {}
      load_start = os.getloadavg()
      for _ in range(args.repeats):
        for c in CONCURRENCY:
          rate, last[c] = measure(c)
          rates[c].append(rate)
      load_end = os.getloadavg()
    finally:
      server.terminate()
      server.wait(timeout=60)

  results = {f"concurrency_{c}": {
      "chunks_per_s_median": round(statistics.median(r), 3), "chunks_per_s": [round(x, 3) for x in r],
      "chunks": last[c]["chunks"], "failures_last_run": last[c]["failures"],
      "tags_last_run": {k: {"entropy_bits": v["entropy_bits"], "distinct": v["distinct"]}
                        for k, v in last[c]["tags"].items()}} for c, r in rates.items()}
  import jax
  report = {"benchmark": "annotate_throughput", "model_gin": args.model_gin,
            "train_steps": args.train_steps, "docs": args.docs, "max_tokens": args.max_tokens,
            "server": {"mode": "anchored", "max_batch": 8, "max_annotation_tokens": 12},
            "results": results,
            "ratio_c8_over_c1": round(results["concurrency_8"]["chunks_per_s_median"]
                                      / results["concurrency_1"]["chunks_per_s_median"], 3),
            "repeats": args.repeats, "loadavg_start_end": [load_start[0], load_end[0]],
            "machine": platform.machine(), "cpu_count": os.cpu_count(),
            "versions": {"jax": jax.__version__}, "xla_flags": os.environ.get("XLA_FLAGS", ""),
            "quick": args.quick}
  text = json.dumps(report, indent=2)
  print(text)
  output = args.output or (None if args.quick else os.path.join(REPO, "benchmarks", "results",
                                                                "annotate_throughput.json"))
  if output:
    from annotanchor.atomic_files import write_atomic
    write_atomic(output, text + "\n")
  return 0


if __name__ == "__main__":
  sys.exit(main())
