"""SeqIO preprocessors for chat SFT: conversations rendered as pieces with kinds.

Source examples hold `pieces` and `kinds` (`validated.ChatExamples`, laid out by
`conversations.training_pieces`). The loss weight of a piece follows its kind:

  kind              standard   anchored                      (mask_annotation=False)
  context           0          0                             0
  annotation        (dropped)  0; 1 in key-only examples     1
  annotation_value  (dropped)  0                             1
  response          loss_on == "all"                          same
  last_response     1          1                             1

and EOS follows with weight 1. For [user U1, assistant A1 (ann k:v), user U2, assistant A2
(ann k:w)], anchored, loss_on="all":

  "<user> U1\\n<assistant>" "<ann>" " k:" "v" " </ann>" " A1" "\\n<user>" " U2\\n<assistant>"
   0                        0       0     0   0        1     1          0
  "<ann>" " k:" "w" " </ann>" " A2" EOS
   0       0     0   0        1     1

With loss_on="last" the weights of " A1" and "\\n<user>" are 0 too; the standard task
reads the same pieces without the annotation ones. A one-turn conversation gives exactly
the layout of `preprocessors.standard_sft` / `anchored_sft` on the same prompt and response.
"""
from typing import Mapping

import gin
import seqio
import tensorflow as tf

from annotanchor.data.segments import build_sequence
from annotanchor.errors import SettingError

Features = Mapping[str, seqio.Feature]
LOSS_ON = ("all", "last")


def _check(loss_on: str, key_only_rate: float) -> None:
  if loss_on not in LOSS_ON:
    raise SettingError(f"loss_on={loss_on!r}; expected one of {LOSS_ON}")
  if not 0.0 <= key_only_rate <= 1.0:
    raise SettingError(f"key_only_rate must be in [0, 1], got {key_only_rate}.")


# The registering corpus passes these (registration.register_sft_tasks; the annotation
# knobs are its fields): a gin binding of one here would be overridden unseen, so gin
# refuses it.
@gin.configurable(denylist=["anchored", "key_only_rate", "mask_annotation", "append_eos"])
def chat_sft(dataset: tf.data.Dataset, output_features: Features, anchored: bool = False,
             loss_on: str = "all", key_only_rate: float = 0.003,
             mask_annotation: bool = True, append_eos: bool = True) -> tf.data.Dataset:
  """Chat SFT sequences (see the module docstring).

  Args:
    dataset: chat examples (`pieces`, `kinds`).
    output_features: the task's features.
    anchored: keep each assistant turn's annotation before its content (masked).
    loss_on: "all" assistant turns or only the "last".
    key_only_rate: anchored: fraction of examples whose annotation keys and delimiters
      stay in the loss (values masked), as in `preprocessors.anchored_sft`.
    mask_annotation: anchored: False puts the whole annotation in the loss (the ablation).
    append_eos: end with EOS (weight 1); False for Hugging Face chat templates, whose
      end-of-turn text closes the last turn (`chat_template`).

  Returns:
    The sequences: `targets`, `targets_loss_weights`, `targets_annotation_mask`.
  """
  _check(loss_on, key_only_rate)
  vocabulary = output_features["targets"].vocabulary
  earlier = 1.0 if loss_on == "all" else 0.0

  @seqio.map_over_dataset(num_seeds=1)
  def convert(ex, seed):
    kinds = ex["kinds"]
    is_annotation = tf.strings.regex_full_match(kinds, "annotation(_value)?")
    is_value = tf.equal(kinds, "annotation_value")
    key_only = tf.random.stateless_uniform([], seed) < key_only_rate
    annotation_weight = tf.where(is_value, 0.0, tf.where(key_only, 1.0, 0.0))
    if not mask_annotation:
      annotation_weight = tf.ones_like(annotation_weight)
    weights = tf.where(tf.equal(kinds, "last_response"), 1.0,
                       tf.where(tf.equal(kinds, "response"), earlier, 0.0))
    weights = tf.where(is_annotation, annotation_weight, weights)
    pieces = ex["pieces"]
    if not anchored:
      keep = tf.logical_not(is_annotation)
      pieces, weights, is_annotation = (tf.boolean_mask(pieces, keep),
                                        tf.boolean_mask(weights, keep),
                                        tf.boolean_mask(is_annotation, keep))
    return build_sequence(vocabulary, pieces, weights, is_annotation,
                          eos_weight=1.0 if append_eos else None)

  return convert(dataset)
