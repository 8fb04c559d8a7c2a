"""Diversity metrics on constructed cases with known answers."""
import math

import numpy as np
import pytest

from annotanchor.evaluation import diversity
from annotanchor.evaluation.labels import UNKNOWN


@pytest.mark.parametrize("k", [1, 2, 3, 5, 8])
def test_uniform_labels_give_log2_k(k):
  labels = [f"v{i % k}" for i in range(4 * k)]
  assert diversity.entropy_bits(labels) == pytest.approx(math.log2(k), abs=1e-12)


def test_identical_labels_give_zero():
  assert diversity.entropy_bits(["a"] * 7) == 0.0


def test_skewed_entropy():
  # p = (3/4, 1/4): H = 0.811278... bits.
  assert diversity.entropy_bits(["a", "a", "a", "b"]) == pytest.approx(0.8112781244591328)


def _rows():
  return [
      [{"genre": "x", "hero": "a"}, {"genre": "y", "hero": "a"},
       {"genre": "x", "hero": UNKNOWN}, {"genre": "y"}],
      [{"genre": "x", "hero": "a"}] * 4,
  ]


def test_semantic_entropy_unknown_as_label():
  ent, rate = diversity.semantic_entropy(_rows(), ["genre", "hero"], unknown="label")
  np.testing.assert_allclose(ent, [[1.0, 0.0], [1.0, 0.0]])
  np.testing.assert_allclose(rate, [[0.0, 0.0], [0.5, 0.0]])


def test_semantic_entropy_unknown_dropped():
  rows = _rows() + [[{"genre": "x"}] * 4]
  ent, _ = diversity.semantic_entropy(rows, ["genre", "hero"], unknown="drop")
  assert ent[1, 0] == 0.0  # only "a" readable
  assert math.isnan(ent[1, 2])  # nothing readable
  with pytest.raises(ValueError, match="unknown="):
    diversity.semantic_entropy(rows, ["genre"], unknown="ignore")


def test_attribute_names():
  assert diversity.attribute_names(_rows()) == ["genre", "hero"]


def test_distinct_n():
  assert diversity.distinct_n(["a b", "a b"], 1) == 0.5
  assert diversity.distinct_n(["a b c", "A B d"], 2) == pytest.approx(3 / 4)
  assert math.isnan(diversity.distinct_n(["a", "b"], 2))
  with pytest.raises(ValueError):
    diversity.distinct_n(["a"], 0)


def test_distinct_k_text_classes():
  texts = ["The end.", "the  END", "Another story!", "another story", "Third"]
  assert diversity.distinct_k(texts) == 3
  assert diversity.distinct_k(texts, k=2) == 1
  assert diversity.distinct_k(["same"] * 6) == 1
  assert diversity.distinct_k([f"t{i}" for i in range(6)]) == 6
  with pytest.raises(ValueError, match="k=7"):
    diversity.distinct_k(["a"] * 6, k=7)


def test_distinct_k_embedding_threshold_is_greedy_against_representatives():
  # b is within the threshold of a and of c, but a and c are not: a founds class 1,
  # b joins it, c founds class 2 (NoveltyBench's first-member rule).
  ang = np.deg2rad([0.0, 20.0, 40.0])
  emb = np.stack([np.cos(ang), np.sin(ang)], axis=1)
  thr = math.cos(np.deg2rad(25.0))
  assert diversity.distinct_k(["a", "b", "c"], embeddings=emb, threshold=thr) == 2
  assert diversity.distinct_k(["a", "b", "c"], embeddings=emb, threshold=0.0) == 1
  with pytest.raises(ValueError, match="needs embeddings"):
    diversity.distinct_k(["a"], threshold=0.5)


def test_cosine_distance_known_values():
  same = np.ones((4, 3))
  assert diversity.mean_pairwise_cosine_distance(same) == 0.0
  assert diversity.mean_pairwise_cosine_distance(np.eye(3)) == pytest.approx(1.0)
  # e1, -e1: distance 2 for the one pair.
  assert diversity.mean_pairwise_cosine_distance(np.array([[1.0, 0], [-2.0, 0]])) == 2.0
  assert math.isnan(diversity.mean_pairwise_cosine_distance(np.ones((1, 3))))
  with pytest.raises(ValueError, match="zero vector"):
    diversity.mean_pairwise_cosine_distance(np.zeros((2, 3)))


def test_normalize_text():
  assert diversity.normalize_text("  Ｔhe  End. ") == "the end"


def test_semantic_entropy_leaves_out_what_the_prompt_fixes():
  # The docstring's example.
  labels = [[{"hero": "a", "place": "x"}, {"hero": "b", "place": "x"}],
            [{"hero": "a", "place": "x"}, {"hero": "a", "place": "y"}]]
  ent, rate = diversity.semantic_entropy(labels, ["hero", "place"], fixed=[{"place"}, set()])
  np.testing.assert_array_equal(ent, [[1.0, 0.0], [np.nan, 1.0]])
  np.testing.assert_array_equal(rate, [[0.0, 0.0], [np.nan, 0.0]])
