"""pipeline.get_dataset: shapes, determinism, host sharding and resume-at-step."""
import itertools

import numpy as np
import pytest

import tasks  # noqa: F401  (registers synthetic_tokens)
from annotanchor.data import pipeline

_LENGTHS = {"targets": 32}


def _take(n, **kwargs):
  kwargs.setdefault("seed", 3)
  return list(itertools.islice(pipeline.get_dataset("synthetic_tokens", _LENGTHS, 4, **kwargs), n))


def _equal(a, b):
  return len(a) == len(b) and all(
      x.keys() == y.keys() and all(np.array_equal(x[k], y[k]) for k in x) for x, y in zip(a, b))


def test_batches_have_contract_features():
  (batch,) = _take(1)
  assert set(batch) == {"decoder_target_tokens", "decoder_input_tokens", "decoder_loss_weights",
                        "decoder_segment_ids", "decoder_positions"}
  assert all(v.shape == (4, 32) for v in batch.values())
  assert batch["decoder_loss_weights"].dtype == np.float32


def test_resume_at_step_equals_tail_of_uninterrupted_stream():
  full = _take(7)
  assert _equal(_take(3, start_step=4), full[4:])
  assert not _equal(_take(3, start_step=4, seed=4), full[4:])


def test_host_shards_are_disjoint_and_complete():
  def sequences(**kwargs):
    rows = []
    for batch in pipeline.get_dataset("synthetic_tokens", {"targets": 64}, 2, split="validation",
                                      shuffle=False, pack=False, repeat=False, **kwargs):
      rows += [tuple(r[r != 0]) for r in batch["decoder_target_tokens"]]
    return rows

  whole = sequences()
  shards = [sequences(shard_index=i, num_shards=2) for i in range(2)]
  assert len(whole) == 256 and len(set(whole)) == 256
  assert not set(shards[0]) & set(shards[1])
  assert sorted(shards[0] + shards[1]) == sorted(whole)


def test_global_batch_must_divide_among_shards():
  with pytest.raises(ValueError, match="not divisible by num_shards=3"):
    pipeline.get_dataset("synthetic_tokens", _LENGTHS, 4, num_shards=3)
