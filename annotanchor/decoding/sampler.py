"""Batch temperature sampling with a KV cache (t5x's `temperature_sample`, our own take).

The sampler knows nothing of the network: it drives a `TokensToLogits` function that maps
a chunk of tokens (with their positions and segment ids) and a cache to logits and the
updated cache. `annotanchor.decoding.model_sampler` builds one over the Decoder's KV cache;
tests drive it with hand-written functions.

Layout. Every row writes the same cache slots, so prompts of different lengths are
LEFT-padded to a common length P; padding has segment id 0 and positions are counted per
row from its first real token. Each prompt is repeated `num_decodes` times (row b*N + j is
sample j of prompt b). Example: prompts [a b c] and [d], P = 3, num_decodes = 1, the
sampler draws x1 x2 for row 0 and y1 EOS for row 1, max_new_tokens = 3:

  prefill   tokens      [[a b c]    [pad pad d]]
            segment_ids [[1 1 1]    [0   0   1]]
            positions   [[0 1 2]    [0   0   0]]
    cache slots 0..2 written; cached_valid [[T T T .. ..], [F F T .. ..]];
    the logits at the last slot give the first new token of every row.
  step 1    tokens [[x1] [y1]]   positions [[3] [1]]   writes slot 3
  step 2    tokens [[x2] [EOS]]  positions [[4] [2]]   writes slot 4
    row 1 is done after EOS; it keeps being fed (its output is ignored) until every
    row is done or max_new_tokens are drawn, and the loop ends early when all are done.

  output tokens  [[[x1 x2 x3]], [[y1 EOS pad]]]   (x3 drawn from the step-2 logits)
         lengths [[3], [2]]    (EOS or the last stop token counts)
         stopped [[F], [T]]    (ended by EOS or a stop sequence, not by the length cap)

A prefill of P tokens and T new tokens use P + T - 1 cache slots (the last token drawn is
never fed back).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Protocol, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from annotanchor.errors import SettingError

Cache = Any


class TokensToLogits(Protocol):
  """Maps a chunk of tokens to next-token logits, reading and extending a cache.

  Args:
    tokens: [rows, length] int32, the prompt (prefill) or the last drawn token (length 1).
    positions: [rows, length] int32 positions of those tokens within their row.
    segment_ids: [rows, length] int32, 1 for real tokens, 0 for left padding.
    cache: whatever the function keeps between calls (the KV cache).

  Returns:
    ([rows, length, vocab] float32 logits, the updated cache). The sampler reads only the
    last position's, so a function may return that one alone, [rows, 1, vocab].
  """

  def __call__(self, tokens: jax.Array, positions: jax.Array, segment_ids: jax.Array,
               cache: Cache) -> tuple[jax.Array, Cache]:
    ...


@dataclasses.dataclass(frozen=True)
class SamplingConfig:
  """How to draw. Hashable: the jitted sampler compiles once per distinct config.

  Attributes:
    max_new_tokens: T, the most tokens drawn per sample.
    num_decodes: N, samples per prompt, each with its own RNG stream.
    temperature: softmax temperature; 0 draws greedily (argmax).
    top_k: keep only the k most likely tokens (0: all). Ties with the k-th are kept.
    top_p: keep the smallest set of most likely tokens whose probability reaches top_p
      (1.0: all); applied after temperature and top_k, and always keeps the top token.
    eos_id: ends a sample (included in its length).
    pad_id: fills the output after a sample ends.
    stop_sequences: token sequences that also end a sample when its last drawn tokens
      equal one of them (included in its length), e.g. the tokens of `</ann>`.
  """

  max_new_tokens: int
  num_decodes: int = 1
  temperature: float = 1.0
  top_k: int = 0
  top_p: float = 1.0
  eos_id: int = 1
  pad_id: int = 0
  stop_sequences: tuple[tuple[int, ...], ...] = ()

  def __post_init__(self):
    if self.max_new_tokens < 1 or self.num_decodes < 1:
      raise SettingError(f"max_new_tokens={self.max_new_tokens} and num_decodes="
                         f"{self.num_decodes} must be at least 1")
    if self.temperature < 0 or self.top_k < 0 or not 0.0 < self.top_p <= 1.0:
      raise SettingError(f"need temperature >= 0, top_k >= 0 and 0 < top_p <= 1; got "
                         f"{self.temperature}, {self.top_k}, {self.top_p}")
    if any(len(s) == 0 for s in self.stop_sequences):
      raise SettingError("stop_sequences holds an empty sequence")
    # Lists from gin or JSON become tuples so that the config stays hashable.
    object.__setattr__(self, "stop_sequences",
                       tuple(tuple(int(t) for t in s) for s in self.stop_sequences))


@jax.tree_util.register_dataclass
@dataclasses.dataclass
class SampleOutput:
  """Sampled continuations, prompts excluded.

  Attributes:
    tokens: [batch, num_decodes, max_new_tokens] int32, pad_id after each sample's end.
    lengths: [batch, num_decodes] int32 tokens per sample, EOS or stop tokens included.
    stopped: [batch, num_decodes] bool, ended by EOS or a stop sequence (not the cap).
  """

  tokens: jax.Array
  lengths: jax.Array
  stopped: jax.Array


def left_pad(prompts: Sequence[Sequence[int]], length: int | None = None,
             pad_id: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """Left-pads token lists into the sampler's prompt layout.

  Example: left_pad([[5, 6, 7], [8]]) -> ([[5, 6, 7], [0, 0, 8]], [3, 1]).

  Args:
    prompts: one non-empty token list per prompt.
    length: the padded length P (default: the longest prompt).
    pad_id: the padding token.

  Returns:
    ([batch, P] int32 tokens, [batch] int32 lengths).
  """
  lengths = np.asarray([len(p) for p in prompts], np.int32)
  if len(prompts) == 0 or lengths.min() < 1:
    raise ValueError("every prompt needs at least one token (and there must be one prompt)")
  length = int(lengths.max()) if length is None else length
  if lengths.max() > length:
    raise SettingError(f"a prompt of {lengths.max()} tokens does not fit in length {length}")
  out = np.full((len(prompts), length), pad_id, np.int32)
  for row, prompt in enumerate(prompts):
    out[row, length - len(prompt):] = prompt
  return out, lengths


def filter_logits(logits: jax.Array, config: SamplingConfig) -> jax.Array:
  """Applies temperature, top-k and top-p to [rows, vocab] logits (-inf = never drawn).

  Example (temperature 1, top_k 3, top_p 0.7), probabilities shown:
    [0.5, 0.1, 0.25, 0.15] -> top-k keeps 0.5, 0.25, 0.15; top-p keeps 0.5, 0.25 (their
    mass after renormalising reaches 0.7 at the second) -> [0.67, 0, 0.33, 0].
  """
  logits = logits / config.temperature
  if config.top_k and config.top_k < logits.shape[-1]:
    kth = jax.lax.top_k(logits, config.top_k)[0][..., -1:]
    logits = jnp.where(logits < kth, -jnp.inf, logits)
  if config.top_p < 1.0:
    ordered = jnp.sort(logits, axis=-1)[..., ::-1]
    probs = jax.nn.softmax(ordered, axis=-1)
    mass_before = jnp.cumsum(probs, axis=-1) - probs
    # The smallest logit still inside the nucleus; the top token is always inside.
    keep = mass_before < config.top_p
    threshold = jnp.min(jnp.where(keep, ordered, jnp.inf), axis=-1, keepdims=True)
    logits = jnp.where(logits < threshold, -jnp.inf, logits)
  return logits


def _draw(logits: jax.Array, keys: jax.Array, step: jax.Array,
          config: SamplingConfig) -> jax.Array:
  """One token per row: greedy, or categorical with the row's key folded with `step`."""
  if config.temperature == 0:
    return jnp.argmax(logits, axis=-1).astype(jnp.int32)
  filtered = filter_logits(logits, config)
  step_keys = jax.vmap(lambda k: jax.random.fold_in(k, step))(keys)
  return jax.vmap(jax.random.categorical)(step_keys, filtered).astype(jnp.int32)


