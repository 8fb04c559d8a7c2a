"""Diversity of one prompt's N samples; every function returns one number per prompt.

Arm-level figures are means over prompts (see `compare.py`), so each metric here is
computed per prompt: a model that says different things to different prompts but
the same thing to each prompt is collapsed, and the prompt is the unit the bootstrap
resamples.
"""
import collections
import re
import unicodedata
from typing import Callable, Collection, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from annotanchor.errors import SettingError
from annotanchor.evaluation.labels import UNKNOWN

UNKNOWN_POLICIES = ("label", "drop")


def entropy_bits(labels: Sequence[str]) -> float:
  """Plug-in Shannon entropy in bits of the empirical distribution of `labels`.

  ["a", "b", "c", "d"] -> 2.0; ["a", "a", "a"] -> 0.0. Note the ceiling log2(N):
  arms are only comparable at equal N, which `samples.load_arms` enforces.
  """
  if not labels:
    return float("nan")
  counts = np.array(list(collections.Counter(labels).values()), dtype=np.float64)
  p = counts / counts.sum()
  return float(-(p * np.log2(p)).sum() + 0.0)  # + 0.0 turns -0.0 into 0.0


def semantic_entropy(labels: Sequence[Sequence[Mapping[str, str]]], attributes: Sequence[str],
                     unknown: str = "label",
                     fixed: Optional[Sequence[Collection[str]]] = None
                     ) -> Tuple[np.ndarray, np.ndarray]:
  """Per-attribute entropy of the labels of each prompt's samples.

  Attributes a prompt fixes ("a story set in the desert" fixes location) are left out
  for that prompt (NaN): following the prompt is not collapse. With two prompts of
  two samples, attributes ("hero", "place") and fixed [{"place"}, set()]:

    labels  [[{hero: a, place: x}, {hero: b, place: x}],
             [{hero: a, place: x}, {hero: a, place: y}]]
    entropy [[1.0, 0.0],     hero
             [nan, 1.0]]     place: the first prompt asked for one

  How `unknown` counts (an attribute the labeller could not read, or left out):
    "label" (default): UNKNOWN is one more value. Samples that all fail to parse
      give 0 bits, not a spurious maximum, and a model whose outputs are half
      unreadable is not rewarded for it; the unknown rate is reported beside.
    "drop": entropy of the readable labels only; a (prompt, attribute) with none
      readable is NaN and left out of the means.

  Args:
    labels: per prompt, the N label mappings of its samples.
    attributes: the attributes to measure.
    unknown: "label" or "drop".
    fixed: per prompt, the attributes it fixes (None: none).

  Returns:
    (entropy, unknown_rate), both of shape (num_attributes, num_prompts); NaN where a
    prompt fixes the attribute.
  """
  if unknown not in UNKNOWN_POLICIES:
    raise SettingError(f"unknown={unknown!r}; expected one of {UNKNOWN_POLICIES}")
  ent = np.full((len(attributes), len(labels)), np.nan)
  rate = np.zeros((len(attributes), len(labels)))
  for j, row in enumerate(labels):
    for i, attr in enumerate(attributes):
      if fixed is not None and attr in fixed[j]:
        rate[i, j] = np.nan
        continue
      values = [m.get(attr, UNKNOWN) for m in row]
      n_unknown = sum(v == UNKNOWN for v in values)
      rate[i, j] = n_unknown / len(values) if values else float("nan")
      if unknown == "drop":
        values = [v for v in values if v != UNKNOWN]
      ent[i, j] = entropy_bits(values)
  return ent, rate


def _words(text: str) -> List[str]:
  return text.lower().split()


def distinct_n(texts: Sequence[str], n: int) -> float:
  """Distinct n-grams over all n-grams in one prompt's samples (lower-cased words).

  ["a b", "a b"] with n=1 -> 2 distinct of 4 = 0.5. NaN when no text has n words.
  """
  if n < 1:
    raise ValueError(f"n={n} must be at least 1")
  grams = []
  for text in texts:
    w = _words(text)
    grams.extend(tuple(w[i:i + n]) for i in range(len(w) - n + 1))
  return len(set(grams)) / len(grams) if grams else float("nan")


