"""The label-free labeller: clusters of response embeddings, per prompt over every arm."""
import numpy as np
import pytest

from annotanchor.errors import SettingError
from annotanchor.evaluation import clusters, diversity

DIM = 16


def _group_points(rng, centers, sizes, noise=0.02):
  """Points around unit `centers` (one group per center), in group order."""
  return np.concatenate([centers[g] + noise * rng.standard_normal((n, DIM))
                         for g, n in enumerate(sizes)])


def _centers():
  eye = np.eye(DIM)
  return np.stack([eye[0], -eye[0], eye[1], -eye[1], eye[2]])


def test_silhouette_known_values():
  # Two pairs far apart on a line: a = 1 for all; b = 11.5 for the outer two (0 and 12),
  # 10.5 for the inner two.
  x = np.array([0.0, 1.0, 11.0, 12.0])
  dist = np.abs(x[:, None] - x[None, :])
  assert clusters.silhouette(dist, [1, 1, 2, 2]) == pytest.approx(
      (10.5 / 11.5 + 9.5 / 10.5) / 2)
  assert clusters.silhouette(dist, [1, 1, 1, 1]) == 0.0  # one cluster
  assert clusters.silhouette(dist, [1, 2, 3, 4]) == 0.0  # singletons only
  # A sample alone in its cluster scores 0; the pair's: a = 1, b = 11 (x=0) and 10 (x=1).
  assert clusters.silhouette(dist, [1, 1, 2, 3]) == pytest.approx((10 / 11 + 9 / 10) / 4)


def test_separated_groups_are_found_and_k_is_recorded():
  rng = np.random.default_rng(0)
  sizes_by_prompt = [(4, 4, 4), (6, 6), (3, 3, 3, 3)]
  pooled = [_group_points(rng, _centers(), sizes) for sizes in sizes_by_prompt]
  lab = clusters.EmbeddingClusterLabeller()
  ids = lab.cluster_prompts(pooled)
  for got, sizes in zip(ids, sizes_by_prompt):
    want = np.repeat(np.arange(1, len(sizes) + 1), sizes)  # numbered in order of appearance
    np.testing.assert_array_equal(got, want)
  settings = lab.settings()
  assert settings["num_clusters"] == {"mean_per_prompt": 3.0, "min_per_prompt": 2,
                                      "max_per_prompt": 4, "total": 9}
  assert settings["threshold_chosen_by"] == "silhouette"
  assert settings["distance_threshold"] in clusters.DEFAULT_THRESHOLDS
  assert settings["mean_silhouette"] > 0.9
  assert settings["linkage"] == "average" and settings["attribute"] == "cluster"
  assert "silhouette" in settings["rule"] and "per prompt" in settings["scope"]


def test_same_inputs_give_the_same_labels():
  rng = np.random.default_rng(1)
  pooled = [rng.standard_normal((24, DIM)) for _ in range(5)]  # no structure at all
  first, second = clusters.EmbeddingClusterLabeller(), clusters.EmbeddingClusterLabeller()
  a, b = first.cluster_prompts(pooled), second.cluster_prompts([p.copy() for p in pooled])
  assert all(np.array_equal(x, y) for x, y in zip(a, b))
  assert first.settings() == second.settings()


def test_identical_samples_are_one_cluster():
  lab = clusters.EmbeddingClusterLabeller()
  ids = lab.cluster_prompts([np.tile(np.arange(1.0, DIM + 1), (8, 1)), np.ones((1, DIM))])
  assert [list(i) for i in ids] == [[1] * 8, [1]]
  assert lab.settings()["num_clusters"]["total"] == 2
  assert lab.settings()["mean_silhouette"] == 0.0


