"""storyworld SeqIO tasks: caching, vocabulary coverage, layouts, mixture rates."""
import dataclasses
import itertools
import os

import gin
import numpy as np
import pytest
import seqio

from annotanchor.data import pipeline, registration, reporting
from annotanchor.data.segments import ANNOTATION_MASK
from annotanchor.data.feature_converter import LOSS_WEIGHTS
from annotanchor.data.prompts import PromptTemplate
from annotanchor.errors import SettingError
from tasks.storyworld import build, probes


def _examples(name, n, split="train", **kwargs):
  task = seqio.get_mixture_or_task(name)
  ds = task.get_dataset(None, split=split, shuffle=False, seed=0, **kwargs)
  return list(itertools.islice(ds.as_numpy_iterator(), n))


def test_corpus_is_cached(storyworld_cache):
  first = storyworld_cache.directory()
  stamp = os.path.getmtime(os.path.join(first, "spm.model"))
  assert storyworld_cache.directory() == first and first.startswith(storyworld_cache.cache_dir)
  assert os.path.getmtime(os.path.join(first, "spm.model")) == stamp
  other = dataclasses.replace(storyworld_cache, vocab_size=600)
  assert os.path.dirname(other.directory()) == os.path.dirname(first) != other.directory()


def _vocabulary():
  return seqio.get_mixture_or_task("storyworld_sft").output_features["targets"].vocabulary


def test_vocabulary_is_compact_and_round_trips(storyworld_cache):
  vocab = _vocabulary()
  assert vocab.vocab_size <= 600
  template = PromptTemplate()
  for marker in ("<ann>", "</ann>", template.user_marker, template.assistant_marker):
    assert len(vocab.encode(marker)) == 1
  (ex,) = _examples("storyworld_sft_anchored", 1)
  text = vocab.decode(ex["targets"][:-1].tolist())
  assert text.startswith(template.prompt_prefix) and text.endswith("The End.")
  assert vocab.unk_id not in ex["targets"]


def test_anchored_sft_layout_on_real_vocabulary(storyworld_cache):
  vocab = _vocabulary()
  for ex in _examples("storyworld_sft_anchored", 20):
    weights, mask = ex[LOSS_WEIGHTS], ex[ANNOTATION_MASK]
    annotation = vocab.decode(ex["targets"][mask == 1].tolist())
    assert annotation.startswith("<ann> kind:story ") and annotation.endswith(" </ann>")
    # The loss covers exactly the response and EOS unless keys are unmasked.
    response = vocab.decode(ex["targets"][(weights > 0) & (mask == 0)].tolist())
    assert response.startswith(" Title: ") and ex["targets"][-1] == 1 and weights[-1] == 1


def test_sft_context_annotations_come_from_stories_only(storyworld_cache):
  vocab = _vocabulary()
  examples = _examples("storyworld_annotation_only_sft_context", 40, split="validation")
  kinds = {vocab.decode(e["targets"][e[ANNOTATION_MASK] == 1].tolist()).split()[1]
           for e in examples}
  assert kinds == {"kind:story"}
  # The pretraining form keeps every kind of document.
  pretraining_form = _examples("storyworld_annotation_only", 200, split="validation")
  assert any("kind:place" in vocab.decode(e["targets"].tolist()) for e in pretraining_form)


def test_annotation_fraction_differs_between_arms(storyworld_cache):
  annotated = _examples("storyworld_pretrain", 50, split="validation")
  plain = _examples("storyworld_pretrain_plain", 50, split="validation")
  fraction = sum(e[ANNOTATION_MASK].sum() for e in annotated) / sum(e["targets"].size for e in annotated)
  assert 0.2 < fraction < 0.6
  assert all(e[ANNOTATION_MASK].sum() == 0 for e in plain)
  doc_tokens = sum(e["targets"].size - e[ANNOTATION_MASK].sum() for e in annotated)
  # Chunks tokenize alike in both arms; only the leading space after `</ann>` differs.
  assert abs(doc_tokens - sum(e["targets"].size for e in plain)) < 0.05 * doc_tokens


