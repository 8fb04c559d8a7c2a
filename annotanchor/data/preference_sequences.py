"""The SeqIO preprocessor of preference pairs: both responses as weighted sequences.

Source examples hold each side's `pieces` and `kinds` (`preference_records`). A side's
weight is 1 on the judged answer (`last_response`) and EOS, 0 on everything else: the
prompt, earlier turns, and the annotation, which anchored DPO keeps in the sequence (the
answer is conditioned on it) but never scores, so the preference moves Q(y | x, z) and
leaves R(z | x) alone (docs/design.md 7). There is no key-only variant: no annotation
token enters the objective. Standard DPO drops the annotation pieces. For a pair whose
answers carry the annotations `k:v` and `k:w` (ByteVocabulary-like ids elided):

  anchored  chosen    "<user> P\\n<assistant>" "<ann>" " k:" "v" " </ann>" " R1" EOS
                       0                        0       0     0   0        1     1
            rejected  "<user> P\\n<assistant>" "<ann>" " k:" "w" " </ann>" " R2" EOS
                       0                        0       0     0   0        1     1
  standard  chosen    "<user> P\\n<assistant>" " R1" EOS
                       0                        1     1

Outputs: `chosen_targets`, `chosen_targets_loss_weights`, `rejected_targets`,
`rejected_targets_loss_weights` (the features `PreferenceFeatureConverter` reads).
"""
from typing import Mapping

import seqio
import tensorflow as tf

from annotanchor.data.feature_converter import LOSS_WEIGHTS, PAIR_SIDES, loss_weights_feature
from annotanchor.data.segments import build_sequence


def preference_features(vocabulary: seqio.Vocabulary) -> dict[str, seqio.Feature]:
  """A preference task's output features: each side's targets and loss weights."""
  features = {}
  for side in PAIR_SIDES:
    features[f"{side}_targets"] = seqio.Feature(vocabulary, add_eos=False)
    features[f"{side}_{LOSS_WEIGHTS}"] = loss_weights_feature()
  return features


def is_preference_task(task: seqio.Task | seqio.Mixture) -> bool:
  """Whether a task (or mixture) yields preference pairs rather than single sequences."""
  return "chosen_targets" in task.output_features


def preference_pairs(dataset: tf.data.Dataset, output_features: Mapping[str, seqio.Feature], *,
                     anchored: bool, append_eos: bool = True) -> tf.data.Dataset:
  """Both sides of each pair as `targets` + weights (see the module docstring).

  Args:
    dataset: examples with `chosen_pieces`, `chosen_kinds`, `rejected_pieces`,
      `rejected_kinds`.
    output_features: the task's features (`chosen_targets` gives the vocabulary).
    anchored: keep each answer's annotation before it (weight 0); False drops it.
    append_eos: end each side with EOS (weight 1); False for Hugging Face chat templates,
      whose end-of-turn text closes the answer.
  """
  vocabulary = output_features["chosen_targets"].vocabulary

  def side(pieces, kinds):
    is_annotation = tf.strings.regex_full_match(kinds, "annotation(_value)?")
    weights = tf.where(tf.equal(kinds, "last_response"), 1.0, 0.0)
    if not anchored:
      keep = tf.logical_not(is_annotation)
      pieces, weights, is_annotation = (tf.boolean_mask(pieces, keep),
                                        tf.boolean_mask(weights, keep),
                                        tf.boolean_mask(is_annotation, keep))
    sequence = build_sequence(vocabulary, pieces, weights, is_annotation,
                              eos_weight=1.0 if append_eos else None)
    return sequence["targets"], sequence[LOSS_WEIGHTS]

  def convert(ex):
    out = {}
    for name in PAIR_SIDES:
      out[f"{name}_targets"], out[f"{name}_{LOSS_WEIGHTS}"] = side(ex[f"{name}_pieces"],
                                                                  ex[f"{name}_kinds"])
    return out
  return dataset.map(convert, num_parallel_calls=tf.data.AUTOTUNE)
