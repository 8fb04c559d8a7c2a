"""Text in, annotated samples out: the decoding modes on top of the token sampler.

Modes (docs/design.md 1.4):

  direct            prompt -> response (base and standard-SFT models).
  anchored          prompt + `<ann>` -> the model samples tags up to `</ann>` at the
                    annotation temperature, then the response at the response temperature.
  given_annotation  prompt + a fixed annotation (default the empty `<ann> </ann>`) ->
                    response: the ablation without annotation sampling.

Token layout of an anchored sample (the SFT layout of annotanchor.data.preprocessors):

  phase 1 prompt  [BOS] + encode("<user> Tell a story.\\n<assistant>") + encode("<ann>")
          draws   " genre:", "myth", " </ann>"          (stops at the `</ann>` tokens)
  phase 2 prompt  phase-1 prompt + its draws
          draws   " Title: ...", EOS

With prompt_format "raw" the template is left out (phase 1 prompt [BOS] +
encode("Tell a story.") + encode("<ann>")); with "none" the prompt too ([BOS] +
encode("<ann>")), so a base model is asked for what it learned in pretraining.

The open delimiter is given rather than drawn, so every anchored sample has an annotation;
one that has not closed after `max_annotation_tokens` is closed by appending `" </ann>"`,
and one that ends with EOS gets an empty response. Samples are deterministic per
(seed, prompt id, sample index): batch composition and resumed runs do not change them.
"""
from __future__ import annotations

import dataclasses
import math
import zlib
from typing import Any, Sequence

import jax
import numpy as np
import seqio

from annotanchor.data import annotations
from annotanchor.data.ids import decoder_start_id
from annotanchor.data.prompts import Generation, PromptTemplate
from annotanchor.decoding.model_sampler import DecoderSampler
from annotanchor.decoding.sampler import SamplingConfig, left_pad
from annotanchor.errors import SettingError

MODES = ("direct", "anchored", "given_annotation")
# How the prompt is put to the model (see DecodeSettings.prompt_format).
PROMPT_FORMATS = ("chat", "raw", "none")
# Prompt lengths are padded up to a multiple of this, so that few shapes are compiled.
LENGTH_BUCKET = 32


@dataclasses.dataclass(frozen=True)
class DecodeSettings:
  """What `generate` draws; all of it is recorded with every sample.

  Attributes:
    mode: one of MODES.
    num_samples: N samples per prompt.
    max_new_tokens: the most response tokens.
    temperature, top_k, top_p: response sampling (temperature 0: greedy).
    annotation_temperature: annotation sampling in the anchored mode.
    max_annotation_tokens: the most annotation tokens in the anchored mode.
    given_annotation: the annotation of the given_annotation mode, `<ann> k:v </ann>`;
      "" gives the empty annotation `<ann> </ann>`.
    prompt_format: what follows BOS before the mode's continuation:
      "chat": the SFT template, `<user> {prompt}\n<assistant>` (fine-tuned models);
      "raw": the prompt text alone, which a base model continues as a document;
      "none": nothing: the prompt is ignored and the model draws from its
        unconditional (pretraining) distribution, the semantic prior R of docs/design.md 1
        that a base model trained on documents without instructions can be asked for.
    seed: the base of every sample's RNG.
  """

  mode: str = "direct"
  num_samples: int = 10
  max_new_tokens: int = 256
  temperature: float = 1.0
  top_k: int = 0
  top_p: float = 1.0
  annotation_temperature: float = 1.0
  max_annotation_tokens: int = 64
  given_annotation: str = ""
  prompt_format: str = "chat"
  seed: int = 0

  def __post_init__(self):
    if self.mode not in MODES:
      raise SettingError(f"mode={self.mode!r}; expected one of {MODES}")
    if self.prompt_format not in PROMPT_FORMATS:
      raise SettingError(f"prompt_format={self.prompt_format!r}; expected one of "
                         f"{PROMPT_FORMATS}")
    if self.num_samples < 1:
      raise SettingError(f"num_samples={self.num_samples} must be at least 1")

  def record(self) -> dict[str, Any]:
    """The `decoding` field of the samples (annotation settings only where they apply)."""
    out = {"mode": self.mode, "temperature": self.temperature, "top_k": self.top_k,
           "top_p": self.top_p, "max_new_tokens": self.max_new_tokens, "seed": self.seed}
    if self.mode == "anchored":
      out.update(annotation_temperature=self.annotation_temperature,
                 max_annotation_tokens=self.max_annotation_tokens)
    if self.mode == "given_annotation":
      out["given_annotation"] = self.given_annotation
    # Recorded where it departs from the default, so markers of chat runs stay as they were.
    if self.prompt_format != "chat":
      out["prompt_format"] = self.prompt_format
    return out


