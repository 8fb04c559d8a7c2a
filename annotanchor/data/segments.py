"""Building token sequences from text pieces, inside the tf.data graph.

Every sequence kind (pretraining interleave, SFT, anchored SFT, annotation
only) is a list of text pieces, each with a loss weight. Pieces are tokenized
one by one and concatenated, so each token's weight is its piece's weight and
an annotation tokenizes the same way in every sequence kind. The pieces
concatenate to the sequence's text; with a vocabulary that adds no dummy
prefix (see `vocabulary.py`) the tokens decode back to exactly that text.
"""
from typing import Optional

import seqio
import tensorflow as tf

from annotanchor.data.annotations import AnnotationFormat
from annotanchor.data.feature_converter import LOSS_WEIGHTS
from annotanchor.data.hf_vocabulary import HuggingFaceVocabulary

# Per-token 0/1 mask of annotation tokens (delimiters included), kept by tasks
# for token accounting; mixtures and the feature converter drop it.
ANNOTATION_MASK = "targets_annotation_mask"


def encode_pieces(vocabulary: seqio.Vocabulary, pieces: tf.Tensor) -> tf.RaggedTensor:
  """Tokenizes a 1-D string tensor into a `[num_pieces, (tokens)]` int32 RaggedTensor."""
  if isinstance(vocabulary, seqio.SentencePieceVocabulary):
    ids = vocabulary.tf_tokenizer.tokenize(pieces)
    return tf.cast(ids, tf.int32)
  if isinstance(vocabulary, HuggingFaceVocabulary):  # All pieces in one tokenizer call.
    return vocabulary.encode_batch_tf(pieces)
  if isinstance(vocabulary, seqio.ByteVocabulary):
    # Each byte is its own token, shifted past PAD, EOS and UNK.
    chars = tf.strings.bytes_split(pieces)
    ids = tf.cast(tf.io.decode_raw(chars.flat_values, tf.uint8)[:, 0], tf.int32) + 3
    return chars.with_flat_values(ids)
  return tf.map_fn(lambda s: tf.cast(vocabulary.encode_tf(s), tf.int32), pieces,
                   fn_output_signature=tf.RaggedTensorSpec([None], tf.int32, ragged_rank=0))


def annotation_pieces(bodies: tf.Tensor, fmt: AnnotationFormat
                      ) -> tuple[tf.RaggedTensor, tf.RaggedTensor]:
  """The tf twin of `annotations.annotation_pieces`, for a batch of annotations.

  Example:

    bodies = ["genre:myth hero:Mira", "tone:dark"]
    pieces = [["<ann>", " genre:", "myth", " hero:", "Mira", " </ann>"],
              ["<ann>", " tone:", "dark", " </ann>"]]
    is_value = [[F, F, T, F, T, F], [F, F, T, F]]

  Args:
    bodies: 1-D string tensor of annotation bodies (`"k:v k:v"`).
    fmt: the delimiters.

  Returns:
    (pieces, is_value): string and bool RaggedTensors `[num_bodies, (pieces)]`.
  """
  tags = tf.strings.split(bodies)
  keys = tf.strings.regex_replace(tags.flat_values, r"^([^:]*:).*$", r" \1")
  values = tf.strings.regex_replace(tags.flat_values, r"^[^:]*:", "")
  inner = tf.RaggedTensor.from_row_lengths(
      tf.reshape(tf.stack([keys, values], axis=1), [-1]), tags.row_lengths() * 2)
  n = tf.shape(bodies, out_type=tf.int64)[0:1]
  ones = tf.ones(n, tf.int64)
  opens = tf.RaggedTensor.from_row_lengths(tf.fill(n, fmt.open), ones)
  closes = tf.RaggedTensor.from_row_lengths(tf.fill(n, " " + fmt.close), ones)
  pieces = tf.concat([opens, inner, closes], axis=1)
  value_flags = tf.tile([False, True], [tf.size(keys)])
  is_value = tf.concat([tf.zeros_like(opens, tf.bool),
                        inner.with_flat_values(value_flags),
                        tf.zeros_like(closes, tf.bool)], axis=1)
  return pieces, is_value


def build_sequence(vocabulary: seqio.Vocabulary, pieces: tf.Tensor, weights: tf.Tensor,
                   is_annotation: tf.Tensor, eos_weight: Optional[float]) -> dict[str, tf.Tensor]:
  """Tokenizes pieces and lays out targets, per-token weights and the annotation mask.

  Example (ByteVocabulary, so each character is one token id = byte + 3):

    pieces = ["Q", "<a>", "hi"], weights = [0, 0, 1], is_annotation = [F, T, F]
    eos_weight = 1.0
    -> targets                 = [84, 63, 100, 65, 107, 108, 1]
       targets_loss_weights    = [ 0,  0,   0,  0,   1,   1, 1]
       targets_annotation_mask = [ 0,  1,   1,  1,   0,   0, 0]

  Args:
    vocabulary: the output vocabulary.
    pieces: 1-D string tensor.
    weights: 1-D float tensor, the loss weight of each piece's tokens.
    is_annotation: 1-D bool tensor, whether a piece belongs to an annotation.
    eos_weight: append EOS with this loss weight; None appends no EOS.

  Returns:
    A dict with `targets` (int32), `targets_loss_weights` (float32) and
    `targets_annotation_mask` (int32).
  """
  ids = encode_pieces(vocabulary, pieces)
  lengths = ids.row_lengths()
  targets = ids.flat_values
  token_weights = tf.repeat(tf.cast(weights, tf.float32), lengths)
  mask = tf.repeat(tf.cast(is_annotation, tf.int32), lengths)
  if eos_weight is not None:
    targets = tf.concat([targets, [vocabulary.eos_id]], 0)
    token_weights = tf.concat([token_weights, [eos_weight]], 0)
    mask = tf.concat([mask, [0]], 0)
  return {"targets": targets, LOSS_WEIGHTS: token_weights, ANNOTATION_MASK: mask}
