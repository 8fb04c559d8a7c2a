"""Decoder-only feature conversion that carries per-token loss weights.

SeqIO's `LMFeatureConverter` derives `decoder_loss_weights` from padding alone
and `PrefixLMFeatureConverter` from an inputs/targets split. Annotation-anchored
training needs arbitrary per-token weights (prompt and annotation 0, response 1,
tag keys 1 but values 0, ...), so the preprocessors emit them as a feature and
this converter carries them through trimming, padding and packing.
"""
from typing import Mapping

import gin
import seqio
import tensorflow as tf

# The per-token loss weight feature that preprocessors emit next to `targets`
# (float32, same length as `targets`).
LOSS_WEIGHTS = "targets_loss_weights"

# SeqIO's tf-ops packer casts every feature to int32, takes the count of non-zero
# entries as a sequence's length and marks zeros as padding (segment id 0), and its
# padder pads with 0. So weights travel as `1 + round(weight * _WEIGHT_SCALE)`: never 0
# inside a sequence, and exact for every multiple of 2**-20 (0 and 1 in particular);
# and tokens as `1 + id`, because in a Hugging Face vocabulary id 0 is a real token.
_WEIGHT_SCALE = 2.0**20


def loss_weights_feature() -> seqio.Feature:
  """The `seqio.Feature` to register for `LOSS_WEIGHTS` in a task.

  Mixtures keep only registered output features, so every task that emits
  weights lists this one as `output_features[LOSS_WEIGHTS]`.
  """
  return seqio.Feature(vocabulary=seqio.PassThroughVocabulary(size=0),
                       add_eos=False, required=False, dtype=tf.float32)


def _encode_weights(weights: tf.Tensor) -> tf.Tensor:
  return 1 + tf.cast(tf.round(weights * _WEIGHT_SCALE), tf.int32)


def _decode_weights(codes: tf.Tensor) -> tf.Tensor:
  return tf.where(codes > 0, tf.cast(codes - 1, tf.float32) / _WEIGHT_SCALE, 0.0)


def _encode_tokens(targets: tf.Tensor) -> tf.Tensor:
  return targets + 1


