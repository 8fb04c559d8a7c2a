"""Label-free semantic labels: clusters of the response embeddings, every arm's together.

Semantic entropy needs a label per sample. A corpus without a parser or a judge still has
the embeddings of its responses, and a cluster of them is a meaning the samples share:
`EmbeddingClusterLabeller` gives each sample the id of its cluster as the label of one
attribute ("cluster"), so semantic entropy works for any corpus.

What is clustered together. Semantic entropy is a per-prompt figure, so the samples are
clustered per prompt, pooling that prompt's samples of *every arm*: a label means the same
meaning in each arm, and the arms' entropies are comparable. (Clustering all prompts
together would mostly find the prompts' topics: each prompt's samples would share a
cluster and every arm would score about 0 bits.)

The rule (deterministic: no random start, no seed):
  * distance: cosine distance between the L2-normalised embeddings, 1 - cos in [0, 2];
  * clustering: agglomerative, average linkage (`scipy.cluster.hierarchy`), cut at a
    cosine-distance threshold t, so a prompt's clusters number from 1 (every sample
    within t of the others on average) to its pooled sample count;
  * t: one value for the whole evaluation, the one of the grid (0.05, 0.10, ..., 1.00)
    whose cut has the highest mean silhouette over prompts (ties: the largest t, the
    coarser partition). A prompt cut into one cluster, or into singletons only, scores 0,
    as does a sample alone in its cluster (Rousseeuw's convention); so when no cut beats
    "one meaning", every prompt is one cluster and every arm scores 0 bits. A fixed
    `distance_threshold` skips the choice.

`settings()` records the rule, t, the mean silhouette and the number of clusters per
prompt, which `evaluate` writes to report.json `settings.clusters`.
"""
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np
from scipy.cluster import hierarchy
from scipy.spatial import distance as sp_distance

from annotanchor.errors import SettingError

DEFAULT_THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(1, 21))
LINKAGES = ("average", "complete", "single", "weighted")


def cosine_distances(embeddings: np.ndarray) -> np.ndarray:
  """(..., M, M) symmetric 1 - cos of the rows of `embeddings` (..., M, D), zero diagonal,
  in [0, 2]."""
  x = np.asarray(embeddings, dtype=np.float64)
  norms = np.linalg.norm(x, axis=-1, keepdims=True)
  if np.any(norms == 0):
    raise ValueError("an embedding is the zero vector; cosine distance is undefined")
  unit = x / norms
  dist = np.clip(1.0 - unit @ np.swapaxes(unit, -1, -2), 0.0, 2.0)
  dist = (dist + np.swapaxes(dist, -1, -2)) / 2
  m = dist.shape[-1]
  dist[..., np.arange(m), np.arange(m)] = 0.0
  return dist


def silhouette(dist: np.ndarray, labels: Sequence[int]) -> float:
  """Mean silhouette of a partition given its (M, M) distances; 0 when it has one cluster
  or only singletons, and 0 for a sample alone in its cluster."""
  _, inv = np.unique(np.asarray(labels), return_inverse=True)
  m, k = len(inv), int(inv.max()) + 1 if len(inv) else 0
  if k < 2 or k >= m:
    return 0.0
  onehot = np.zeros((m, k))
  onehot[np.arange(m), inv] = 1.0
  sums = dist @ onehot  # (M, k): distance of each sample to each cluster's members, summed
  counts = onehot.sum(axis=0)
  own = counts[inv]
  a = sums[np.arange(m), inv] / np.maximum(own - 1, 1)
  other = sums / counts
  other[np.arange(m), inv] = np.inf
  b = other.min(axis=1)
  top = np.maximum(a, b)
  s = np.where((own > 1) & (top > 0), (b - a) / np.where(top > 0, top, 1.0), 0.0)
  return float(s.mean())


def cut_tree(tree: np.ndarray, size: int, t: float) -> np.ndarray:
  """Flat clusters of a scipy linkage `tree` over `size` items: the merges at height <= t
  applied (`hierarchy.fcluster(tree, t, criterion="distance")`, without its per-call
  validation, which dominates over many small trees). Ids 0.. in leaf order of the
  cluster's lowest member."""
  # Heights made monotone, as the cophenetic distance is (the linkages here are monotone;
  # this only guards float noise).
  heights = np.maximum.accumulate(tree[:, 2])
  members: Dict[int, List[int]] = {i: [i] for i in range(size)}
  for i in np.flatnonzero(heights <= t):
    members[size + int(i)] = members.pop(int(tree[i, 0])) + members.pop(int(tree[i, 1]))
  labels = np.empty(size, dtype=np.int64)
  for c, leaves in enumerate(sorted(members.values(), key=min)):
    labels[leaves] = c
  return labels


def _first_seen_ids(labels: np.ndarray) -> np.ndarray:
  """Cluster ids renumbered 1, 2, ... in order of first appearance (independent of
  scipy's numbering)."""
  order: Dict[int, int] = {}
  return np.array([order.setdefault(int(c), len(order) + 1) for c in labels], dtype=np.int64)


