"""`convert export-hf` of a checkpoint trained here from scratch writes the tokenizer it was
trained with and its token ids, as processes: a tiny model trained on a JsonlCorpus with a
Hugging Face tokenizer whose pad, BOS and EOS are its own tokens (ids 0 and 1 are words),
exported, and read by transformers: the same ids for every text, the same special ids in
config.json, generation_config.json and the tokenizer, and the same greedy continuation,
ended by EOS. A SentencePiece vocabulary exports as a tokenizer.json transformers reads
with the same ids; one that cannot be converted exactly is refused in one line."""
import dataclasses
import io
import json
import os

import jax
import numpy as np
import pytest
import seqio

from annotanchor.data import ids, vocabulary
from annotanchor.data.hf_vocabulary import HuggingFaceVocabulary
from annotanchor.data.prompts import PromptTemplate, marker_symbols
from annotanchor.decoding.model_sampler import DecoderSampler
from annotanchor.decoding.sampler import SamplingConfig
from annotanchor.interchange import export_hf
from annotanchor.interchange.import_hf import ConversionError
from annotanchor.training import metadata, partitioning
from tests import hf_tokenizer
from tests.faults.conftest import run, write_corpus_gin
from tests.interchange.conftest import restore

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

# Short documents: 30 steps teach the tiny model to end them, so greedy decoding draws EOS.
DOCS = [{"text": "the cat sat on the mat.", "annotations": ["<ann> topic:cat </ann>"]},
        {"text": "the dog ran to the sea.", "annotations": ["<ann> topic:dog </ann>"]}]
PROMPTS = ["the cat sat on", "the dog ran"]
TEXTS = [*hf_tokenizer.TEXTS, "<ann> topic:sea </ann> The waves.\n\n  two  spaces\tand a tab",
         "<user> Tell me a story. <assistant> the cat",
         *marker_symbols(PromptTemplate())]
IDS = ("bos_token_id", "eos_token_id", "pad_token_id")


@dataclasses.dataclass
class Exported:
  model_dir: str
  out: str
  vocab: object  # the vocabulary the checkpoint records
  stdout: str


def _train_and_export(root, vocabulary_path: str, *, steps: int) -> Exported:
  (root / "docs.jsonl").write_text("".join(json.dumps(d) + "\n" for d in DOCS * 8))
  corpus = write_corpus_gin(root / "corpus.gin", vocabulary_path=vocabulary_path,
                            documents={"train": str(root / "docs.jsonl")},
                            cache_dir=str(root / "cache"))
  model_dir, out = root / "run", root / "exported"
  done = run(["train", "--gin_file=gin/models/tiny.gin", "--gin_file=gin/runs/pretrain.gin",
              f"--gin_file={corpus}", f"--gin.MODEL_DIR='{model_dir}'",
              f"--gin.TRAIN_STEPS={steps}", "--gin.BATCH_SIZE=4",
              "--gin.TASK_FEATURE_LENGTHS={'targets': 64}",
              "--gin.MIXTURE_OR_TASK_NAME='user_pretrain_plain'", "--gin.VOCAB_SIZE=512",
              "--gin.optim.OptimizerConfig.warmup_steps=1",
              "--gin.optim.OptimizerConfig.learning_rate=1e-2"], timeout=600)
  assert done.returncode == 0, done.stderr[-3000:]
  exported = run(["convert", "export-hf", f"--gin.CHECKPOINT_PATH='{model_dir}'",
                  f"--gin.HF_DIR='{out}'"], timeout=300)
  assert exported.returncode == 0, exported.stderr[-3000:]
  saved, _ = metadata.read_metadata(str(model_dir))
  return Exported(str(model_dir), str(out), metadata.vocabulary_from(saved.vocabulary,
                                                                      str(model_dir)),
                  exported.stdout)


@pytest.fixture(scope="module")
def hf_exported(tmp_path_factory):
  root = tmp_path_factory.mktemp("hf")
  tokenizer = hf_tokenizer.build(root / "tok", pad_token="<|pad|>", bos_token="<|bos|>")
  return _train_and_export(root, tokenizer, steps=30)


