"""Decoding feeds a prompt exactly as training fed the same tokens (BOS first)."""
import types

import numpy as np
import pytest
import seqio
import tensorflow as tf

from annotanchor.data.feature_converter import LOSS_WEIGHTS, WeightedLMFeatureConverter
from annotanchor.data.ids import BOS_ID
from annotanchor.data.prompts import PromptTemplate
from annotanchor.decoding.generate import DecodeSettings, Generator
from annotanchor.decoding.sampler import SampleOutput


class RecordingSampler:
  """Stands in for DecoderSampler: records the prompt rows of each call, draws EOS."""
  batch_degree = 1
  config = types.SimpleNamespace(max_len=512)

  def __init__(self):
    self.calls = []

  def __call__(self, params, tokens, lengths, keys, sampling):
    self.calls.append([row[len(row) - n:].tolist() for row, n in zip(tokens, lengths)])
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
  assert sampler.calls == [[row["decoder_input_tokens"][:len(prompt_ids) + 1].tolist()]]
  assert sampler.calls[0][0][0] == BOS_ID


def _first_rows(settings: DecodeSettings, vocab, template) -> list[list[int]]:
  sampler = RecordingSampler()
  Generator(sampler, None, vocab, settings, template).generate(["p"], ["Tell a story."])
  return sampler.calls[0]


def test_prompt_formats_lay_out_the_prompt_after_bos():
  vocab, template = seqio.ByteVocabulary(), PromptTemplate()
  chat = vocab.encode("<user> Tell a story.\n<assistant>")
  raw = vocab.encode("Tell a story.")
  assert _first_rows(DecodeSettings(num_samples=1), vocab, template) == [[BOS_ID] + chat]
  assert _first_rows(DecodeSettings(num_samples=1, prompt_format="raw"), vocab,
                     template) == [[BOS_ID] + raw]
  assert _first_rows(DecodeSettings(num_samples=1, prompt_format="none"), vocab,
                     template) == [[BOS_ID]]
  # The anchored mode's first phase opens the annotation after whatever the format gave.
  anchored = DecodeSettings(num_samples=1, mode="anchored", prompt_format="none")
  assert _first_rows(anchored, vocab, template) == [[BOS_ID] + vocab.encode("<ann>")]


def test_prompt_format_is_recorded_where_it_departs_from_chat():
  assert "prompt_format" not in DecodeSettings().record()
  assert DecodeSettings(prompt_format="none").record()["prompt_format"] == "none"
  with pytest.raises(ValueError, match="prompt_format='document'"):
    DecodeSettings(prompt_format="document")
