"""Decoding feeds a prompt exactly as training fed the same tokens (BOS first)."""
import types

import jax
import numpy as np
import seqio
import tensorflow as tf

from annotanchor.data.feature_converter import BOS_ID, LOSS_WEIGHTS, WeightedLMFeatureConverter
from annotanchor.data.prompts import PromptTemplate
from annotanchor.decoding.generate import DecodeSettings, Generator
from annotanchor.decoding.sampler import SampleOutput


class RecordingSampler:
  """Stands in for DecoderSampler: records the prompt rows, draws EOS."""
  batch_degree = 1
  config = types.SimpleNamespace(max_len=512)

  def __call__(self, params, tokens, lengths, keys, sampling):
    self.rows = [row[len(row) - n:].tolist() for row, n in zip(tokens, lengths)]
    shape = (tokens.shape[0], sampling.num_decodes)
    return SampleOutput(tokens=np.ones(shape + (sampling.max_new_tokens,), np.int32),
                        lengths=np.ones(shape, np.int32), stopped=np.ones(shape, bool))


def test_the_sampled_prompt_is_the_training_input_prefix():
  vocab = seqio.ByteVocabulary()
  template = PromptTemplate()
  prompt_ids = vocab.encode(template.build("Tell a story."))
  targets = prompt_ids + vocab.encode(" Once.") + [vocab.eos_id]
  ds = tf.data.Dataset.from_tensors({"targets": tf.constant(targets, tf.int32),
                                     LOSS_WEIGHTS: tf.ones(len(targets), tf.float32)})
  (row,) = WeightedLMFeatureConverter(pack=False)(ds, {"targets": 64}).as_numpy_iterator()
  sampler = RecordingSampler()
  Generator(sampler, None, vocab, DecodeSettings(num_samples=1), template).generate(
      ["p"], ["Tell a story."])
  # The first response token is drawn from the logits at the prompt's last input
  # position; training computed that position from these same inputs.
  assert sampler.rows == [row["decoder_input_tokens"][:len(prompt_ids) + 1].tolist()]
  assert sampler.rows[0][0] == BOS_ID
