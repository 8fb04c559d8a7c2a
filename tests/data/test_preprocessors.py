"""Exact token and loss-weight layout of every sequence kind (ByteVocabulary: id = byte + 3)."""
import numpy as np
import pytest
import seqio
import tensorflow as tf

from annotanchor.data import preprocessors
from annotanchor.data.feature_converter import LOSS_WEIGHTS
from annotanchor.data.prompts import PromptTemplate
from annotanchor.data.segments import ANNOTATION_MASK, build_sequence

FEATURES = {"targets": seqio.Feature(seqio.ByteVocabulary())}
EOS = 1


def ids(text):
  return [b + 3 for b in text.encode()]


def layout(*parts, eos=True):
  """Expected (targets, weights, annotation mask) from (text, weight, is_annotation) parts."""
  targets, weights, mask = [], [], []
  for text, weight, is_ann in parts:
    targets += ids(text)
    weights += [weight] * len(ids(text))
    mask += [int(is_ann)] * len(ids(text))
  if eos:
    targets, weights, mask = targets + [EOS], weights + [1.0], mask + [0]
  return targets, weights, mask


def run(preprocessor, examples, **kwargs):
  ds = tf.data.Dataset.from_tensor_slices({k: [e[k] for e in examples] for k in examples[0]}) \
      if not isinstance(examples[0].get("chunks"), list) else tf.data.Dataset.from_generator(
          lambda: iter(examples), output_signature={k: tf.TensorSpec([None], tf.string)
                                                    for k in examples[0]})
  with seqio.utils.map_seed_manager(7):
    out = preprocessor(ds, FEATURES, template=PromptTemplate(), **kwargs)
  return list(out.as_numpy_iterator())


def check(ex, expected):
  targets, weights, mask = expected
  np.testing.assert_array_equal(ex["targets"], targets)
  np.testing.assert_array_equal(ex[LOSS_WEIGHTS], weights)
  np.testing.assert_array_equal(ex[ANNOTATION_MASK], mask)


DOC = {"chunks": ["Ann woke.", "She left."], "annotations": ["who:Ann", "act:go mood:calm"]}
SFT = {"prompt": " Tell it. ", "response": "Done. ", "annotation": "g:x h:big_y"}


def test_build_sequence_docstring_example():
  out = build_sequence(seqio.ByteVocabulary(), tf.constant(["Q", "<a>", "hi"]),
                       tf.constant([0.0, 0.0, 1.0]), tf.constant([False, True, False]), 1.0)
  assert out["targets"].numpy().tolist() == [84, 63, 100, 65, 107, 108, 1]
  assert out[LOSS_WEIGHTS].numpy().tolist() == [0, 0, 0, 0, 1, 1, 1]
  assert out[ANNOTATION_MASK].numpy().tolist() == [0, 1, 1, 1, 0, 0, 0]


def test_annotated_pretraining_interleave():
  (ex,) = run(preprocessors.annotated_pretraining, [DOC])
  check(ex, layout(("<ann> who:Ann </ann>", 1.0, True), (" Ann woke.\n\n", 1.0, False),
                   ("<ann> act:go mood:calm </ann>", 1.0, True), (" She left.", 1.0, False)))


def test_plain_pretraining_is_the_same_chunks_without_annotations():
  (ex,) = run(preprocessors.plain_pretraining, [DOC])
  check(ex, layout(("Ann woke.\n\nShe left.", 1.0, False)))


def test_full_annotation_dropout_equals_plain():
  (dropped,) = run(preprocessors.annotated_pretraining, [DOC], dropout_rate=1.0)
  (plain,) = run(preprocessors.plain_pretraining, [DOC])
  np.testing.assert_array_equal(dropped["targets"], plain["targets"])


def test_annotation_dropout_rate_within_sampling_error():
  docs = [{"chunks": ["c"] * 10, "annotations": ["k:v"] * 10}] * 60
  rate, n = 0.3, 600
  kept = sum(ex[ANNOTATION_MASK].sum() // len(ids("<ann> k:v </ann>"))
             for ex in run(preprocessors.annotated_pretraining, docs, dropout_rate=rate))
  dropped = n - kept
  assert abs(dropped - rate * n) < 4 * np.sqrt(n * rate * (1 - rate))


def test_standard_sft():
  (ex,) = run(preprocessors.standard_sft, [SFT])
  check(ex, layout(("<user> Tell it.\n<assistant>", 0.0, False), (" Done.", 1.0, False)))


def test_anchored_sft_masks_prompt_and_annotation():
  (ex,) = run(preprocessors.anchored_sft, [SFT], key_only_rate=0.0)
  check(ex, layout(("<user> Tell it.\n<assistant>", 0.0, False),
                   ("<ann> g:x h:big_y </ann>", 0.0, True), (" Done.", 1.0, False)))


def test_anchored_sft_key_only_unmasks_keys_and_delimiters():
  (ex,) = run(preprocessors.anchored_sft, [SFT], key_only_rate=1.0)
  check(ex, layout(("<user> Tell it.\n<assistant>", 0.0, False),
                   ("<ann> g:", 1.0, True), ("x", 0.0, True), (" h:", 1.0, True),
                   ("big_y", 0.0, True), (" </ann>", 1.0, True), (" Done.", 1.0, False)))


def test_anchored_sft_without_annotation_masking_puts_the_annotation_in_the_loss():
  (ex,) = run(preprocessors.anchored_sft, [SFT], key_only_rate=0.0, mask_annotation=False)
  check(ex, layout(("<user> Tell it.\n<assistant>", 0.0, False),
                   ("<ann> g:x h:big_y </ann>", 1.0, True), (" Done.", 1.0, False)))


def test_key_only_rate_within_sampling_error():
  n, rate = 800, 0.05
  examples = run(preprocessors.anchored_sft, [SFT] * n, key_only_rate=rate)
  key_only = sum(ex[LOSS_WEIGHTS][ex[ANNOTATION_MASK] == 1].any() for ex in examples)
  assert abs(key_only - rate * n) < 4 * np.sqrt(n * rate * (1 - rate))


def test_annotation_only_pretraining_form():
  out = run(preprocessors.annotation_only, [DOC], form="pretraining")
  assert len(out) == 2
  check(out[0], layout(("<ann> who:Ann </ann>", 1.0, True), eos=False))
  check(out[1], layout(("<ann> act:go mood:calm </ann>", 1.0, True), eos=False))


def test_annotation_only_sft_context_form():
  (ex,) = run(preprocessors.annotation_only, [DOC], form="sft_context", prompts=["Go on."])
  check(ex, layout(("<user> Go on.\n<assistant>", 0.0, False),
                   ("<ann> who:Ann act:go mood:calm </ann>", 1.0, True), eos=False))
  (first,) = run(preprocessors.annotation_only, [DOC], form="sft_context", prompts=["Go on."],
                 document_level=False)
  check(first, layout(("<user> Go on.\n<assistant>", 0.0, False),
                      ("<ann> who:Ann </ann>", 1.0, True), eos=False))


def test_annotation_only_rejects_unknown_form():
  with pytest.raises(ValueError, match="form must be"):
    run(preprocessors.annotation_only, [DOC], form="both")