class EmbeddingClusterLabeller:
  """Labels every sample with its embedding cluster, clustered per prompt over all arms.

  Unlike a per-sample Labeller it labels whole sample sets: `evaluate` embeds every arm's
  responses and calls `label_arms`. See the module docstring for the rule.

  Args:
    attribute: the attribute name of the label ("cluster").
    distance_threshold: a fixed cosine-distance cut in (0, 2]; None: chosen from
      `thresholds` by mean silhouette over prompts.
    thresholds: the grid the cut is chosen from.
    linkage: the agglomerative linkage, "average" (default), "complete", "single" or
      "weighted".
  """

  def __init__(self, attribute: str = "cluster", distance_threshold: Optional[float] = None,
               thresholds: Sequence[float] = DEFAULT_THRESHOLDS, linkage: str = "average"):
    if not isinstance(attribute, str) or not attribute:
      raise SettingError(f"EmbeddingClusterLabeller.attribute={attribute!r}: expected a name")
    if linkage not in LINKAGES:
      raise SettingError(f"EmbeddingClusterLabeller.linkage={linkage!r}: expected one of "
                         f"{LINKAGES}")
    grid = (distance_threshold,) if distance_threshold is not None else tuple(thresholds)
    if not grid or not all(isinstance(t, (int, float)) and not isinstance(t, bool)
                           and 0 < t <= 2 for t in grid):
      setting = "distance_threshold" if distance_threshold is not None else "thresholds"
      value = distance_threshold if distance_threshold is not None else thresholds
      raise SettingError(f"EmbeddingClusterLabeller.{setting}={value!r}: expected cosine "
                         "distances in (0, 2]")
    self.attribute = attribute
    self.distance_threshold = distance_threshold
    self.thresholds = tuple(float(t) for t in sorted(grid))
    self.linkage = linkage
    self._settings: Optional[dict] = None

  def cluster_prompts(self, embeddings: Sequence[np.ndarray]) -> List[np.ndarray]:
    """Per prompt, the cluster ids (1, 2, ... in order of first appearance) of its (M, D)
    pooled embeddings, all prompts cut at one threshold (chosen or given)."""
    dists = [cosine_distances(e) for e in embeddings]
    trees = [hierarchy.linkage(sp_distance.squareform(d, checks=False), method=self.linkage)
             if len(d) > 1 else None for d in dists]

    def cut(tree, size: int, t: float) -> np.ndarray:
      return np.ones(size, dtype=np.int64) if tree is None else cut_tree(tree, size, t)

    scores = []
    for t in self.thresholds:
      cuts = [cut(tree, len(d), t) for tree, d in zip(trees, dists)]
      scores.append(float(np.mean([silhouette(d, c) for d, c in zip(dists, cuts)]))
                    if dists else 0.0)
    scores_arr = np.array(scores)
    best = int(np.flatnonzero(scores_arr >= scores_arr.max() - 1e-12)[-1])  # ties: largest t
    t = self.thresholds[best]
    labels = [_first_seen_ids(cut(tree, len(d), t)) for tree, d in zip(trees, dists)]
    counts = [int(c.max()) if len(c) else 0 for c in labels]
    self._settings = {
        "attribute": self.attribute,
        "scope": "per prompt, every arm's samples pooled",
        "rule": (f"agglomerative clustering ({self.linkage} linkage) on the cosine distance "
                 "of the response embeddings, cut at a cosine-distance threshold "
                 + ("given" if self.distance_threshold is not None else
                    f"chosen from {len(self.thresholds)} values "
                    f"({self.thresholds[0]:.2f}..{self.thresholds[-1]:.2f}) by the highest mean "
                    "silhouette over prompts, ties to the largest")),
        "linkage": self.linkage,
        "distance_threshold": t,
        "threshold_chosen_by": "given" if self.distance_threshold is not None else "silhouette",
        "mean_silhouette": scores[best],
        "num_clusters": {
            "mean_per_prompt": float(np.mean(counts)) if counts else 0.0,
            "min_per_prompt": min(counts, default=0), "max_per_prompt": max(counts, default=0),
            "total": int(sum(counts))},
    }
    return labels

  def label_arms(self, embeddings: Mapping[str, np.ndarray]
                 ) -> Dict[str, List[List[Dict[str, str]]]]:
    """arm -> (P, N, D) response embeddings (every arm the same P prompts, in order) to
    arm -> per prompt, the N samples' {attribute: "c<id>"}."""
    arms = list(embeddings)
    if not arms:
      return {}
    arrays = {a: np.asarray(embeddings[a], dtype=np.float64) for a in arms}
    num_prompts = {a: x.shape[0] for a, x in arrays.items()}
    if len(set(num_prompts.values())) != 1:
      raise ValueError(f"arms differ in their number of prompts: {num_prompts}")
    pooled = [np.concatenate([arrays[a][j] for a in arms]) for j in range(num_prompts[arms[0]])]
    ids = self.cluster_prompts(pooled)
    out: Dict[str, List[List[Dict[str, str]]]] = {a: [] for a in arms}
    for j, prompt_ids in enumerate(ids):
      start = 0
      for a in arms:
        n = arrays[a].shape[1]
        out[a].append([{self.attribute: f"c{c}"} for c in prompt_ids[start:start + n]])
        start += n
    return out

  def settings(self) -> Optional[dict]:
    """The rule and the outcome of the last labelling (None before any)."""
    return None if self._settings is None else dict(self._settings)
