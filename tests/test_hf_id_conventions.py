"""With a Hugging Face vocabulary whose ids 0 and 1 are words, no real token is ever masked
or taken for padding: through the feature converter (packed and unpacked), the loss
weights, and the sampler/generate path. Pad, BOS and EOS are the vocabulary's own ids."""
import functools
import itertools
import json
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import seqio

from annotanchor.data import annotations, ids, pipeline, registration, reporting
from annotanchor.data.feature_converter import LOSS_WEIGHTS
from annotanchor.data.hf_vocabulary import HuggingFaceVocabulary
from annotanchor.data.prompts import PromptTemplate
from annotanchor.decoding.generate import DecodeSettings, Generator
from annotanchor.decoding.sampler import temperature_sample
from annotanchor.model.losses import loss_terms
from tests import hf_tokenizer

LENGTH = 64
DOCS = [{"text": "the cat sat on the mat.\n\nthe cat ran.",
         "annotations": ["<ann> topic:cat </ann>", "<ann> topic:the_cat </ann>"]},
        {"text": "the dog ran to the cat", "annotations": ["<ann> topic:dog </ann>"]},
        {"text": "héllo wörld, the cat 🙂", "annotations": ["<ann> genre:myth </ann>"]}] * 3
SFT = [{"prompt": "the cat?", "response": "the cat sat on the mat.",
        "annotation": "<ann> topic:cat </ann>"},
       {"prompt": "Tell a story of the sea.", "response": "the waves rolled, the cat slept.",
        "annotation": "<ann> topic:sea </ann>"}] * 3
# Tokenizer variants: EOS reused as BOS and pad (GPT-2 style), or dedicated tokens.
VARIANTS = {"eos_reused": {}, "own_pad_bos": {"pad_token": "<|pad|>", "bos_token": "<|bos|>"}}


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def corpus(request, tmp_path_factory):
  root = tmp_path_factory.mktemp(request.param)
  directory = hf_tokenizer.build(root / "tok", **VARIANTS[request.param])
  for name, records in (("docs.jsonl", DOCS), ("sft.jsonl", SFT)):
    (root / name).write_text("".join(json.dumps(r) + "\n" for r in records))
  prefix = f"hfids_{request.param}"
  registration.JsonlCorpus(name=prefix, vocabulary_path=directory,
                           documents={"train": str(root / "docs.jsonl")},
                           sft={"train": str(root / "sft.jsonl")},
                           mixture_rates=registration.AnchoredMixtureRates(),
                           cache_dir=str(root / "cache")).register()
  return prefix, HuggingFaceVocabulary(directory)


def _examples(task):
  # seed=0, the seed `_rows` reads with (pipeline.get_dataset's default): anchored SFT draws
  # its key-only examples from the read's seed, and seed=None draws a fresh one each read.
  ds = seqio.get_mixture_or_task(task).get_dataset(None, split="train", shuffle=False, seed=0)
  return [(ex["targets"], ex[LOSS_WEIGHTS]) for ex in ds.as_numpy_iterator()]


def _rows(task, pack):
  return list(pipeline.get_dataset(task, {"targets": LENGTH}, 1, shuffle=False, pack=pack,
                                   repeat=False))


@pytest.mark.parametrize("kind", ["pretrain", "sft_anchored"])
@pytest.mark.parametrize("pack", [True, False])
def test_feature_converter_keeps_every_real_token(corpus, kind, pack):
  prefix, vocab = corpus
  task = f"{prefix}_{kind}"
  examples = _examples(task)
  assert all(len(t) <= LENGTH for t, _ in examples)  # Nothing trimmed: all must come back.
  tokens = np.concatenate([t for t, _ in examples])
  assert {0, 1} <= set(tokens.tolist()) and 0 not in (vocab.pad_id, vocab.eos_id)
  rows = [{k: v[0] for k, v in batch.items()} for batch in _rows(task, pack)]
  start = vocab.decoder_start_id
  got_tokens, got_weights = [], []
  for row in rows:
    if pack:
      real = row["decoder_segment_ids"] > 0
      starts = real & (row["decoder_positions"] == 0)
    else:
      (t, _), = [examples[len(got_tokens)]]
      real = np.arange(LENGTH) < len(t)
      starts = np.arange(LENGTH) == 0
    got_tokens.append(row["decoder_target_tokens"][real])
    got_weights.append(row["decoder_loss_weights"][real])
    # Padding is the vocabulary's pad with weight 0; every sequence starts from its BOS.
    assert np.all(row["decoder_target_tokens"][~real] == vocab.pad_id)
    assert np.all(row["decoder_loss_weights"][~real] == 0)
    assert np.all(row["decoder_input_tokens"][starts] == start)
    shifted = row["decoder_target_tokens"][:-1][real[1:] & ~starts[1:]]
    np.testing.assert_array_equal(row["decoder_input_tokens"][1:][real[1:] & ~starts[1:]],
                                  shifted)
  np.testing.assert_array_equal(np.concatenate(got_tokens), tokens)
  np.testing.assert_array_equal(np.concatenate(got_weights),
                                np.concatenate([w for _, w in examples]))
  # Real ids 0 and 1 in the loss: the pretraining task weighs every token.
  weighted = np.concatenate(got_tokens)[np.concatenate(got_weights) > 0]
  assert {0, 1} <= set(weighted.tolist())


