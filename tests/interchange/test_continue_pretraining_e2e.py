"""Continued annotated pretraining from a public base, end to end as processes: a tiny
random Llama with a Hugging Face tokenizer imported, 5 steps of annotated pretraining on a
JSONL corpus with its own tokenizer (gin/runs/continue_pretrain_hf.gin), 5 steps of
anchored SFT (the anchored mixture), exported, loaded in transformers, and its greedy
continuation equal to ours."""
import dataclasses
import json

import pytest

from annotanchor.data.hf_vocabulary import HuggingFaceVocabulary
from annotanchor.data.prompts import PromptTemplate
from tests import hf_tokenizer
from tests.faults.conftest import run
from tests.faults.test_convert_faults import TINY, import_hf, write_hf

DOCS = [{"text": "the cat sat on the mat.\n\nthe cat ran to the dog.",
         "annotations": ["<ann> topic:cat </ann>", "<ann> topic:dog </ann>"]},
        {"text": "A story of the sea:\n\nthe waves rolled over the harbour.",
         "annotations": ["<ann> genre:myth </ann>", "<ann> topic:sea </ann>"]}]
SFT = [{"prompt": "Tell a story of the sea.", "response": "the waves rolled over the harbour.",
        "annotation": "<ann> topic:sea </ann>"},
       {"prompt": "Tell a story of a cat.", "response": "the cat sat on the mat.",
        "annotation": "<ann> topic:cat </ann>"}]
SHAPE = ["--gin.TRAIN_STEPS=5", "--gin.BATCH_SIZE=2", "--gin.TASK_FEATURE_LENGTHS={'targets': 64}"]


def _jsonl(path, records):
  path.write_text("".join(json.dumps(r) + "\n" for r in records))
  return str(path)


@pytest.mark.slow
def test_import_pretrain_sft_export_generate(tmp_path):
  torch = pytest.importorskip("torch")
  transformers = pytest.importorskip("transformers")
  hf_dir = write_hf(tmp_path / "hf", dataclasses.replace(TINY, vocab_size=512, max_len=256))
  hf_tokenizer.build(hf_dir)
  base = tmp_path / "base"
  assert import_hf(hf_dir, base).returncode == 0
  docs = {"train": _jsonl(tmp_path / "docs.jsonl", DOCS * 4)}
  corpus = [f"--gin.VOCABULARY='{base / 'hf_tokenizer'}'", f"--gin.DOCUMENTS={docs!r}",
            f"--gin.user/registration.JsonlCorpus.cache_dir='{tmp_path / 'cache'}'"]
  done = run(["train", f"--gin_file={base / 'model.gin'}",
              "--gin_file=gin/runs/continue_pretrain_hf.gin", f"--gin.BASE='{base}'",
              f"--gin.MODEL_DIR='{tmp_path / 'annotated'}'", *corpus, *SHAPE], timeout=600)
  assert done.returncode == 0, done.stderr[-3000:]
  assert f"Initialising parameters from {base}" in done.stderr
  sft = {"train": _jsonl(tmp_path / "sft.jsonl", SFT * 4)}
  done = run(["train", f"--gin_file={base / 'model.gin'}", "--gin_file=gin/runs/sft.gin",
              "--gin_file=gin/runs/user_corpus.gin", *corpus, f"--gin.SFT_FILES={sft!r}",
              "--gin.MIXTURE_OR_TASK_NAME='user_anchored_sft_mixture'",
              f"--gin.INITIAL_CHECKPOINT_PATH='{tmp_path / 'annotated'}'",
              f"--gin.MODEL_DIR='{tmp_path / 'anchored'}'", *SHAPE], timeout=600)
  assert done.returncode == 0, done.stderr[-3000:]
  out = tmp_path / "exported"
  done = run(["convert", "export-hf", f"--gin.CHECKPOINT_PATH='{tmp_path / 'anchored'}'",
              f"--gin.HF_DIR='{out}'", f"--gin.HF_SOURCE='{base}'"])
  assert done.returncode == 0, done.stderr[-3000:]

  # Ours: greedy continuation of raw text, with the checkpoint alone (its metadata names
  # the tokenizer).
  prompts = _jsonl(tmp_path / "prompts.jsonl", [{"id": "a", "prompt": "Tell a story of a cat."}])
  done = run(["infer", "--gin_file=gin/runs/infer.gin",
              f"--gin.CHECKPOINT_PATH='{tmp_path / 'anchored'}'",
              f"--gin.OUTPUT_DIR='{tmp_path / 'infer'}'", f"--gin.PROMPTS_FILE='{prompts}'",
              "--gin.ARM='anchored'", "--gin.NUM_SAMPLES=1", "--gin.TEMPERATURE=0.0",
              "--gin.PROMPT_FORMAT='raw'", "--gin.MAX_NEW_TOKENS=12"], timeout=300)
  assert done.returncode == 0, done.stderr[-3000:]
  ours = json.loads((tmp_path / "infer" / "samples.jsonl").read_text().splitlines()[0])

  # transformers on the exported directory: the same ids (the start id our rule takes from
  # the exported tokenizer files: this one has no BOS, so EOS), greedy.
  tokenizer = transformers.AutoTokenizer.from_pretrained(str(out))
  model = transformers.AutoModelForCausalLM.from_pretrained(str(out), dtype=torch.float32)
  start = HuggingFaceVocabulary(str(out)).decoder_start_id
  assert start == tokenizer.eos_token_id and tokenizer.bos_token_id is None
  ids = [start] + tokenizer.encode("Tell a story of a cat.",
                                                    add_special_tokens=False)
  with torch.no_grad():
    generated = model.generate(torch.tensor([ids]), max_new_tokens=12, do_sample=False,
                               eos_token_id=tokenizer.eos_token_id,
                               pad_token_id=tokenizer.eos_token_id)[0, len(ids):].tolist()
  if tokenizer.eos_token_id in generated:
    generated = generated[:generated.index(tokenizer.eos_token_id)]
  assert generated, "the exported model drew EOS first: nothing to compare"
  response = PromptTemplate().split_generation(tokenizer.decode(generated)).response
  assert response == ours["response"]
