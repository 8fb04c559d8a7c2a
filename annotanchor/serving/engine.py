"""The model behind the API: request settings to DecodeSettings, length checks, sampling.

Sampling goes through `annotanchor.decoding.generate.Generator` (the decoding modes, on the
jitted KV-cache sampler). Each prompt's samples are seeded by the request's seed and the
prompt's position, so a request with a seed gives the same answer whatever it was batched
with.
"""
from __future__ import annotations

from typing import Any, Sequence

import seqio

from annotanchor.data import annotations
from annotanchor.data.prompts import PromptTemplate
from annotanchor.decoding.generate import Continuation, DecodeSettings, Generator
from annotanchor.decoding.model_sampler import DecoderSampler
from annotanchor.serving.protocol import APIError, SamplingRequest


class Engine:
  """Samples a restored checkpoint.

  Args:
    sampler: the jitted sampler (its config's max_len bounds prompt + answer).
    params: the checkpoint's parameters on the sampler's mesh.
    vocabulary: the checkpoint's vocabulary.
    template: the checkpoint's prompt template (chat rendering, annotation delimiters).
    mode: the decoding mode ("anchored": sample an annotation, then the response;
      "direct"; "given_annotation").
    max_annotation_tokens, annotation_temperature: the anchored mode's annotation sampling.
  """

  def __init__(self, sampler: DecoderSampler, params: Any, vocabulary: seqio.Vocabulary,
               template: PromptTemplate, mode: str = "anchored",
               max_annotation_tokens: int = 64, annotation_temperature: float = 1.0):
    self.sampler, self.params, self.vocab = sampler, params, vocabulary
    self.template = template
    self.mode = mode
    self.max_annotation_tokens, self.annotation_temperature = (max_annotation_tokens,
                                                               annotation_temperature)
    DecodeSettings(mode=mode)  # Validates the mode now rather than at the first request.
    fmt = self.template.annotation_format
    if mode == "anchored":  # `<ann>` given, up to max tokens drawn, `" </ann>"` if cut off.
      self._extra = (len(self._encode(fmt.open)) + max_annotation_tokens
                     + len(self._encode(" " + fmt.close)))
    elif mode == "given_annotation":  # The empty annotation `<ann> </ann>`.
      self._extra = sum(len(self._encode(p)) for p, _ in annotations.annotation_pieces((), fmt))
    else:
      self._extra = 0

  def _encode(self, text: str) -> list[int]:
    return list(self.vocab.encode(text))

  def settings(self, request: SamplingRequest) -> DecodeSettings:
    """The DecodeSettings of a request (seed 0: requests are seeded by their prompt ids)."""
    return DecodeSettings(mode=self.mode, num_samples=request.n,
                          max_new_tokens=request.max_tokens, temperature=request.temperature,
                          top_p=request.top_p, annotation_temperature=self.annotation_temperature,
                          max_annotation_tokens=self.max_annotation_tokens, seed=0)

  def prompt_tokens(self, request: SamplingRequest) -> int:
    """The request's prompt tokens (BOS included).

    Raises:
      APIError: a prompt plus max_tokens (and the annotation) does not fit the model.
    """
    total = 0
    limit = self.sampler.config.max_len
    for text in request.texts:
      tokens = 1 + len(self._encode(text))
      if tokens + self._extra + request.max_tokens - 1 > limit:
        room = limit + 1 - tokens - self._extra
        raise APIError(400, f"This model's context is {limit} tokens: the prompt takes {tokens}"
                       f"{f' and the annotation up to {self._extra}' if self._extra else ''}, "
                       f"leaving room for max_tokens <= {max(room, 0)} (asked "
                       f"{request.max_tokens})", param="max_tokens",
                       code="context_length_exceeded")
      total += tokens
    return total

  def run(self, settings: DecodeSettings, prompt_ids: Sequence[str], texts: Sequence[str]
          ) -> list[list[Continuation]]:
    """N continuations of each text, in one sampler call per phase."""
    generator = Generator(self.sampler, self.params, self.vocab, settings, self.template)
    return generator.continue_texts(prompt_ids, texts)


def padded_size(count: int, max_batch: int) -> int:
  """A call's padded prompt count: 1 for a lone prompt, max_batch for any batch.

  The sampler compiles once per batch shape (and prompt length bucket, and setting), and
  a compile takes seconds; with only these two shapes a server warms up in its first few
  batches instead of meeting a new size (and a multi-second stall) whenever the load
  changes. Padding costs little: a decode step with 8 rows takes about as long as with 4.

  Example: padded_size(1, 8) -> 1; padded_size(3, 8) -> 8.
  """
  return 1 if count <= 1 else max_batch