@gin.configurable
class WeightedLMFeatureConverter(seqio.FeatureConverter):
  """Decoder-only converter whose loss weights come from the data, per token.

  Input examples hold `targets` (int32, EOS already appended) and optionally
  `targets_loss_weights` (float32, same length; missing means 1 on every
  token). Outputs are the standard decoder features; `decoder_loss_weights` is
  float32 and 0 on padding.

  Example: a packed dataset (prompt/annotation weights 0, response and EOS 1).

    ds = [{"targets": [7, 8, 3, 9, 1], "targets_loss_weights": [0, 0, 1, 1, 1]},
          {"targets": [4, 5, 1],       "targets_loss_weights": [1, 0, 1]}]

    task_feature_lengths = {"targets": 10}

    converted_ds = {
       "decoder_target_tokens": [7, 8, 3, 9, 1, 4, 5, 1, 0, 0],
        "decoder_input_tokens": [0, 7, 8, 3, 9, 0, 4, 5, 0, 0],
        "decoder_loss_weights": [0, 0, 1, 1, 1, 1, 0, 1, 0, 0],
         "decoder_segment_ids": [1, 1, 1, 1, 1, 2, 2, 2, 0, 0],
           "decoder_positions": [0, 1, 2, 3, 4, 0, 1, 2, 0, 0],
    }

  The same rows with `bos_id=pad_id=9` and token 0 a real word (7 -> 0):

    ds = [{"targets": [0, 8, 3, 9, 1], ...}, {"targets": [4, 5, 1], ...}]
    converted_ds = {
       "decoder_target_tokens": [0, 8, 3, 9, 1, 4, 5, 1, 9, 9],
        "decoder_input_tokens": [9, 0, 8, 3, 9, 9, 4, 5, 9, 9],
        "decoder_loss_weights": [0, 0, 1, 1, 1, 1, 0, 1, 0, 0],
         "decoder_segment_ids": [1, 1, 1, 1, 1, 2, 2, 2, 0, 0],
    }

  With all weights 1 the output equals `seqio.LMFeatureConverter`'s; with
  weights 0 on an inputs prefix and 1 on the targets it equals
  `seqio.PrefixLMFeatureConverter`'s (less `decoder_causal_attention`), packed
  or not. Packing uses SeqIO's own packer, so examples land in the same rows.
  Weights are quantized to multiples of 2**-20 when packing.
  """

  TASK_FEATURES = {"targets": seqio.FeatureConverter.FeatureSpec(dtype=tf.int32)}
  MODEL_FEATURES = {
      "decoder_target_tokens": seqio.FeatureConverter.FeatureSpec(dtype=tf.int32),
      "decoder_input_tokens": seqio.FeatureConverter.FeatureSpec(dtype=tf.int32),
      "decoder_loss_weights": seqio.FeatureConverter.FeatureSpec(dtype=tf.float32),
  }
  PACKING_FEATURE_DTYPES = {
      "decoder_segment_ids": tf.int32,
      "decoder_positions": tf.int32,
  }

  def __init__(self, pack: bool = True, *, bos_id: int = 0, pad_id: int = 0, **kwargs):
    super().__init__(pack=pack, bos_id=bos_id, **kwargs)
    self.pad_id = pad_id

  def _with_weights(self, ds: tf.data.Dataset) -> tf.data.Dataset:
    """Checks the weight feature, or adds weight 1 on every token."""
    spec = ds.element_spec.get(LOSS_WEIGHTS)
    if spec is None:
      return ds.map(lambda ex: {**ex, LOSS_WEIGHTS: tf.ones_like(ex["targets"], tf.float32)},
                    num_parallel_calls=tf.data.AUTOTUNE)
    if spec.dtype != tf.float32 or spec.shape.rank != 1:
      raise ValueError(f"Feature '{LOSS_WEIGHTS}' must be a rank-1 float32 tensor, "
                       f"got {spec.dtype.name} of shape {spec.shape}.")
    return ds

  def _convert_features(self, ds: tf.data.Dataset,
                        task_feature_lengths: Mapping[str, int]) -> tf.data.Dataset:
    length = task_feature_lengths["targets"]
    ds = self._with_weights(ds)
    ds = ds.map(lambda ex: {"targets": _encode_tokens(ex["targets"]),
                            LOSS_WEIGHTS: ex[LOSS_WEIGHTS]},
                num_parallel_calls=tf.data.AUTOTUNE)
    lengths = {"targets": length, LOSS_WEIGHTS: length}
    if self.pack:
      ds = ds.map(lambda ex: {**ex, LOSS_WEIGHTS: _encode_weights(ex[LOSS_WEIGHTS])},
                  num_parallel_calls=tf.data.AUTOTUNE)
      ds = seqio.utils.trim_and_pack_dataset(ds, lengths, self._use_custom_packing_ops)
    else:
      ds = seqio.utils.trim_and_pad_dataset(ds, lengths)
    return ds.map(self._convert_example, num_parallel_calls=tf.data.AUTOTUNE)

  def _convert_example(self, ex: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    present = ex["targets"] > 0  # Encoded tokens: 0 only where padding was added.
    targets = tf.where(present, ex["targets"] - 1, self.pad_id)
    segment_ids = ex.get("targets_segment_ids")
    weights = _decode_weights(ex[LOSS_WEIGHTS]) if self.pack else ex[LOSS_WEIGHTS]
    out = {
        "decoder_target_tokens": targets,
        "decoder_input_tokens": seqio.utils.make_autoregressive_inputs(
            targets, sequence_id=segment_ids, bos_id=self.bos_id),
        # Padding never counts, whatever weight a source gave it.
        "decoder_loss_weights": weights * tf.cast(present, tf.float32),
    }
    if self.pack:
      out["decoder_segment_ids"] = segment_ids
      out["decoder_positions"] = ex["targets_positions"]
    return out

  def get_model_feature_lengths(self, task_feature_lengths: Mapping[str, int]) -> dict[str, int]:
    length = task_feature_lengths["targets"]
    names = list(self.MODEL_FEATURES) + (list(self.PACKING_FEATURE_DTYPES) if self.pack else [])
    return {name: length for name in names}


# The two rows of a preference pair; their features are prefixed by the side.
PAIR_SIDES = ("chosen", "rejected")


@gin.configurable
class PreferenceFeatureConverter(WeightedLMFeatureConverter):
  """Preference pairs: each side's `decoder_*` features, prefixed by the side, unpacked.

  Input examples hold `chosen_targets`, `rejected_targets` (int32, EOS appended) and their
  `*_targets_loss_weights`; each side becomes the features `WeightedLMFeatureConverter`
  gives one unpacked row, so row i of the chosen features and row i of the rejected ones
  are one pair. Pairs are never packed: a pair's two rows must stay side by side, and
  rows of one length keep both sides' log-probabilities summed over the same positions.

  Example (task_feature_lengths {"targets": 6}; prompt weight 0, answer and EOS 1):

    ds = [{"chosen_targets": [7, 8, 3, 9, 1], "chosen_targets_loss_weights": [0, 0, 1, 1, 1],
           "rejected_targets": [7, 8, 4, 1], "rejected_targets_loss_weights": [0, 0, 1, 1]}]

    converted_ds = [{
       "chosen_decoder_target_tokens": [7, 8, 3, 9, 1, 0],
        "chosen_decoder_input_tokens": [0, 7, 8, 3, 9, 1],
        "chosen_decoder_loss_weights": [0, 0, 1, 1, 1, 0],
     "rejected_decoder_target_tokens": [7, 8, 4, 1, 0, 0],
      "rejected_decoder_input_tokens": [0, 7, 8, 4, 1, 0],
      "rejected_decoder_loss_weights": [0, 0, 1, 1, 0, 0]}]

  A side longer than the row is cut at its length (its weights with it); a pair in which
  either answer starts past the row (a prompt at least as long as the row) has nothing to
  compare and is left out.
  """

  TASK_FEATURES = {f"{side}_targets": seqio.FeatureConverter.FeatureSpec(dtype=tf.int32)
                   for side in PAIR_SIDES}
  MODEL_FEATURES = {f"{side}_{name}": spec for side in PAIR_SIDES
                    for name, spec in WeightedLMFeatureConverter.MODEL_FEATURES.items()}
  PACKING_FEATURE_DTYPES = {}

  def __init__(self, pack: bool = False, *, bos_id: int = 0, pad_id: int = 0, **kwargs):
    if pack:
      raise ValueError("preference pairs are not packed (PreferenceFeatureConverter(pack=False))")
    super().__init__(pack=False, bos_id=bos_id, pad_id=pad_id, **kwargs)

  def _convert_features(self, ds: tf.data.Dataset,
                        task_feature_lengths: Mapping[str, int]) -> tf.data.Dataset:
    weights = {side: f"{side}_{LOSS_WEIGHTS}" for side in PAIR_SIDES}
    for side, name in weights.items():
      spec = ds.element_spec.get(name)
      if spec is None or spec.dtype != tf.float32 or spec.shape.rank != 1:
        raise ValueError(f"Feature '{name}' must be a rank-1 float32 tensor, got {spec}.")
    lengths = {}
    for side in PAIR_SIDES:
      lengths[f"{side}_targets"] = lengths[weights[side]] = task_feature_lengths[f"{side}_targets"]
    ds = ds.map(lambda ex: {k: _encode_tokens(ex[k]) if k.endswith("_targets") else ex[k]
                            for k in lengths}, num_parallel_calls=tf.data.AUTOTUNE)
    ds = seqio.utils.trim_and_pad_dataset(ds, lengths)

    def convert(ex):
      return {f"{side}_{k}": v for side in PAIR_SIDES for k, v in self._convert_example(
          {"targets": ex[f"{side}_targets"], LOSS_WEIGHTS: ex[weights[side]]}).items()}
    ds = ds.map(convert, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.filter(lambda ex: tf.reduce_all(
        [tf.reduce_any(ex[f"{side}_decoder_loss_weights"] > 0) for side in PAIR_SIDES]))

  def get_model_feature_lengths(self, task_feature_lengths: Mapping[str, int]) -> dict[str, int]:
    return {f"{side}_{name}": task_feature_lengths[f"{side}_targets"]
            for side in PAIR_SIDES for name in WeightedLMFeatureConverter.MODEL_FEATURES}
