"""JsonlCorpus.mixture_rates is bound where a reader sees it (gin/runs/user_corpus.gin), as
Storyworld's is: the corpus builds no AnchoredMixtureRates of its own that would read
`AnchoredMixtureRates.*` unseen, and one with both documents and SFT examples refuses to go
without it."""
import re

import gin
import pytest

from annotanchor import gin_utils
from annotanchor.data import registration
from annotanchor.errors import SettingError

BOTH = {"documents": {"train": "d.jsonl"}, "sft": {"train": "s.jsonl"}}


def test_a_corpus_with_a_mixture_needs_its_rates_given():
  with pytest.raises(SettingError, match=re.escape(
      "JsonlCorpus.mixture_rates=None: expected AnchoredMixtureRates (in gin: "
      "JsonlCorpus.mixture_rates = @AnchoredMixtureRates())")):
    registration.JsonlCorpus(name="m", vocabulary_path="v", **BOTH)
  rates = registration.AnchoredMixtureRates(annotation_only_rate=0.2)
  assert registration.JsonlCorpus(name="m", vocabulary_path="v", mixture_rates=rates,
                                  **BOTH).mixture_rates is rates
  # Without a mixture there is nothing to share out.
  assert registration.JsonlCorpus(name="m", vocabulary_path="v",
                                  sft=BOTH["sft"]).mixture_rates is None


def test_user_corpus_gin_binds_the_rates_and_the_shares_reach_them():
  gin.clear_config()
  try:
    gin_utils.parse_and_bind([
        "--gin_file=gin/runs/user_corpus.gin", "--gin.VOCABULARY='v'",
        "--gin.DOCUMENTS={'train': 'd.jsonl'}", "--gin.SFT_FILES={'train': 's.jsonl'}",
        "--gin.AnchoredMixtureRates.annotation_only_rate=0.3"])
    (corpus,) = registration.configured_corpora()
  finally:
    gin.clear_config()
  assert corpus.mixture_rates == registration.AnchoredMixtureRates(annotation_only_rate=0.3)