@pytest.mark.parametrize("pack", [True, False])
def test_loss_counts_every_weighted_token_whatever_its_id(corpus, pack):
  prefix, vocab = corpus
  task = f"{prefix}_sft_anchored"
  batch = {k: np.concatenate([b[k] for b in _rows(task, pack)]) for k in _rows(task, pack)[0]}
  targets, weights = batch["decoder_target_tokens"], batch["decoder_loss_weights"]
  logits = np.random.default_rng(0).normal(size=targets.shape + (vocab.vocab_size,))
  terms = loss_terms(jnp.asarray(logits, jnp.float32), targets, weights,
                     batch.get("decoder_segment_ids"))
  expected = jax.nn.logsumexp(logits, axis=-1) - np.take_along_axis(
      logits, targets[..., None], axis=-1)[..., 0]
  np.testing.assert_allclose(terms["cross_entropy_sum"], np.sum(expected * weights), rtol=1e-5)
  # (Not compared with _examples' weights: anchored SFT masks values at random in a share of
  # examples, so two reads of the task differ; the converter test compares one read.)
  assert terms["weight_sum"] == pytest.approx(float(np.sum(weights)))
  assert np.sum(weights[targets == 0]) > 0 and np.sum(weights[targets == 1]) > 0


@pytest.mark.slow
def test_token_accounting_counts_the_tokenizers_tokens(corpus):
  prefix, vocab = corpus
  task = f"{prefix}_pretrain"
  report = reporting.token_report(task, split="train")
  examples = _examples(task)
  assert report["tokens"] == sum(len(t) for t, _ in examples)
  # Annotation tokens counted in Python: each annotation's pieces tokenized one by one.
  fmt = annotations.AnnotationFormat()
  expected = sum(len(vocab.encode(piece)) for d in DOCS for a in d["annotations"]
                 for piece, _ in annotations.annotation_pieces(
                     annotations.parse_annotation(a, fmt), fmt))
  assert report["annotation_tokens"] == expected > 0
  assert reporting.token_report(f"{prefix}_pretrain_plain", split="train")[
      "annotation_tokens"] == 0
  # Every pretraining example ends with one weighted EOS (padding, EOS too in one variant,
  # has weight 0): the count is the number of packed segments.
  rows = itertools.islice(pipeline.get_dataset(task, {"targets": LENGTH}, 1), 3)
  segments = sum(int(r["decoder_segment_ids"].max()) for r in rows)
  assert reporting.examples_trained_on(task, {"targets": LENGTH}, 1, 3) == segments >= 3


class BigramSampler:
  """Stands in for DecoderSampler: the real temperature_sample over a bigram table."""
  batch_degree = 1
  config = types.SimpleNamespace(max_len=256)

  def __init__(self, table):
    self.table = jnp.asarray(table, jnp.float32)
    self.prompts, self.paddings = [], []

  def __call__(self, params, tokens, lengths, keys, sampling):
    self.prompts.append([row[len(row) - n:].tolist() for row, n in zip(tokens, lengths)])
    self.paddings.append([row[:len(row) - n].tolist() for row, n in zip(tokens, lengths)])
    fn = lambda t, positions, segment_ids, cache: (self.table[t], cache)
    run = jax.jit(functools.partial(temperature_sample, fn, None), static_argnums=3)
    return run(jnp.asarray(tokens), jnp.asarray(lengths), keys, sampling)


def test_sampling_draws_ids_zero_and_one_and_stops_only_at_eos(corpus):
  _, vocab = corpus
  # Every token is followed by " the" (id 0); " the" by " cat" (id 1); " cat" by EOS.
  table = np.full((vocab.vocab_size, vocab.vocab_size), -10.0, np.float32)
  table[:, 0] = 10.0
  table[0, 0], table[0, 1] = -10.0, 10.0
  table[1, 0], table[1, vocab.eos_id] = -10.0, 10.0
  sampler = BigramSampler(table)
  generator = Generator(sampler, None, vocab, DecodeSettings(
      num_samples=2, temperature=0.0, max_new_tokens=8, prompt_format="raw"), PromptTemplate())
  continuations = generator.continue_texts(["a", "b"], ["Tell.", "Tell a longer story."])
  for row in continuations:
    for c in row:
      # Responses are stripped (PromptTemplate.split_generation): " the cat" -> "the cat".
      assert c.generation.response == (hf_tokenizer.WORD_0 + hf_tokenizer.WORD_1).strip()
      assert (c.num_tokens, c.ended) == (3, True)
  # Prompts start from the vocabulary's BOS and are left-padded with its pad.
  assert [p[0] for p in sampler.prompts[0]] == [ids.decoder_start_id(vocab)] * 2
  assert sampler.prompts[0][1][1:] == vocab.encode("Tell a longer story.")
  assert all(set(row) == {vocab.pad_id} for row in sampler.paddings[0])