def _stop_table(config: SamplingConfig) -> tuple[np.ndarray, np.ndarray]:
  """Stop sequences right-aligned in a [S, W] table, with a mask of the real entries."""
  width = max(len(s) for s in config.stop_sequences)
  table = np.zeros((len(config.stop_sequences), width), np.int32)
  mask = np.zeros_like(table, bool)
  for i, seq in enumerate(config.stop_sequences):
    table[i, width - len(seq):] = seq
    mask[i, width - len(seq):] = True
  return table, mask


def temperature_sample(tokens_to_logits: TokensToLogits, cache: Cache, prompts: jax.Array,
                       prompt_lengths: jax.Array, rng: jax.Array,
                       config: SamplingConfig,
                       phases: Sequence[tuple[int, TokensToLogits, Any]] = ()) -> SampleOutput:
  """Draws `num_decodes` continuations of every prompt (see the module docstring).

  Traceable: wrap it in `jax.jit` (with `config` static); the decode loop is a
  `lax.while_loop` that stops when every row is done.

  Args:
    tokens_to_logits: the network behind a cache.
    cache: an empty cache for batch * num_decodes rows.
    prompts: [batch, P] int32 left-padded prompts (see `left_pad`).
    prompt_lengths: [batch] int32 real tokens per prompt, each >= 1.
    rng: one PRNG key (split per prompt), or [batch] keys, one per prompt. Sample j of a
      prompt uses its prompt's key folded with j, so a prompt's samples do not depend on
      which other prompts share its batch.
    config: how to draw.
    phases: optional growing caches, so that early steps read a short one: a list of
      (last_step, grow, tokens_to_logits). `tokens_to_logits` (and `cache`) serve the
      prefill and steps up to the first phase's last_step; then `grow` maps the cache to
      the next phase's, whose function serves steps up to its last_step, and so on.

  Returns:
    The SampleOutput.
  """
  batch, prompt_len = prompts.shape
  n, steps = config.num_decodes, config.max_new_tokens
  rows = batch * n
  if not jnp.issubdtype(rng.dtype, jax.dtypes.prng_key):  # A raw uint32 PRNGKey.
    rng = jax.random.wrap_key_data(rng)
  keys = jax.random.split(rng, batch) if rng.ndim == 0 else rng
  keys = jax.vmap(lambda k: jax.vmap(lambda j: jax.random.fold_in(k, j))(jnp.arange(n)))(keys)
  keys = keys.reshape(rows)

  tokens = jnp.repeat(prompts, n, axis=0)
  lengths = jnp.repeat(prompt_lengths.astype(jnp.int32), n, axis=0)
  pad = prompt_len - lengths  # [rows]
  slots = jnp.arange(prompt_len)[None, :]
  segment_ids = (slots >= pad[:, None]).astype(jnp.int32)
  positions = jnp.maximum(slots - pad[:, None], 0).astype(jnp.int32)
  logits, cache = tokens_to_logits(tokens, positions, segment_ids, cache)

  if config.stop_sequences:
    table, mask = (jnp.asarray(a) for a in _stop_table(config))
  else:
    table = mask = None

  def record(state, token):
    """Writes the token drawn at state["step"] and updates done/lengths/the stop window."""
    step, done = state["step"], state["done"]
    token = jnp.where(done, config.pad_id, token)
    out = jax.lax.dynamic_update_slice(state["out"], token[:, None], (0, step))
    stop = token == config.eos_id
    window = state["window"]
    if table is not None:
      window = jnp.concatenate([window[:, 1:], token[:, None]], axis=1)
      hits = (window[:, None, :] == table[None]) | ~mask[None]
      stop = stop | jnp.any(jnp.all(hits, axis=-1), axis=-1)
    stop = stop & ~done
    return dict(state, out=out, window=window, last=token,
                lengths=jnp.where(done, state["lengths"], step + 1),
                stopped=state["stopped"] | stop, done=done | stop)

  # -1 is no token id, so a stop sequence never matches the window before it fills.
  width = table.shape[1] if table is not None else 1
  state = dict(step=jnp.int32(0), out=jnp.full((rows, steps), config.pad_id, jnp.int32),
               window=jnp.full((rows, width), -1, jnp.int32), last=jnp.zeros((rows,), jnp.int32),
               lengths=jnp.zeros((rows,), jnp.int32), stopped=jnp.zeros((rows,), bool),
               done=jnp.zeros((rows,), bool), cache=cache)
  state = record(state, _draw(logits[:, -1], keys, jnp.int32(0), config))

  def run_until(last_step, fn, state):
    def cond(state):
      return (state["step"] + 1 < min(steps, last_step + 1)) & ~jnp.all(state["done"])

    def body(state):
      step = state["step"] + 1
      position = (lengths + step - 1)[:, None]
      logits, cache = fn(state["last"][:, None], position,
                         jnp.ones((rows, 1), jnp.int32), state["cache"])
      state = dict(state, step=step, cache=cache)
      return record(state, _draw(logits[:, -1], keys, step, config))

    return jax.lax.while_loop(cond, body, state)

  fn = tokens_to_logits
  for last_step, grow, next_fn in phases:
    state = run_until(last_step, fn, state)
    state = dict(state, cache=grow(state["cache"]))
    fn = next_fn
  state = run_until(steps, fn, state)
  return SampleOutput(tokens=state["out"].reshape(batch, n, steps),
                      lengths=state["lengths"].reshape(batch, n),
                      stopped=state["stopped"].reshape(batch, n))