def test_arms_are_clustered_together_and_entropy_follows():
  """sft: every sample in one group (0 bits); base: spread over four (2 bits); anchored:
  two (1 bit). Labels agree across arms: the group sft sits in has base's label for it."""
  rng = np.random.default_rng(2)
  c = _centers()
  num_prompts, n = 3, 8
  arms = {
      "base": np.stack([_group_points(rng, c, (2, 2, 2, 2)) for _ in range(num_prompts)]),
      "sft": np.stack([_group_points(rng, c[1:2], (n,)) for _ in range(num_prompts)]),
      "anchored": np.stack([_group_points(rng, c[:2], (4, 4)) for _ in range(num_prompts)]),
  }
  lab = clusters.EmbeddingClusterLabeller()
  labels = lab.label_arms(arms)
  assert list(labels) == ["base", "sft", "anchored"]
  assert len(labels["sft"]) == num_prompts and len(labels["sft"][0]) == n
  ent = {a: diversity.semantic_entropy(rows, ["cluster"])[0][0] for a, rows in labels.items()}
  np.testing.assert_allclose(ent["sft"], 0.0, atol=1e-12)
  np.testing.assert_allclose(ent["base"], 2.0)
  np.testing.assert_allclose(ent["anchored"], 1.0)
  # Center 1 is base's second group: "c2" in every prompt, in sft and anchored alike.
  assert {m["cluster"] for row in labels["sft"] for m in row} == {"c2"}
  assert [m["cluster"] for m in labels["anchored"][0]] == ["c1"] * 4 + ["c2"] * 4
  assert lab.settings()["num_clusters"]["total"] == 4 * num_prompts


def test_a_given_threshold_is_used_and_recorded():
  rng = np.random.default_rng(3)
  pooled = [_group_points(rng, _centers(), (3, 3))]
  lab = clusters.EmbeddingClusterLabeller(distance_threshold=1.5, attribute="meaning")
  # e0 and -e0 are 2 apart: cut at 1.5, two clusters.
  assert list(lab.cluster_prompts(pooled)[0]) == [1, 1, 1, 2, 2, 2]
  settings = lab.settings()
  assert settings["distance_threshold"] == 1.5 and settings["threshold_chosen_by"] == "given"
  assert "given" in settings["rule"]
  out = lab.label_arms({"a": pooled[0][None, :3], "b": pooled[0][None, 3:]})
  assert out == {"a": [[{"meaning": "c1"}] * 3], "b": [[{"meaning": "c2"}] * 3]}
  # Cut above every distance: one cluster.
  lab = clusters.EmbeddingClusterLabeller(distance_threshold=2.0)
  assert list(lab.cluster_prompts(pooled)[0]) == [1] * 6


@pytest.mark.parametrize("kwargs, needle", [
    ({"distance_threshold": 0.0}, "distance_threshold=0.0"),
    ({"thresholds": ()}, "thresholds=()"),
    ({"thresholds": (0.5, 3.0)}, "thresholds"),
    ({"linkage": "ward"}, "linkage='ward'"),
    ({"attribute": ""}, "attribute=''")])
def test_bad_settings_are_named(kwargs, needle):
  with pytest.raises(SettingError, match=needle.replace("(", r"\(").replace(")", r"\)")):
    clusters.EmbeddingClusterLabeller(**kwargs)


def test_zero_vectors_are_refused():
  with pytest.raises(ValueError, match="zero vector"):
    clusters.EmbeddingClusterLabeller().cluster_prompts([np.zeros((3, DIM))])


def test_the_cut_is_scipys_fcluster():
  from scipy.cluster import hierarchy
  from scipy.spatial import distance as sp_distance
  rng = np.random.default_rng(4)
  for method in clusters.LINKAGES:
    dist = clusters.cosine_distances(rng.standard_normal((30, 5)))
    tree = hierarchy.linkage(sp_distance.squareform(dist, checks=False), method=method)
    for t in (0.0, 0.2, 0.5, 0.9, 1.3, 2.0):
      ours = clusters.cut_tree(tree, 30, t)
      theirs = hierarchy.fcluster(tree, t, criterion="distance")
      # The same partition: a one-to-one map between the two numberings.
      assert len(set(zip(ours, theirs))) == len(set(ours)) == len(set(theirs)), (method, t)
