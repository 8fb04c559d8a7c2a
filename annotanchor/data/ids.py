"""Token id conventions shared by the feature converter (tf) and decoding (no tf).

Padding is known by position (segment id 0, loss weight 0), never by its id, and EOS is
the vocabulary's `eos_id`; only the id shifted in before every sequence needs a rule:
"""

# `decoder_input_tokens` are the targets shifted right with this id first in every
# segment (seqio.FeatureConverter's default bos_id), so the model always read it before a
# sequence's first token: decoding starts every prompt with it too. It is the id of
# SentencePiece, byte and pass-through vocabularies (their pad, 0).
BOS_ID = 0


def decoder_start_id(vocabulary) -> int:
  """The id shifted in before every sequence and prompt of `vocabulary`.

  A vocabulary that declares `decoder_start_id` (HuggingFaceVocabulary: its BOS, where
  ids 0 and 1 are real tokens) is followed; every other takes BOS_ID, as always.
  """
  return getattr(vocabulary, "decoder_start_id", BOS_ID)
