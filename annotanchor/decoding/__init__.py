"""Sampling with a KV cache.

  sampler.py        temperature_sample over any TokensToLogits: left-padded prefill,
                    temperature/top-k/top-p, num_decodes, EOS and stop sequences.
  model_sampler.py  DecoderSampler: the sampler over the Decoder's KV cache (or full
                    forward passes), jitted with sharded parameters and batch.
  generate.py       Generator: text prompts to annotation + response, in the direct,
                    anchored and given_annotation modes.

The `annotanchor infer` entry point (annotanchor/infer.py) writes the samples.
"""