@pytest.fixture(scope="module")
def spm_exported(tmp_path_factory):
  root = tmp_path_factory.mktemp("spm")
  texts = ([d["text"] for d in DOCS] + hf_tokenizer.TEXTS +
           [t for d in DOCS for t in d["annotations"]])
  model = vocabulary.train_sentencepiece(texts * 20, str(root / "spm.model"), vocab_size=300)
  return _train_and_export(root, model, steps=2)


def _json(out, name):
  with open(os.path.join(out, name)) as f:
    return json.load(f)


def _ours(exported: Exported, prompts: list[list[int]], tokens: int) -> list[list[int]]:
  """annotanchor's greedy continuations (annotanchor/decoding), EOS included when drawn:
  the prompts in one batch, left-padded as `infer` pads them."""
  saved, _ = metadata.read_metadata(exported.model_dir)
  sampler = DecoderSampler(saved.model, partitioning.make_mesh({"data": -1}))
  rows = -(-len(prompts) // sampler.batch_degree) * sampler.batch_degree
  width = max(map(len, prompts))
  batch = np.full((rows, width), exported.vocab.pad_id)
  lengths = np.ones(rows, int)
  for i in range(rows):
    prompt = prompts[i % len(prompts)]
    batch[i, width - len(prompt):], lengths[i] = prompt, len(prompt)
  out = sampler(restore(exported.model_dir, saved.model), batch, lengths, jax.random.PRNGKey(0),
                SamplingConfig(max_new_tokens=tokens, temperature=0.0,
                               eos_id=exported.vocab.eos_id, pad_id=exported.vocab.pad_id))
  drawn, counts = np.asarray(out.tokens)[:, 0], np.asarray(out.lengths)[:, 0]
  return [drawn[i, :counts[i]].tolist() for i in range(len(prompts))]


def _theirs(out: str, prompts: list[list[int]], tokens: int) -> list[list[int]]:
  """transformers' greedy continuations with the exported generation_config alone."""
  model = transformers.AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
  continuations = []
  for prompt in prompts:
    with torch.no_grad():
      generated = model.generate(torch.tensor([prompt]), max_new_tokens=tokens, do_sample=False,
                                 attention_mask=torch.ones(1, len(prompt), dtype=torch.long))
    continuations.append(generated[0, len(prompt):].tolist())
  return continuations


def test_the_export_holds_the_tokenizer_and_the_ids_trained_with(hf_exported):
  vocab = hf_exported.vocab
  assert isinstance(vocab, HuggingFaceVocabulary)
  assert {"tokenizer.json", "tokenizer_config.json"} <= set(os.listdir(hf_exported.out))
  # The tokenizer's own pad/BOS/EOS, none of them 0 or 1 (words in this vocabulary).
  trained = {"bos_token_id": ids.decoder_start_id(vocab), "eos_token_id": vocab.eos_id,
             "pad_token_id": vocab.pad_id}
  assert trained["bos_token_id"] == vocab.bos_id and not {0, 1} & set(trained.values())
  config, generation = (_json(hf_exported.out, n) for n in ("config.json",
                                                            "generation_config.json"))
  assert {k: config[k] for k in IDS} == trained
  assert {k: generation[k] for k in IDS} == trained
  tokenizer = transformers.AutoTokenizer.from_pretrained(hf_exported.out)
  assert {k: getattr(tokenizer, k) for k in IDS} == trained
  assert "tokenizer: the Hugging Face tokenizer" in hf_exported.stdout


def test_transformers_tokenizer_gives_our_ids(hf_exported):
  vocab = hf_exported.vocab
  tokenizer = transformers.AutoTokenizer.from_pretrained(hf_exported.out)
  start = ids.decoder_start_id(vocab)
  for text in TEXTS:
    ours = vocab.encode(text)
    assert tokenizer.encode(text, add_special_tokens=False) == ours, text
    assert tokenizer.decode(ours) == text
    # An encode starts with the id training shifted in, as our prompts do.
    assert tokenizer(text).input_ids == [start] + ours, text
  assert {0, 1} <= {i for t in TEXTS for i in vocab.encode(t)}


def test_transformers_greedy_generation_is_ours_and_stops_at_eos(hf_exported):
  vocab = hf_exported.vocab
  tokenizer = transformers.AutoTokenizer.from_pretrained(hf_exported.out)
  prompts = [tokenizer(text).input_ids for text in PROMPTS]
  ours = _ours(hf_exported, prompts, 16)
  for continuation in ours:  # Ended by EOS, before the cap.
    assert continuation[-1] == vocab.eos_id and len(continuation) < 16, ours
  assert _theirs(hf_exported.out, prompts, 16) == ours


def test_a_sentencepiece_vocabulary_exports_as_a_tokenizer_transformers_reads(spm_exported):
  vocab = spm_exported.vocab
  assert isinstance(vocab, seqio.SentencePieceVocabulary)
  assert {"tokenizer.json", "tokenizer.model", "tokenizer_config.json"} <= set(
      os.listdir(spm_exported.out))
  tokenizer = transformers.AutoTokenizer.from_pretrained(spm_exported.out)
  # SeqIO's ids: pad 0 is also the id shifted in before every sequence, EOS 1.
  trained = {"bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 0}
  assert ids.decoder_start_id(vocab) == 0 and (vocab.eos_id, vocab.pad_id) == (1, 0)
  for name in ("config.json", "generation_config.json"):
    assert {k: _json(spm_exported.out, name)[k] for k in IDS} == trained
  assert {k: getattr(tokenizer, k) for k in IDS} == trained
  for text in TEXTS:
    ours = vocab.encode(text)
    assert tokenizer.encode(text, add_special_tokens=False) == ours, text
    assert tokenizer.decode(ours, skip_special_tokens=True) == vocab.decode(ours) == text
    assert tokenizer(text).input_ids == [0] + ours
  prompts = [tokenizer(text).input_ids for text in PROMPTS]
  assert _theirs(spm_exported.out, prompts, 8) == _ours(spm_exported, prompts, 8)


@pytest.mark.parametrize("variant", [
    {}, {"pad_token": "<|pad|>", "bos_token": "<|bos|>"}], ids=["eos_reused", "own_pad_bos"])
@pytest.mark.parametrize("markers", ["plain", "special"])
def test_each_hugging_face_tokenizer_kind_is_written_with_its_ids(tmp_path, variant, markers):
  """No BOS (GPT-2 style: EOS is shifted in) or its own; the markers as text or added."""
  vocab = HuggingFaceVocabulary(hf_tokenizer.build(tmp_path / "tok", **variant),
                                markers=markers)
  out = str(tmp_path / "out")
  os.makedirs(out)
  export_hf.write_tokenizer(vocab, out, markers=marker_symbols(PromptTemplate()),
                            max_len=64, where="test")
  tokenizer = transformers.AutoTokenizer.from_pretrained(out)
  start = ids.decoder_start_id(vocab)
  assert (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id) == (
      start, vocab.eos_id, vocab.pad_id)
  for text in TEXTS:
    assert tokenizer(text).input_ids == [start] + vocab.encode(text), text
    assert tokenizer.decode(vocab.encode(text)) == text
  # Our own class reads the export back with the same ids.
  again = HuggingFaceVocabulary(out, markers=markers)
  assert (again.decoder_start_id, again.eos_id, again.pad_id) == (start, vocab.eos_id,
                                                                   vocab.pad_id)


def test_a_sentencepiece_model_that_cannot_be_converted_exactly_is_refused(tmp_path):
  import sentencepiece as spm

  model = io.BytesIO()
  spm.SentencePieceTrainer.train(sentence_iterator=iter(hf_tokenizer.TEXTS * 20),
                                 model_writer=model, model_type="bpe", vocab_size=300,
                                 hard_vocab_limit=False, byte_fallback=True, minloglevel=2)
  (tmp_path / "bpe.model").write_bytes(model.getvalue())
  vocab = vocabulary.load_vocabulary(str(tmp_path / "bpe.model"))
  with pytest.raises(ConversionError) as refused:
    export_hf.write_tokenizer(vocab, str(tmp_path), markers=[], max_len=64,
                              where="CHECKPOINT_PATH='x'")
  message = str(refused.value)
  assert "\n" not in message and "BPE" in message and "only unigram" in message, message
