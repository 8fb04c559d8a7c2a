"""Token id conventions shared by the feature converter (tf) and decoding (no tf)."""

# `decoder_input_tokens` are the targets shifted right with this id first in every
# segment (seqio.FeatureConverter's default bos_id), so the model always read it before a
# sequence's first token: decoding starts every prompt with it too.
BOS_ID = 0
