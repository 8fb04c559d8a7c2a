"""The storyworld corpora and vocabulary on disk: generated once per config, then read.

Files live in `<cache_dir>/storyworld/<config hash>/`, written to a temporary
directory and renamed into place, so a crash never leaves a half-written
corpus and concurrent processes agree on one.
"""
import dataclasses
import hashlib
import json
import os

from annotanchor import atomic_files
from annotanchor.data.validated import default_cache_dir
from annotanchor.data.prompts import marker_symbols
from annotanchor.data.vocabulary import train_sentencepiece
from tasks.storyworld import generate

# Bump when generated text changes, so old caches are not reused.
GENERATOR_VERSION = 1
SPLITS = ("train", "validation")


def _write_jsonl(path: str, records) -> None:
  with open(path, "w") as f:
    for record in records:
      f.write(json.dumps(record) + "\n")


def _vocab_texts(config: generate.StoryworldConfig):
  template = generate.TEMPLATE
  for doc in generate.pretraining_documents(config, "train"):
    yield doc["text"]
    yield from doc["annotations"]
  for ex in generate.sft_examples(config, "train"):
    yield template.build(ex["prompt"]) + ex["annotation"] + template.response_prefix + ex["response"]


def corpus_dir(config: generate.StoryworldConfig, vocab_size: int,
               cache_dir: str | None = None) -> str:
  """Generates (once) and returns the directory holding the corpus files.

  Args:
    config: the world's draw.
    vocab_size: target size of its SentencePiece vocabulary.
    cache_dir: root of annotanchor's caches (default `validated.default_cache_dir()`:
      $ANNOTANCHOR_CACHE_DIR, else ~/.cache/annotanchor).

  Files: `pretrain_{split}.jsonl`, `sft_{split}.jsonl`, `eval_prompts.jsonl`,
  `spm.model`, `config.json`.
  """
  template = generate.TEMPLATE
  settings = {"config": dataclasses.asdict(config), "version": GENERATOR_VERSION,
              "vocab_size": vocab_size, "template": dataclasses.asdict(template)}
  digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
  final = os.path.join(cache_dir or default_cache_dir(), "storyworld", digest)
  if os.path.exists(os.path.join(final, "config.json")):
    return final

  def write(staging):
    os.makedirs(staging)
    for split in SPLITS:
      _write_jsonl(os.path.join(staging, f"pretrain_{split}.jsonl"),
                   generate.pretraining_documents(config, split))
      _write_jsonl(os.path.join(staging, f"sft_{split}.jsonl"), generate.sft_examples(config, split))
    _write_jsonl(os.path.join(staging, "eval_prompts.jsonl"), generate.eval_prompts(config))
    train_sentencepiece(_vocab_texts(config), os.path.join(staging, "spm.model"),
                        vocab_size, marker_symbols(template))
    _write_jsonl(os.path.join(staging, "config.json"), [settings])
  try:
    atomic_files.write_with(final, write)
  except OSError:  # Another process published the same corpus first.
    if not os.path.exists(os.path.join(final, "config.json")):
      raise
  return final


def read_eval_prompts(directory: str) -> list[dict]:
  """The held-out evaluation prompts `{"id", "prompt", "constraints"}` of a corpus_dir."""
  with open(os.path.join(directory, "eval_prompts.jsonl")) as f:
    return [json.loads(line) for line in f]
