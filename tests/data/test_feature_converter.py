"""WeightedLMFeatureConverter: exact layout, and parity with SeqIO's converters."""
import numpy as np
import pytest
import seqio
import tensorflow as tf

from annotanchor.data.feature_converter import LOSS_WEIGHTS, WeightedLMFeatureConverter


def _ds(examples):
  spec = {k: tf.TensorSpec([None], tf.float32 if k == LOSS_WEIGHTS else tf.int32)
          for k in examples[0]}
  return tf.data.Dataset.from_generator(lambda: iter(examples), output_signature=spec)


def _rows(ds):
  return [{k: np.asarray(v) for k, v in ex.items()} for ex in ds.as_numpy_iterator()]


def test_packed_docstring_example():
  ds = _ds([{"targets": [7, 8, 3, 9, 1], LOSS_WEIGHTS: [0, 0, 1, 1, 1]},
            {"targets": [4, 5, 1], LOSS_WEIGHTS: [1, 0, 1]}])
  (row,) = _rows(WeightedLMFeatureConverter(pack=True)(ds, {"targets": 10}))
  np.testing.assert_array_equal(row["decoder_target_tokens"], [7, 8, 3, 9, 1, 4, 5, 1, 0, 0])
  np.testing.assert_array_equal(row["decoder_input_tokens"], [0, 7, 8, 3, 9, 0, 4, 5, 0, 0])
  np.testing.assert_array_equal(row["decoder_loss_weights"], [0, 0, 1, 1, 1, 1, 0, 1, 0, 0])
  np.testing.assert_array_equal(row["decoder_segment_ids"], [1, 1, 1, 1, 1, 2, 2, 2, 0, 0])
  np.testing.assert_array_equal(row["decoder_positions"], [0, 1, 2, 3, 4, 0, 1, 2, 0, 0])
  assert row["decoder_loss_weights"].dtype == np.float32


@pytest.mark.parametrize("pack", [True, False])
def test_a_real_token_zero_is_kept_and_pad_and_bos_are_the_vocabularys(pack):
  # The docstring's second example: bos_id = pad_id = 9 (EOS reused), 0 a real word.
  ds = _ds([{"targets": [0, 8, 3, 9, 1], LOSS_WEIGHTS: [0, 0, 1, 1, 1]},
            {"targets": [4, 5, 1], LOSS_WEIGHTS: [1, 0, 1]}])
  rows = _rows(WeightedLMFeatureConverter(pack=pack, bos_id=9, pad_id=9)(ds, {"targets": 10}))
  if pack:
    (row,) = rows
    np.testing.assert_array_equal(row["decoder_target_tokens"], [0, 8, 3, 9, 1, 4, 5, 1, 9, 9])
    np.testing.assert_array_equal(row["decoder_input_tokens"], [9, 0, 8, 3, 9, 9, 4, 5, 9, 9])
    np.testing.assert_array_equal(row["decoder_loss_weights"], [0, 0, 1, 1, 1, 1, 0, 1, 0, 0])
    np.testing.assert_array_equal(row["decoder_segment_ids"], [1, 1, 1, 1, 1, 2, 2, 2, 0, 0])
  else:
    first, second = rows
    np.testing.assert_array_equal(first["decoder_target_tokens"], [0, 8, 3, 9, 1] + [9] * 5)
    np.testing.assert_array_equal(first["decoder_input_tokens"], [9, 0, 8, 3, 9, 1] + [9] * 4)
    np.testing.assert_array_equal(first["decoder_loss_weights"], [0, 0, 1, 1, 1] + [0] * 5)
    np.testing.assert_array_equal(second["decoder_loss_weights"], [1, 0, 1] + [0] * 7)


def test_unpacked_pads_and_keeps_fractional_weights():
  ds = _ds([{"targets": [5, 6, 7, 1], LOSS_WEIGHTS: [0.25, 0.5, 1.0, 2.0]}])
  (row,) = _rows(WeightedLMFeatureConverter(pack=False)(ds, {"targets": 6}))
  assert set(row) == {"decoder_target_tokens", "decoder_input_tokens", "decoder_loss_weights"}
  np.testing.assert_array_equal(row["decoder_target_tokens"], [5, 6, 7, 1, 0, 0])
  np.testing.assert_array_equal(row["decoder_input_tokens"], [0, 5, 6, 7, 1, 0])
  np.testing.assert_array_equal(row["decoder_loss_weights"], [0.25, 0.5, 1.0, 2.0, 0, 0])


def test_packed_fractional_weights_survive_packing():
  ds = _ds([{"targets": [5, 6, 1], LOSS_WEIGHTS: [0.25, 0.0, 1.5]},
            {"targets": [9, 1], LOSS_WEIGHTS: [0.125, 3.0]}])
  (row,) = _rows(WeightedLMFeatureConverter(pack=True)(ds, {"targets": 6}))
  np.testing.assert_array_equal(row["decoder_loss_weights"], [0.25, 0, 1.5, 0.125, 3.0, 0])


def test_rejects_integer_weights():
  ds = tf.data.Dataset.from_tensors({"targets": tf.constant([3, 1]), LOSS_WEIGHTS: tf.constant([1, 1])})
  with pytest.raises(ValueError, match=LOSS_WEIGHTS):
    WeightedLMFeatureConverter(pack=False)(ds, {"targets": 4})


_RNG = np.random.default_rng(0)
_SEQS = [np.append(_RNG.integers(2, 50, size=n), 1).astype(np.int32)
         for n in _RNG.integers(1, 9, size=12)]


@pytest.mark.parametrize("pack", [True, False])
def test_parity_with_lm_feature_converter(pack):
  plain = _ds([{"targets": s} for s in _SEQS])
  ours = _rows(WeightedLMFeatureConverter(pack=pack)(plain, {"targets": 16}))
  theirs = _rows(seqio.LMFeatureConverter(pack=pack)(plain, {"targets": 16}))
  assert len(ours) == len(theirs) > 1
  for a, b in zip(ours, theirs):
    assert set(a) == set(b)
    for key in b:
      np.testing.assert_array_equal(a[key], b[key], err_msg=key)


@pytest.mark.parametrize("pack", [True, False])
def test_parity_with_prefix_lm_feature_converter(pack):
  pairs = [(_SEQS[i], _SEQS[i + 1]) for i in range(0, len(_SEQS), 2)]
  prefix = _ds([{"inputs": i, "targets": t} for i, t in pairs])
  weighted = _ds([{"targets": np.concatenate([i, t]),
                   LOSS_WEIGHTS: np.concatenate([np.zeros(len(i)), np.ones(len(t))]).astype(np.float32)}
                  for i, t in pairs])
  theirs = _rows(seqio.PrefixLMFeatureConverter(pack=pack)(prefix, {"inputs": 10, "targets": 10}))
  ours = _rows(WeightedLMFeatureConverter(pack=pack)(weighted, {"targets": 20}))
  assert len(ours) == len(theirs) > (1 if pack else 4)
  for a, b in zip(ours, theirs):
    assert set(b) - set(a) == {"decoder_causal_attention"}
    for key in a:
      np.testing.assert_array_equal(a[key], b[key], err_msg=key)
