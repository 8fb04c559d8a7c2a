"""The numpy MiniLM embedder: zero distance for identical texts, parity with
sentence-transformers (skipped where the extra or torch is absent)."""
import importlib.util
import os

import numpy as np
import pytest

from annotanchor.evaluation import diversity
from annotanchor.evaluation.embedding import minilm
from annotanchor.evaluation.embedding.wordpiece import WordPieceTokenizer, normalize, pre_tokenize

HAVE_WEIGHTS = importlib.util.find_spec(minilm.PACKAGE) is not None
needs_weights = pytest.mark.skipif(not HAVE_WEIGHTS, reason="embeddings extra not installed")

TEXTS = ["Hello world!", "The quick brown fox jumps over the lazy dog.",
         "Café naïve résumé — “quotes” 東京 $100^2", "", "a " * 300,
         "unbelievably antidisestablishmentarianism xqzt"]


def test_wordpiece_on_a_tiny_vocab():
  vocab = {t: i for i, t in enumerate(
      ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "un", "##believ", "##able", "!", "cafe"])}
  assert normalize("Café\tUN\x00") == "cafe un"
  assert pre_tokenize("unbelievable!x") == ["unbelievable", "!", "x"]
  assert WordPieceTokenizer(vocab).encode("Unbelievable!") == [2, 4, 5, 6, 7, 3]
  assert WordPieceTokenizer(vocab, max_length=5).encode("cafe xyz unbelievable") == [2, 8, 1, 4, 3]  # truncated to 5


def test_missing_extra_names_it(monkeypatch):
  monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
  with pytest.raises(minilm.EmbeddingsUnavailable, match=r"annotanchor\[embeddings\]"):
    minilm.default_model_dir()


@pytest.fixture(scope="module")
def embedder():
  return minilm.MiniLMEmbedder()


@needs_weights
def test_identical_texts_zero_distance(embedder):
  emb = embedder(["The dragon slept.", "The dragon slept.", "The dragon slept."])
  assert emb.shape == (3, 384)
  np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-6)
  assert diversity.mean_pairwise_cosine_distance(emb) == pytest.approx(0.0, abs=1e-6)
  far = embedder(["The dragon slept.", "Quarterly tax filing deadlines for businesses."])
  assert diversity.mean_pairwise_cosine_distance(far) > 0.5


@needs_weights
def test_batching_does_not_change_embeddings(embedder):
  one = np.stack([embedder([t])[0] for t in TEXTS[:4]])
  np.testing.assert_allclose(embedder(TEXTS[:4]), one, atol=1e-5)


@needs_weights
@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("sentence_transformers") is None
                    or importlib.util.find_spec("torch") is None,
                    reason="reference sentence-transformers/torch not installed")
def test_parity_with_sentence_transformers(embedder):
  os.environ.setdefault("HF_HUB_OFFLINE", "1")
  from sentence_transformers import SentenceTransformer
  ref = SentenceTransformer(minilm.default_model_dir(), device="cpu")
  for text in TEXTS:
    assert embedder.tokenizer.encode(text) == ref.tokenizer(
        text, truncation=True, max_length=256)["input_ids"], text
  np.testing.assert_allclose(embedder(TEXTS), ref.encode(TEXTS), atol=1e-5)