@pytest.mark.parametrize("rate,fraction", [(0.2, 0.5)])
def test_mixture_rates_within_sampling_error(storyworld_cache, rate, fraction):
  rates = registration.AnchoredMixtureRates(annotation_only_rate=rate,
                                            sft_context_fraction=fraction)
  dataclasses.replace(storyworld_cache, mixture_rates=rates).register()
  n = 1200
  try:
    ds = seqio.get_mixture_or_task("storyworld_anchored_sft_mixture").get_dataset(
        {"targets": 512}, split="train", shuffle=True, seed=3)
  finally:
    storyworld_cache.register()  # The session's rates again for the tests after this one.
  prompt_ids = _vocabulary().encode(PromptTemplate().user_marker)
  counts = {"sft": 0, "pretraining_form": 0, "sft_context": 0}
  for ex in itertools.islice(ds.as_numpy_iterator(), n):
    if ex["targets"][-1] == 1:
      counts["sft"] += 1
    elif ex["targets"][0] == prompt_ids[0]:
      counts["sft_context"] += 1
    else:
      counts["pretraining_form"] += 1
  expected = {"sft": 1 - rate, "pretraining_form": rate * (1 - fraction),
              "sft_context": rate * fraction}
  for kind, p in expected.items():
    assert abs(counts[kind] - n * p) < 4 * np.sqrt(n * p * (1 - p)), (kind, counts)


def test_mixture_rates_are_fixed_when_the_corpus_is_built(storyworld_cache):
  """`AnchoredMixtureRates.*` bindings apply when a Storyworld is built from gin, and a
  later change of gin does not reach the registered mixture."""
  with gin.unlock_config():
    gin.parse_config_files_and_bindings(["gin/experiments/storyworld_data.gin"],
                                        ["AnchoredMixtureRates.annotation_only_rate = 0.4"])
  try:
    world = registration.configured_corpora()[0]
    assert world.mixture_rates.annotation_only_rate == 0.4
    dataclasses.replace(storyworld_cache, mixture_rates=world.mixture_rates).register()
    with gin.unlock_config():
      gin.parse_config(["AnchoredMixtureRates.annotation_only_rate = 0.9"])
    mixture = seqio.get_mixture_or_task("storyworld_anchored_sft_mixture")
    rates = {t.name: mixture.get_rate(t) for t in mixture.tasks}
  finally:
    gin.clear_config()
    storyworld_cache.register()
  assert rates["storyworld_sft_anchored"] == pytest.approx(0.6)


def test_eval_prompt_task(storyworld_cache):
  examples = _examples("storyworld_eval_prompts", 100, split="test")
  assert len(examples) == 40
  vocab = _vocabulary()
  for ex in examples[:5]:
    assert vocab.decode(ex["targets"].tolist()) == PromptTemplate().build(ex["prompt"].decode())
    assert not ex[LOSS_WEIGHTS].any()


def test_pipeline_packs_the_pretraining_task(storyworld_cache):
  batch = next(pipeline.get_dataset("storyworld_pretrain", {"targets": 256}, 2, seed=0))
  assert batch["decoder_target_tokens"].shape == (2, 256)
  assert batch["decoder_segment_ids"].max() >= 1


def test_token_report_matches_direct_count(storyworld_cache):
  annotated = reporting.token_report("storyworld_pretrain", max_examples=30)
  plain = reporting.token_report("storyworld_pretrain_plain", max_examples=30)
  examples = _examples("storyworld_pretrain", 30, split="validation")
  assert annotated["tokens"] == sum(e["targets"].size for e in examples)
  assert annotated["annotation_tokens"] == sum(e[ANNOTATION_MASK].sum() for e in examples)
  assert plain["annotation_fraction"] == 0
  budget = 10_000
  assert reporting.document_tokens_seen(annotated, budget) == pytest.approx(
      budget * annotated["document_tokens"] / annotated["tokens"])


def test_build_and_probes_refuse_a_run_without_one_storyworld():
  gin.clear_config()
  with pytest.raises(SettingError, match="holds 0 Storyworld corpora"):
    probes.probe_records()
  with pytest.raises(SettingError, match="holds 0 Storyworld corpora"):
    build.check_settings()


def test_the_draw_and_the_mixture_shares_are_bound_where_a_reader_sees_them():
  """A Storyworld built without `Storyworld.config` or `.mixture_rates` is refused by name,
  instead of building them from `StoryworldConfig.*` bindings that no gin line connects."""
  with gin.unlock_config():
    gin.parse_config(["import tasks.storyworld", "configured_corpora.corpora = [@Storyworld()]",
                      "StoryworldConfig.seed = 3"])
  try:
    with pytest.raises(SettingError, match=r"Storyworld.config=None: expected a StoryworldConfig"):
      registration.configured_corpora()
  finally:
    gin.clear_config()
  with gin.unlock_config():
    gin.parse_config_files_and_bindings(["gin/experiments/storyworld_data.gin"],
                                        ["StoryworldConfig.seed = 3"])
  try:
    assert registration.configured_corpora()[0].config.seed == 3
  finally:
    gin.clear_config()