@dataclasses.dataclass(frozen=True)
class Continuation:
  """A sample taken apart, with what an API reports about it.

  Attributes:
    generation: its annotation and response text.
    num_tokens: tokens after the prompt (annotation and response, EOS included).
    ended: it ended with EOS; otherwise the max_new_tokens cap cut it off.
  """
  generation: Generation
  num_tokens: int
  ended: bool


def prompt_key(seed: int, prompt_id: str) -> jax.Array:
  """The PRNG key of one prompt: a function of the seed and the prompt id only."""
  return jax.random.fold_in(jax.random.key(seed), zlib.crc32(prompt_id.encode("utf-8")))


class Generator:
  """Draws N samples per prompt in one of the MODES and takes them apart into text.

  Args:
    sampler: the jitted sampler over the network.
    params: the network's parameters (on the sampler's mesh).
    vocabulary: encodes prompts and decodes samples; its EOS ends a response.
    settings: what to draw.
    template: the prompt template the model was fine-tuned with (the checkpoint's).
  """

  def __init__(self, sampler: DecoderSampler, params: Any, vocabulary: seqio.Vocabulary,
               settings: DecodeSettings, template: PromptTemplate):
    self.sampler, self.params, self.vocab, self.settings = sampler, params, vocabulary, settings
    self.template = template
    fmt = self.template.annotation_format
    self._open = self._encode(fmt.open)
    # The close delimiter as it follows a tag in SFT data (" </ann>") and bare.
    self._close = self._encode(" " + fmt.close)
    self._stops = tuple({tuple(self._close), tuple(self._encode(fmt.close))})
    if settings.mode == "given_annotation":
      tags = (annotations.parse_annotation(settings.given_annotation, fmt)
              if settings.given_annotation.strip() else ())
      # Piece by piece, as the SFT preprocessor tokenizes an annotation.
      self._given = [t for piece, _ in annotations.annotation_pieces(tags, fmt)
                     for t in self._encode(piece)]

  def _encode(self, text: str) -> list[int]:
    return [int(t) for t in self.vocab.encode(text)]

  def _sampling(self, max_new_tokens: int, temperature: float, num_decodes: int,
                stops=()) -> SamplingConfig:
    s = self.settings
    return SamplingConfig(max_new_tokens=max_new_tokens, num_decodes=num_decodes,
                          temperature=temperature, top_k=s.top_k, top_p=s.top_p,
                          eos_id=self.vocab.eos_id, pad_id=self.vocab.pad_id,
                          stop_sequences=stops)

  def _draw(self, prompts: Sequence[list[int]], keys: jax.Array,
            sampling: SamplingConfig) -> list[list[list[int]]]:
    """Samples token lists [prompt][decode], padding the batch to the mesh's multiple."""
    count = len(prompts)
    degree = self.sampler.batch_degree
    padded_count = math.ceil(count / degree) * degree
    # Filler rows repeat the last prompt; their samples are dropped.
    fill = np.minimum(np.arange(padded_count), count - 1)
    prompts, keys = [prompts[i] for i in fill], keys[fill]
    longest = max(map(len, prompts))
    length = min(math.ceil(longest / LENGTH_BUCKET) * LENGTH_BUCKET,
                 self.sampler.config.max_len - sampling.max_new_tokens + 1)
    tokens, lengths = left_pad(prompts, max(length, longest), self.vocab.pad_id)
    out = jax.device_get(self.sampler(self.params, tokens, lengths, keys, sampling))
    return [[out.tokens[b, j, :out.lengths[b, j]].tolist() for j in range(sampling.num_decodes)]
            for b in range(count)]

  def _prompt_text(self, prompt: str) -> str:
    """The model prompt of a user prompt in the settings' prompt_format."""
    fmt = self.settings.prompt_format
    if fmt == "chat":
      return self.template.build(prompt)
    return prompt.strip() if fmt == "raw" else ""

  def _decode(self, ids: list[int]) -> str:
    eos = self.vocab.eos_id
    return self.vocab.decode([t for t in ids if t != eos])

  def generate(self, prompt_ids: Sequence[str], prompts: Sequence[str]
               ) -> list[list[Generation]]:
    """N samples for each prompt, as Generations (annotation and response text).

    Args:
      prompt_ids: stable ids, one per prompt (they seed the samples).
      prompts: the user prompts (without the template).

    Returns:
      One list of N Generations per prompt.
    """
    built = [self._prompt_text(p) for p in prompts]
    return [[c.generation for c in row] for row in self.continue_texts(prompt_ids, built)]

  def continue_texts(self, prompt_ids: Sequence[str], texts: Sequence[str]
                     ) -> list[list[Continuation]]:
    """N continuations of each model prompt text, used as it is (no template applied).

    Args:
      prompt_ids: stable ids, one per text (they seed the samples).
      texts: model prompts, e.g. `template.build(prompt)` or raw text to continue.

    Returns:
      One list of N Continuations per text.
    """
    s = self.settings
    n = s.num_samples
    keys = jax.numpy.stack([prompt_key(s.seed, pid) for pid in prompt_ids])
    # BOS first, as every training sequence began (see annotanchor/data/ids.py).
    base = [[decoder_start_id(self.vocab)] + self._encode(t) for t in texts]
    if s.mode == "direct":
      continued = [[[]] * n for _ in base]
      drawn = self._draw(base, keys, self._sampling(s.max_new_tokens, s.temperature, n))
    elif s.mode == "given_annotation":
      continued = [[self._given] * n for _ in base]
      drawn = self._draw([b + self._given for b in base], keys,
                         self._sampling(s.max_new_tokens, s.temperature, n))
    else:
      continued, drawn = self._anchored(base, keys)
    eos = self.vocab.eos_id
    return [[Continuation(self.template.split_generation(self._decode(ann + resp)),
                          num_tokens=len(ann) + len(resp),
                          ended=bool(ann + resp) and (ann + resp)[-1] == eos)
             for ann, resp in zip(anns, resps)] for anns, resps in zip(continued, drawn)]

  def _anchored(self, base: list[list[int]], keys: jax.Array):
    """Phase 1 draws the annotations, phase 2 one response per annotation."""
    s = self.settings
    n = s.num_samples
    eos = self.vocab.eos_id
    phase_keys = lambda phase: jax.vmap(lambda k: jax.random.fold_in(k, phase))(keys)
    tags = self._draw([b + self._open for b in base], phase_keys(0),
                      self._sampling(s.max_annotation_tokens, s.annotation_temperature, n,
                                     self._stops))
    annotations_ = [[self._open + self._closed(t) for t in row] for row in tags]
    ended = [[bool(t) and t[-1] == eos for t in row] for row in tags]
    # One phase-2 prompt per sample; sample j of a prompt keeps its own stream.
    flat = [b + ann for b, row in zip(base, annotations_) for ann in row]
    flat_keys = jax.vmap(lambda k: jax.vmap(lambda j: jax.random.fold_in(k, j))(
        jax.numpy.arange(n)))(phase_keys(1)).reshape(-1)
    responses = self._draw(flat, flat_keys, self._sampling(s.max_new_tokens, s.temperature, 1))
    drawn = [[[] if ended[b][j] else responses[b * n + j][0] for j in range(n)]
             for b in range(len(base))]
    return annotations_, drawn

  def _closed(self, drawn: list[int]) -> list[int]:
    """An annotation's drawn tokens, closed if the cap cut them off before `</ann>`."""
    if drawn and drawn[-1] == self.vocab.eos_id:
      return drawn
    if any(drawn[-len(stop):] == list(stop) for stop in self._stops):
      return drawn
    return drawn + self._close
