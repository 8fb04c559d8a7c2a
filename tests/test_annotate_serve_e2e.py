"""End to end, for real: serve a small trained checkpoint, annotate a corpus through it, train.

1. A raw corpus whose records carry a category is annotated by the metadata annotator
   (`annotanchor annotate`); a SentencePiece vocabulary is trained on it.
2. A tiny model is pretrained on those shards through a JsonlCorpus task (`annotanchor train`).
3. `annotanchor serve` serves that checkpoint on a loopback port (a subprocess).
4. `annotanchor annotate` annotates new documents through it (chat API, the sampled
   annotation returned), with the real client.
5. `annotanchor train` trains a few steps on the result, through a registered SeqIO task.
"""
import json
import os
import subprocess
import sys

import gin
import pytest

from annotanchor import annotate as annotate_lib
from annotanchor import train as train_lib
from annotanchor.data import sources, vocabulary
from annotanchor.data.annotations import AnnotationFormat
from annotanchor.data.validated import Documents

from tests.xla_flags import xla_flags

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOPICS = ["sea", "forest", "city"]
WORDS = {"sea": "The waves rolled over the harbour", "forest": "Tall trees hid the old path",
         "city": "Trams crossed the busy square"}


def _corpus(path, count, offset=0):
  with open(path, "w") as f:
    for i in range(offset, offset + count):
      topic = TOPICS[i % 3]
      f.write(json.dumps({"id": f"d{i}", "category": topic, "source": "e2e",
                          "text": f"{WORDS[topic]} on day {i}.\n\n{WORDS[topic]} at night."})
              + "\n")
  return str(path)


def _corpus_gin(tmp_path, name, pattern, vocab):
  path = tmp_path / f"{name}.gin"
  path.write_text(f"""from __gin__ import dynamic_registration
from annotanchor.data import registration
registration.configured_corpora.corpora = [@{name}/registration.JsonlCorpus()]
{name}/registration.JsonlCorpus.name = '{name}'
{name}/registration.JsonlCorpus.vocabulary_path = '{vocab}'
{name}/registration.JsonlCorpus.documents = {{'train': '{pattern}'}}
""")
  return str(path)


def _main(module, argv):
  try:
    return module.main(argv)
  finally:
    gin.clear_config()


def _train(tmp_path, name, model_dir, pattern, vocab, steps):
  return _main(train_lib, [
      "--gin_file=gin/models/tiny.gin", "--gin_file=gin/runs/pretrain.gin",
      f"--gin_file={_corpus_gin(tmp_path, name, pattern, vocab)}",
      f"--gin.MODEL_DIR='{model_dir}'", f"--gin.TRAIN_STEPS={steps}", "--gin.BATCH_SIZE=8",
      "--gin.TASK_FEATURE_LENGTHS={'targets': 64}", f"--gin.MIXTURE_OR_TASK_NAME='{name}_pretrain'",
      "--gin.VOCAB_SIZE=512", "--gin.optim.OptimizerConfig.learning_rate=1e-2",
      "--gin.optim.OptimizerConfig.warmup_steps=5", "--gin.TrainConfig.log_every=5"])


# Slow (80 s of six processes): each link is in the default suite on its own, serve from a
# checkpoint alone (tests/decoding/test_self_describing.py), annotate's real client against
# an HTTP server (tests/annotation/), and train on annotate's shards
# (tests/annotation/test_sft_annotate.py); this chains them once more.
@pytest.mark.slow
def test_serve_a_trained_checkpoint_annotate_through_it_and_train_on_the_result(tmp_path):
  os.chdir(REPO)
  meta_dir = tmp_path / "meta"
  assert _main(annotate_lib, [
      "--gin_file=gin/runs/annotate.gin", f"--gin.INPUTS=['{_corpus(tmp_path / 'raw.jsonl', 24)}']",
      f"--gin.OUTPUT_DIR='{meta_dir}'", "--gin.ANNOTATOR=@annotators.MetadataAnnotator()",
      "--gin.annotators.MetadataAnnotator.fields={'category': 'topic'}"]) == 0
  pattern = str(meta_dir / "annotated-*.jsonl")
  docs = list(sources.read_examples([pattern], Documents(AnnotationFormat())))
  assert len(docs) == 24 and docs[0]["annotations"] == ["topic:sea"] * 2
  texts = [f"<ann> {a} </ann> {c}" for d in docs for a, c in zip(d["annotations"], d["chunks"])]
  vocab = vocabulary.train_sentencepiece(texts * 4, str(tmp_path / "spm.model"), vocab_size=400)
  base = tmp_path / "base"
  assert _train(tmp_path, "meta", base, pattern, vocab, 80) == 0

  env = {**os.environ, "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": REPO,
         "XLA_FLAGS": xla_flags(devices=1)}
  server = subprocess.Popen(
      [sys.executable, "-m", "annotanchor.cli", "serve", "--gin_file=gin/models/tiny.gin",
       "--gin_file=gin/runs/serve.gin", f"--gin.CHECKPOINT_PATH='{base}'",
       f"--gin.VOCABULARY_PATH='{vocab}'", "--gin.VOCAB_SIZE=512", "--gin.PORT=0",
       "--gin.MODEL_NAME='tiny-e2e'", "--gin.serve.max_annotation_tokens=12"],
      cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  try:
    line = server.stdout.readline()
    assert line.startswith("serving tiny-e2e on http://127.0.0.1:"), server.stderr.read()[-3000:]
    url = line.split()[-1]
    out = tmp_path / "annotated"
    assert _main(annotate_lib, [
        "--gin_file=gin/runs/annotate.gin",
        f"--gin.INPUTS=['{_corpus(tmp_path / 'new.jsonl', 9, offset=100)}']",
        f"--gin.OUTPUT_DIR='{out}'", f"--gin.ENDPOINT_URL='{url}'",
        "--gin.ENDPOINT_MODEL='tiny-e2e'", "--gin.CONCURRENCY=4", "--gin.DOCS_PER_SHARD=3",
        "--gin.client.Endpoint.max_tokens=4", "--gin.client.Endpoint.temperature=1.0",
        "--gin.client.Endpoint.extra_body={'annotation': 'return'}",
        "--gin.prompt.AnnotationPrompt.template='{chunk}'", "--gin.prompt.AnnotationPrompt.system=''",
        "--gin.schema.TagSchema.allowed_keys=None", "--gin.annotators.RetryPolicy.backoff_s=0.0",
        "--gin.annotators.RetryPolicy.max_attempts=3"]) == 0
  finally:
    server.terminate()
    server.wait(timeout=60)
  assert server.returncode == 0, server.stderr.read()[-3000:]

  summary = json.loads((out / "summary.json").read_text())
  assert summary["chunks"] == 18 and summary["shards"] == 3
  assert summary["chunks_annotated"] + summary["failed"] == 18
  annotated = list(sources.read_examples([str(out / "annotated-*.jsonl")],
                                         Documents(AnnotationFormat())))
  assert len(annotated) == summary["documents_written"] >= 1
  # What the trained model annotates: tags it learned, e.g. topic:sea.
  print("annotations sampled through the server:", [d["annotations"] for d in annotated])
  assert _train(tmp_path, "served", tmp_path / "trained", str(out / "annotated-*.jsonl"), vocab,
                5) == 0
  losses = [json.loads(l)["loss"] for l in (tmp_path / "trained" / "train_metrics.jsonl").open()]
  assert losses and all(l == l for l in losses)