_PUNCT = re.compile(r"[^\w\s]", re.UNICODE)


def normalize_text(text: str) -> str:
  """The key of the text-equality test: NFKC, lower case, punctuation dropped,
  whitespace collapsed. "The End." and "the  end" are equal."""
  text = unicodedata.normalize("NFKC", text).lower()
  return " ".join(_PUNCT.sub(" ", text).split())


Equivalence = Callable[[int, int], bool]


def count_classes(num_items: int, equivalent: Equivalence) -> int:
  """NoveltyBench's partition: items in order; each joins the first class whose
  representative (first member) it is equivalent to, or founds a new class.

  Returns:
    The number of classes.
  """
  reps: List[int] = []
  for i in range(num_items):
    if not any(equivalent(r, i) for r in reps):
      reps.append(i)
  return len(reps)


def distinct_k(texts: Sequence[str], k: Optional[int] = None,
               embeddings: Optional[np.ndarray] = None,
               threshold: Optional[float] = None) -> int:
  """Number of equivalence classes among the first k samples (NoveltyBench).

  Equivalence test: equal `normalize_text` keys; or, when `threshold` is given,
  cosine similarity of the embeddings of at least `threshold`. Classes are built
  greedily in sample order against each class's first member, as NoveltyBench does.

  Args:
    texts: one prompt's samples, in sample_index order.
    k: how many to use (None: all).
    embeddings: (N, D) embeddings of `texts`; needed with `threshold`.
    threshold: cosine-similarity threshold in (-1, 1].

  Returns:
    An integer from 1 (all equivalent) to k.
  """
  k = len(texts) if k is None else k
  if not 1 <= k <= len(texts):
    raise SettingError(f"k={k} must be within 1..{len(texts)} (the samples per prompt)")
  if threshold is None:
    keys = [normalize_text(t) for t in texts[:k]]
    return count_classes(k, lambda a, b: keys[a] == keys[b])
  if embeddings is None:
    raise SettingError("distinct_k with a similarity threshold needs embeddings")
  unit = _unit_rows(np.asarray(embeddings, dtype=np.float64)[:k])
  sim = unit @ unit.T
  return count_classes(k, lambda a, b: sim[a, b] >= threshold)


def _unit_rows(x: np.ndarray) -> np.ndarray:
  norms = np.linalg.norm(x, axis=1, keepdims=True)
  if np.any(norms == 0):
    raise ValueError("an embedding is the zero vector; cosine distance is undefined")
  return x / norms


def mean_pairwise_cosine_distance(embeddings: np.ndarray) -> float:
  """Mean of 1 - cos(e_i, e_j) over pairs i < j of one prompt's sample embeddings.

  Identical texts give 0; orthogonal ones 1. NaN for fewer than two samples.
  """
  x = np.asarray(embeddings, dtype=np.float64)
  n = x.shape[0]
  if n < 2:
    return float("nan")
  unit = _unit_rows(x)
  sim = unit @ unit.T
  iu = np.triu_indices(n, k=1)
  # Clip float noise: identical unit vectors can give 1 - cos of about -1e-16.
  return float(np.clip(1.0 - sim[iu], 0.0, 2.0).mean())


def per_prompt(values: Sequence[Sequence[str]], fn: Callable[[Sequence[str]], float]
               ) -> np.ndarray:
  """Applies a per-prompt metric to every prompt's texts; returns shape (P,)."""
  return np.array([fn(v) for v in values], dtype=np.float64)


def attribute_names(labels: Sequence[Sequence[Mapping[str, str]]]) -> List[str]:
  """Sorted union of the attributes seen in any label mapping."""
  return sorted({k for row in labels for m in row for k in m})


def distinct_n_dict(texts: Sequence[Sequence[str]], ns: Sequence[int]) -> Dict[str, np.ndarray]:
  """{"distinct_1": (P,), ...} for each n in `ns`."""
  return {f"distinct_{n}": per_prompt(texts, lambda t, n=n: distinct_n(t, n)) for n in ns}

